"""Checks of a command's output folder, done before any work."""

from __future__ import annotations

import tempfile
from pathlib import Path

__all__ = ["check_output_dir"]


def check_output_dir(out) -> Path:
    """Check that ``out`` is, or can be created as, a writable folder; create nothing.

    Parameters
    ----------
    out : str or Path
        The ``-o/--out`` folder.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        ``out`` is an existing file, lies inside a file, or its nearest existing folder is
        not writable (one line naming ``-o/--out``).
    """
    out = Path(out)
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        where = "is an existing file" if probe == out else f"lies inside the file {probe}"
        raise ValueError(f"-o/--out {out} {where}: expected a folder (existing or new)")
    try:
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as err:
        raise ValueError(
            f"-o/--out {out} is not writable ({probe}: {err.strerror or err})"
        ) from None
    return out
