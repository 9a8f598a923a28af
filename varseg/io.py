"""Reading images for the command line and the comparison harness."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_image", "sample_names", "save_label_png"]


def sample_names():
    """Names of the bundled ``skimage.data`` images usable as ``sample:NAME``."""
    return ["astronaut", "brain", "camera", "cells3d-slice", "chelsea", "coffee", "coins",
            "horse", "moon", "page", "text"]


def load_image(spec, *, as_float=True):
    """Load an image from a file path or ``sample:NAME`` (a ``skimage.data`` image).

    Parameters
    ----------
    spec : str or Path
        A path readable by scikit-image / Pillow (PNG, JPEG, TIFF…), a ``.npy`` array, or
        ``sample:NAME`` with NAME in :func:`sample_names`.
    as_float : bool
        Convert to float64 in [0, 1] (integer images are divided by their dtype's maximum).

    Returns
    -------
    image : ndarray, shape (H, W) or (H, W, C)
    channel_axis : int or None
        ``-1`` for colour images, None for gray.

    Raises
    ------
    FileNotFoundError
        Missing file. ValueError: unknown sample or unreadable file.
    """
    spec = str(spec)
    if spec.startswith("sample:"):
        name = spec.split(":", 1)[1]
        if name not in sample_names():
            raise ValueError(f"unknown sample {name!r}; expected one of {sample_names()}")
        from skimage import data

        if name == "cells3d-slice":
            img = data.cells3d()[30, 1]
        else:
            img = getattr(data, name)()
    else:
        path = Path(spec)
        if not path.exists():
            raise FileNotFoundError(f"image file not found: {path}")
        try:
            if path.suffix == ".npy":
                img = np.load(path)
            else:
                from skimage import io

                img = io.imread(path)
        except Exception as err:  # noqa: BLE001 - report any reader failure the same way
            raise ValueError(f"could not read image {path}: {err}") from err
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if as_float:
        if np.issubdtype(img.dtype, np.integer):
            img = img / float(np.iinfo(img.dtype).max)
        img = img.astype(np.float64)
    channel_axis = -1 if (img.ndim == 3 and img.shape[-1] in (2, 3)) else None
    return img, channel_axis


def save_label_png(path, labels):
    """Write a label map as an 8-bit PNG with labels spread over 0-255 for viewing."""
    from PIL import Image

    lab = np.asarray(labels)
    k = max(int(lab.max()), 1)
    Image.fromarray((lab * (255 // k)).astype(np.uint8)).save(path)
