"""Training checkpoints: atomic save with a SHA-256 beside each file, verified load, devices.

A checkpoint ``last.pt`` is written through a temporary file and :func:`os.replace`
(:func:`varseg._atomic.atomic_write_bytes`), and its SHA-256 goes to ``last.pt.sha256``
(``sha256sum`` format). The checksum file is replaced *before* the checkpoint and keeps the
previous digest on its second line, so a process killed between the two replacements still
leaves a checkpoint that matches one of the listed digests; any other content (zeroed,
truncated, random bytes) does not, and :func:`load_checkpoint` refuses it with a one-line
``ValueError``.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

import torch

from varseg._atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "CHECKPOINT_NAME",
    "CHECKSUM_SUFFIX",
    "checksum_path",
    "load_checkpoint",
    "resolve_device",
    "save_checkpoint",
    "sha256_file",
    "verify_checkpoint",
]

CHECKPOINT_NAME = "last.pt"
CHECKSUM_SUFFIX = ".sha256"
_REQUIRED = ("model", "model_name", "model_config", "step")


def checksum_path(path) -> Path:
    """Return the checksum file beside checkpoint ``path`` (``last.pt`` -> ``last.pt.sha256``)."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def sha256_file(path) -> str:
    """Hexadecimal SHA-256 of the bytes of ``path``."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _listed_digests(path: Path) -> list[str]:
    side = checksum_path(path)
    if not side.is_file():
        return []
    return [ln.split()[0] for ln in side.read_text().splitlines() if ln.strip()]


def save_checkpoint(obj: dict, path) -> Path:
    """Write ``obj`` with :func:`torch.save` atomically, with its SHA-256 beside it.

    Parameters
    ----------
    obj : dict
        Tensors and plain Python values (loadable with ``weights_only=True``).
    path : str or os.PathLike
        Target file; ``<path>.sha256`` receives the digest.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    previous = _listed_digests(path)[:1]
    lines = [f"{d}  {path.name}" for d in [digest, *previous]]
    # the digest file first: a kill before the next line leaves the old checkpoint, which
    # still matches the second digest
    atomic_write_text(checksum_path(path), "\n".join(lines) + "\n")
    atomic_write_bytes(path, data)
    return path


def verify_checkpoint(path) -> None:
    """Raise ``ValueError`` unless ``path`` matches a digest of its ``.sha256`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Checkpoint file.
    """
    path = Path(path)
    listed = _listed_digests(path)
    if not listed:
        raise ValueError(
            f"checkpoint {path} has no checksum file {checksum_path(path).name}: "
            "expected a checkpoint written by varseg train (or load it with verify=False)"
        )
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty: expected a varseg training checkpoint")
    if sha256_file(path) not in listed:
        raise ValueError(
            f"checkpoint {path} is corrupt: its SHA-256 does not match {checksum_path(path).name}"
        )


def load_checkpoint(path, map_location="cpu", *, verify: bool = True) -> dict:
    """Read a training checkpoint (``weights_only=True``), verifying its SHA-256 first.

    Parameters
    ----------
    path : str or os.PathLike
        A ``last.pt`` written by :func:`save_checkpoint`.
    map_location : str or torch.device
        Passed to :func:`torch.load`.
    verify : bool
        Check the digest of ``<path>.sha256`` (default). ``False`` reads a checkpoint
        without one (still refusing unreadable files).

    Returns
    -------
    dict
        The stored dict (``model``, ``model_name``, ``model_config``, ``step``, ...).

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Missing or mismatched checksum, a truncated / empty / foreign file, or a dict
        without the keys of a training checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if verify:
        verify_checkpoint(path)
    try:
        with warnings.catch_warnings():  # a damaged file's random "protocol" makes torch warn
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            ck = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - damaged bytes break the unpickler in any way
        # (IndexError, KeyError, struct.error, ... besides the usual EOFError and
        # UnpicklingError); weights_only=True runs no code, so every error means unreadable
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(
            f"checkpoint {path} cannot be read ({msg}): expected a varseg training checkpoint"
        ) from None
    missing = [k for k in _REQUIRED if not isinstance(ck, dict) or k not in ck]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}: not a varseg training checkpoint")
    return ck


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """Return the torch device of ``spec``: ``"auto"`` is CUDA (device ``local_rank``) when present.

    Parameters
    ----------
    spec : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    local_rank : int
        CUDA device of a plain ``"cuda"`` (the process's GPU under ``torchrun``).

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        CUDA requested but not available (or device ``N`` absent), or an unknown string.
    """
    from varseg._validation import resolve_device as _check

    spec = str(spec or "auto").strip().lower()
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cuda" and torch.cuda.is_available():
        spec = f"cuda:{local_rank}"
    return _check(spec)
