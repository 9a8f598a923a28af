"""Input handling shared by the metrics: tensors to NumPy, label maps validated."""

from __future__ import annotations

import numpy as np

__all__ = ["to_numpy", "as_labels", "label_pair"]


def to_numpy(x):
    """Torch tensor (any device) → NumPy array; anything else through ``np.asarray``."""
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) in {"torch.bfloat16", "torch.float16"}:
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def as_labels(x, name, *, allow_empty=True):
    """Validate a label map and return it as an ``int64`` NumPy array (same shape)."""
    arr = to_numpy(x)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == np.uint64 and arr.size and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{name} has labels too large for int64")
        arr = arr.astype(np.int64, copy=False)
    elif np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN values; expected integer labels")
        if np.isinf(arr).any():
            raise ValueError(f"{name} contains infinite values; expected integer labels")
        frac = arr != np.round(arr)
        if frac.any():
            raise ValueError(
                f"{name} must hold integer labels; got non-integer values (e.g. "
                f"{arr[frac].flat[0]!r}). Pass hard labels such as logits.argmax(1), not "
                f"probabilities"
            )
        arr = arr.astype(np.int64)
    else:
        raise ValueError(f"{name} must be an integer or boolean label array; got dtype {arr.dtype}")
    if not allow_empty and arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    return arr


def label_pair(pred, target, names=("pred", "target"), *, allow_empty=True):
    p = as_labels(pred, names[0], allow_empty=allow_empty)
    t = as_labels(target, names[1], allow_empty=allow_empty)
    if p.shape != t.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; got {p.shape} and {t.shape}"
        )
    return p, t
