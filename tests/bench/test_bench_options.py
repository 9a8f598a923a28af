"""``varseg bench``: bad counts and CUDA without CUDA are one-line errors before any timing."""

import pytest

from varseg.cli import main


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["chan-vese", "--iters", "0"], "--iters must be a positive integer"),
        (["chan-vese", "--size", "0"], "--size must be a >= 8 integer"),
        (["chan-vese", "--repeats", "0"], "--repeats must be a positive integer"),
        (["chan-vese", "--phases", "2", "1"], "--phases must be a >= 2 integer"),
        (["loss", "--batch", "0"], "--batch must be a positive integer"),
        (["models", "--batch-size", "-1"], "--batch-size must be a positive integer"),
    ],
)
def test_bad_counts_are_refused_in_one_line(capsys, argv, needle):
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and "Traceback" not in err[0]


def test_cuda_without_cuda_is_refused(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["bench", "loss", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
