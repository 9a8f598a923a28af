"""The ``varseg`` command line (thin: it parses arguments and calls the library).

Subcommands: ``segment``, ``compare``, ``bench``, ``train``, ``evaluate``, ``reproduce``. Each
lives in a module exposing ``add_arguments(parser)`` and ``main(args) -> int``.

Global options ``-q`` (warnings and errors only) and ``-v`` (debug messages, and the traceback
of an error) set the level of the ``varseg`` logger, which every library module logs to.
User errors are one line on stderr and exit status 2; Ctrl-C is one line and exit status 130.
"""

from __future__ import annotations

import argparse
import logging
import sys
from importlib import import_module

from varseg._optional import DEEP_EXTRA_HINT, is_missing_torch

__all__ = ["main", "build_parser", "run_command", "configure_logging"]

logger = logging.getLogger(__name__)

#: exit status of a user error (bad argument, missing file, missing optional dependency)
EXIT_USAGE = 2
#: exit status after Ctrl-C (128 + SIGINT), as shells report it
EXIT_INTERRUPTED = 130

#: errors reported as one line (never a traceback, except with ``-v``)
USER_ERRORS = (ValueError, TypeError, OSError, ImportError)

COMMANDS = {
    "segment": ("varseg.commands.segment", "segment one image with one method"),
    "compare": (
        "varseg.commands.compare",
        "run several methods on one image (or a dataset) and score them side by side",
    ),
    "bench": ("varseg.bench", "time varseg against its peers (chan-vese, loss, models)"),
    "train": ("varseg.commands.train", "train a network (supervised, semi- or unsupervised)"),
    "evaluate": ("varseg.commands.evaluate", "evaluate a trained checkpoint on a dataset"),
    "reproduce": (
        "varseg.commands.reproduce",
        "reproduce a table of the paper on real data (bsds500: Table VI)",
    ),
    "warmup": ("varseg.commands.warmup", "compile the Numba kernels ahead of time"),
}


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of the ``varseg`` command.

    Returns
    -------
    argparse.ArgumentParser
        The parser with the global options and one subparser per entry of `COMMANDS`.
    """
    from varseg import __version__

    parser = argparse.ArgumentParser(
        prog="varseg",
        description="Classical variational and deep Mumford–Shah segmentation, side by side.",
    )
    parser.add_argument("--version", action="version", version=f"varseg {__version__}")
    _add_logging_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_handler=mod.main)
    return parser


def _add_logging_options(parser):
    # own dests: a subcommand's "--quiet" (no progress bar) must not overwrite them
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "-q",
        "--quiet",
        dest="_log_quiet",
        action="store_true",
        help="show only warnings and errors",
    )
    group.add_argument(
        "-v",
        "--verbose",
        dest="_log_verbose",
        action="store_true",
        help="show debug messages (and the traceback of an error)",
    )


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler that writes to ``sys.stderr`` as it is at each message.

    (Not the one at configuration time, which a test harness may have closed since.)
    """

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


_HANDLER = None  # the handler configure_logging installed last (replaced on each call)


def configure_logging(level=logging.INFO, stream=None):
    """Send the ``varseg`` logger's messages at ``level`` and above to ``stream``.

    Parameters
    ----------
    level : int, optional
        A :mod:`logging` level (``-q``: ``WARNING``, default ``INFO``, ``-v``: ``DEBUG``).
    stream : file-like, optional
        Where the messages go; default ``sys.stderr`` (as it is at each message).

    Returns
    -------
    logging.Logger
        The configured ``varseg`` logger.
    """
    global _HANDLER
    root = logging.getLogger("varseg")
    if _HANDLER is not None:
        root.removeHandler(_HANDLER)
    _HANDLER = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    fmt = "%(levelname)s %(name)s: %(message)s" if level <= logging.DEBUG else "%(message)s"
    _HANDLER.setFormatter(logging.Formatter(fmt))
    root.addHandler(_HANDLER)
    root.setLevel(level)
    return root


def _level(args):
    if getattr(args, "_log_quiet", False):
        return logging.WARNING
    return logging.DEBUG if getattr(args, "_log_verbose", False) else logging.INFO


def _one_line(command, err) -> str:
    if is_missing_torch(err) and "needs torch" not in str(err):
        return f"varseg {command}: error: {command} needs torch: {DEEP_EXTRA_HINT}"
    text = " ".join(str(err).split()) or type(err).__name__
    return f"varseg {command}: error: {text}"


def _run(handler, command, args) -> int:
    """Call a subcommand; user errors become one line on stderr and exit status 2.

    ``ValueError``, ``TypeError``, ``OSError`` (a missing input, an unwritable output) and
    ``ImportError`` (a missing optional dependency) are reported in one line, exit status 2;
    ``KeyboardInterrupt`` in one line, exit status 130. With ``-v`` the traceback follows
    at debug level.
    """
    try:
        return int(handler(args) or 0)
    except USER_ERRORS as err:
        logger.error(_one_line(command, err))
        logger.debug("traceback of the error above", exc_info=True)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logger.error(f"varseg {command}: interrupted")
        return EXIT_INTERRUPTED


def main(argv=None) -> int:
    """Entry point of the ``varseg`` console script.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``varseg`` (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0 on success, 2 on a user error, 130 after Ctrl-C.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(_level(args))
    return _run(args._handler, args.command, args)


def run_command(name, argv=None) -> int:
    """Run one subcommand on its own, without importing the others.

    Used by ``python -m varseg.commands.train`` (e.g. under ``torchrun``).

    Parameters
    ----------
    name : str
        A key of `COMMANDS`.
    argv : list of str, optional
        The subcommand's arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status, as :func:`main`.
    """
    module, help_text = COMMANDS[name]
    mod = import_module(module)
    parser = argparse.ArgumentParser(prog=f"varseg {name}", description=help_text)
    _add_logging_options(parser)
    mod.add_arguments(parser)
    args = parser.parse_args(argv)
    configure_logging(_level(args))
    return _run(mod.main, name, args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
