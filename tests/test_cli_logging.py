"""The command line's global ``-q``/``-v`` options and its one-line errors and exit codes."""

import logging

import numpy as np
import pytest

import varseg.commands.segment as segment_command
from varseg.cli import EXIT_INTERRUPTED, EXIT_USAGE, main


def _fake_segment(behaviour):
    """A stand-in for ``varseg segment``'s handler: logs at every level, or raises."""

    def handler(args):
        log = logging.getLogger("varseg.fake")
        log.debug("debug-message")
        log.info("info-message")
        log.warning("warning-message")
        if behaviour is not None:
            raise behaviour
        return 0

    return handler


@pytest.mark.parametrize(
    ("flags", "shown", "hidden"),
    [
        ([], ["info-message", "warning-message"], ["debug-message"]),
        (["-q"], ["warning-message"], ["info-message", "debug-message"]),
        (["--quiet"], ["warning-message"], ["info-message", "debug-message"]),
        (["-v"], ["debug-message", "info-message", "warning-message"], []),
    ],
)
def test_global_verbosity_sets_the_varseg_logger_level(monkeypatch, capsys, flags, shown, hidden):
    monkeypatch.setattr(segment_command, "main", _fake_segment(None))
    assert main([*flags, "segment", "x.png"]) == 0
    err = capsys.readouterr().err
    for text in shown:
        assert text in err
    for text in hidden:
        assert text not in err


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["-q", "-v", "segment", "x.png"])
    assert exc.value.code == 2
    assert "not allowed with" in capsys.readouterr().err


def test_subcommand_quiet_does_not_touch_the_log_level(monkeypatch, capsys):
    # `compare -q` means "no progress bar"; info messages still show
    seen = {}

    def handler(args):
        seen["quiet"] = args.quiet
        logging.getLogger("varseg.fake").info("info-message")
        return 0

    import varseg.commands.compare as compare_command

    monkeypatch.setattr(compare_command, "main", handler)
    assert main(["compare", "x.png", "-q"]) == 0
    assert seen["quiet"] is True
    assert "info-message" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (TypeError("max_iter must be an int, got 'a'"), "max_iter must be an int, got 'a'"),
        (PermissionError(13, "Permission denied", "/out/x.png"), "Permission denied: '/out/x.png'"),
        (ValueError("bad\nvalue"), "bad value"),
        (
            ModuleNotFoundError("No module named 'torch'", name="torch"),
            "segment needs torch: pip install 'varseg[deep]'",
        ),
    ],
)
def test_user_errors_are_one_line_exit_2(monkeypatch, capsys, error, expected):
    monkeypatch.setattr(segment_command, "main", _fake_segment(error))
    assert main(["-q", "segment", "x.png"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]  # after the fake's own warning line
    assert last.startswith("varseg segment: error: ") and last.endswith(expected)


def test_verbose_adds_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(segment_command, "main", _fake_segment(TypeError("boom")))
    assert main(["-v", "segment", "x.png"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "varseg segment: error: boom" in err
    assert "Traceback (most recent call last)" in err


def test_keyboard_interrupt_is_one_line_exit_130(monkeypatch, capsys):
    monkeypatch.setattr(segment_command, "main", _fake_segment(KeyboardInterrupt()))
    assert main(["segment", "x.png"]) == EXIT_INTERRUPTED == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "varseg segment: interrupted"
    assert "Traceback" not in "\n".join(err)


def test_unwritable_output_is_one_line_exit_2(tmp_path, capsys):
    np.save(tmp_path / "ok.npy", np.random.default_rng(0).random((8, 8)))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    status = main(
        ["-q", "segment", str(tmp_path / "ok.npy"), "--method", "otsu", "-o", str(blocker / "out")]
    )
    assert status == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("varseg segment: error: ")
    assert "a-file" in err[0]
