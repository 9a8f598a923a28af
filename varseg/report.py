"""Writing a segmentation to disk: label PNG, boundary overlay PNG and the ``.npz`` result."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["save_segmentation_outputs", "overlay_image"]


def overlay_image(image, labels, color=(1.0, 0.2, 0.1)):
    """RGB float image in [0, 1] with the region boundaries of ``labels`` drawn in ``color``.

    3D inputs use their middle slice. Uses :func:`skimage.segmentation.find_boundaries`.
    """
    from skimage.segmentation import find_boundaries

    img = np.asarray(image, dtype=np.float64)
    lab = np.asarray(labels)
    if lab.ndim == 3:  # volume: middle slice
        mid = lab.shape[0] // 2
        lab = lab[mid]
        img = img[mid] if img.ndim == 3 and img.shape[-1] not in (3, 4) else img
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    out = img[..., :3].copy()
    out[find_boundaries(lab, mode="inner")] = color
    return out


def save_segmentation_outputs(image, result, out_dir, stem="segmentation"):
    """Write ``<stem>_labels.png``, ``<stem>_overlay.png`` and ``<stem>.npz`` into ``out_dir``.

    Returns
    -------
    list of Path
    """
    from PIL import Image

    from varseg.io import save_label_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = result.labels if result.labels.ndim == 2 else result.labels[result.labels.shape[0] // 2]
    p_lab = out / f"{stem}_labels.png"
    save_label_png(p_lab, lab)
    p_ov = out / f"{stem}_overlay.png"
    Image.fromarray((overlay_image(image, result.labels) * 255).astype(np.uint8)).save(p_ov)
    p_npz = result.save(out / f"{stem}.npz")
    return [p_lab, p_ov, p_npz]
