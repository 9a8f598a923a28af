"""Input checks shared by every NumPy-facing solver (clear errors, never a silent wrong answer)."""
from __future__ import annotations

import numpy as np

__all__ = ["as_channels_first", "check_n_phases", "check_positive", "check_choice",
           "resolve_rng"]


def as_channels_first(image, channel_axis=None, *, dtype=np.float64, name="image",
                      spatial_ndims=(2, 3)):
    """Validate an image in scikit-image conventions and return it channels first.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(D, H, W)`` or either with a channel axis at ``channel_axis``.
    channel_axis : int or None
        As in scikit-image: the axis holding channels, or None for a gray image.
    dtype : numpy dtype
        Floating type of the returned array.

    Returns
    -------
    x : ndarray, shape (C,) + S
        Finite floating image, channels first (C = 1 for gray).
    gray : bool
        True when the input had no channel axis.

    Raises
    ------
    ValueError
        Not numeric, empty, wrong number of dimensions, NaN/Inf.
    """
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                   or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if channel_axis is None:
        if arr.ndim not in spatial_ndims:
            raise ValueError(
                f"{name} must be {_allowed(spatial_ndims)} without channel_axis; got shape "
                f"{arr.shape}. Pass channel_axis=-1 for a colour image.")
        x = arr[None]
        gray = True
    else:
        if arr.ndim - 1 not in spatial_ndims:
            raise ValueError(
                f"{name} with channel_axis={channel_axis} must be {_allowed(spatial_ndims)} "
                f"plus a channel axis; got shape {arr.shape}")
        ax = channel_axis % arr.ndim if -arr.ndim <= channel_axis < arr.ndim else None
        if ax is None:
            raise ValueError(f"channel_axis={channel_axis} is out of range for shape {arr.shape}")
        x = np.moveaxis(arr, ax, 0)
        gray = False
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name} has an empty spatial axis: shape {arr.shape}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return x, gray


def _allowed(spatial_ndims):
    names = {2: "2D (H, W)", 3: "3D (D, H, W)"}
    return " or ".join(names[n] for n in spatial_ndims)


def check_n_phases(n_phases, *, power_of_two=False, max_phases=None, name="n_phases"):
    """Return ``n_phases`` as an int ≥ 2, optionally a power of two and bounded."""
    if isinstance(n_phases, bool) or not isinstance(n_phases, (int, np.integer)):
        raise ValueError(f"{name} must be an integer; got {n_phases!r}")
    k = int(n_phases)
    if k < 2:
        raise ValueError(f"{name} must be at least 2; got {k}")
    if power_of_two and k & (k - 1):
        raise ValueError(f"{name} must be a power of two (2, 4, 8 …) for this method; got {k}")
    if max_phases is not None and k > max_phases:
        raise ValueError(f"{name} must be at most {max_phases} for this method; got {k}")
    return k


def check_positive(value, name, *, allow_zero=False):
    """Return ``value`` as a float, raising if it is not finite and positive."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number; got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number; got {value!r}")
    return v


def check_int(value, name, *, minimum=1, allow_none=False):
    """Return ``value`` as an int, raising if it is not an integer ``>= minimum`` (booleans
    are refused; ``minimum=None`` accepts any integer; ``allow_none`` lets None through)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (
            minimum is not None and value < minimum):
        kind = {None: "", 0: "non-negative ", 1: "positive "}.get(minimum, f">= {minimum} ")
        raise ValueError(f"{name} must be a {kind}integer; got {value!r}")
    return int(value)


def check_choice(value, choices, name):
    """Return ``value`` if it is one of ``choices``, else raise naming the options."""
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")
    return value


def resolve_rng(seed):
    """A NumPy Generator from a seed, a Generator or None."""
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
