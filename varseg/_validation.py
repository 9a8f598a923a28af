"""Input checks shared by every public entry point (clear errors, never a silent wrong answer).

Every check raises a one-line ``ValueError`` (a bad value) or ``TypeError`` (a bad type) whose
message starts with the name of the argument and says what was expected, so that callers
(the library, the command line, the property-based tests) can rely on one wording.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

__all__ = [
    "renamed_argument",
    "as_channels_first",
    "check_image",
    "check_labels",
    "check_n_phases",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "resolve_rng",
    "resolve_device",
]


def as_channels_first(
    image, channel_axis=None, *, dtype=np.float64, name="image", spatial_ndims=(2, 3)
):
    """Validate an image in scikit-image conventions and return it channels first.

    Parameters
    ----------
    image : array_like
        ``(H, W)``, ``(D, H, W)`` or either with a channel axis at ``channel_axis``.
    channel_axis : int or None
        As in scikit-image: the axis holding channels, or None for a gray image.
    dtype : numpy dtype or None
        Floating type of the returned array; None keeps the input's type (no copy of a
        C-contiguous image).

    Returns
    -------
    x : ndarray, shape (C,) + S
        Finite image, channels first (C = 1 for gray), C-contiguous, of type ``dtype``.
    gray : bool
        True when the input had no channel axis.

    Raises
    ------
    ValueError
        Not numeric, empty, wrong number of dimensions, NaN/Inf.
    """
    arr = np.asarray(image)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if channel_axis is None:
        if arr.ndim not in spatial_ndims:
            raise ValueError(
                f"{name} must be {_allowed(spatial_ndims)} without channel_axis; got shape "
                f"{arr.shape}. Pass channel_axis=-1 for a colour image."
            )
        x = arr[None]
        gray = True
    else:
        if arr.ndim - 1 not in spatial_ndims:
            raise ValueError(
                f"{name} with channel_axis={channel_axis} must be {_allowed(spatial_ndims)} "
                f"plus a channel axis; got shape {arr.shape}"
            )
        ax = channel_axis % arr.ndim if -arr.ndim <= channel_axis < arr.ndim else None
        if ax is None:
            raise ValueError(f"channel_axis={channel_axis} is out of range for shape {arr.shape}")
        x = np.moveaxis(arr, ax, 0)
        gray = False
    if min(x.shape[1:]) < 1:
        raise ValueError(f"{name} has an empty spatial axis: shape {arr.shape}")
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.dtype.kind in "fc" and not np.isfinite(x).all():  # integers are always finite
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


def _real_scalar(value, name):
    """``value`` as a float if it is a real number (Python, NumPy or a 0-d array/tensor)."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise ValueError(f"{name} must be a number; got {value!r}")
    if not isinstance(value, numbers.Real):
        try:
            arr = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything that is not array-like is refused
            raise ValueError(f"{name} must be a number; got {value!r}") from None
        if arr.ndim != 0 or not (
            np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
        ):
            raise ValueError(f"{name} must be a real number; got {value!r}")
    return float(value)


def check_positive(value, name, *, allow_zero=False):
    """Return ``value`` as a float, raising if it is not a finite positive number.

    Parameters
    ----------
    value : real number
        Python or NumPy scalar, or a 0-d array; booleans and strings are refused.
    name : str
        Argument name used in the message.
    allow_zero : bool
        Accept 0 (then this is :func:`check_nonnegative`).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``"{name} must be a finite positive number; got ..."`` for NaN, ±Inf, negative (or
        zero) values and for values that are not real numbers.
    """
    v = _real_scalar(value, name)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        kind = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be a finite {kind} number; got {value!r}")
    return v


def check_nonnegative(value, name):
    """Return ``value`` as a float, raising ``ValueError`` naming ``name`` unless it is a
    finite number ``>= 0`` (``check_positive(value, name, allow_zero=True)``)."""
    return check_positive(value, name, allow_zero=True)


def check_image(image, name="image", *, dtype=None):
    """Validate a numeric image: real, non-empty, finite.

    Parameters
    ----------
    image : array_like
        Any shape (the caller checks the number of dimensions).
    name : str
        Argument name used in the messages.
    dtype : numpy dtype, optional
        Floating type of the result; by default float32 and float64 are kept and every other
        numeric type (integers, booleans, float16) becomes float64.

    Returns
    -------
    ndarray
        Floating copy or view of ``image``.

    Raises
    ------
    TypeError
        ``"{name} must be a real numeric array; got dtype ..."`` (object, string, complex).
    ValueError
        ``"{name} is empty ..."``, ``"{name} contains NaN or Inf values"``.
    """
    arr = np.asarray(image)
    if not (
        np.issubdtype(arr.dtype, np.integer)
        or np.issubdtype(arr.dtype, np.floating)
        or arr.dtype == bool
    ):
        raise TypeError(f"{name} must be a real numeric array; got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float64
    x = arr.astype(dtype, copy=False)
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def check_labels(labels, n_phases=None, name="labels"):
    """Validate a label map and return it as int64 with its number of classes.

    Integer and boolean arrays are accepted; floating arrays only when every value is an
    integer (e.g. a label image read as float); anything else is refused, never truncated.

    Parameters
    ----------
    labels : array_like
        Label map (any shape; the caller checks it against the image).
    n_phases : int, optional
        Number of classes K ≥ 1; the labels must lie in ``0 .. K-1``. Default
        ``labels.max() + 1`` (the labels must then be non-negative).
    name : str
        Argument name used in the messages.

    Returns
    -------
    labels : ndarray of int64
    k : int
        ``n_phases``, or ``labels.max() + 1`` when it is None.

    Raises
    ------
    TypeError
        ``"{name} must be integers ..."``: non-numeric, complex, or non-integral floats.
    ValueError
        ``"{name} must lie in 0..K-1 ..."``, an empty map, or ``n_phases`` < 1.
    """
    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
            raise TypeError(
                f"{name} must be integers; got dtype {arr.dtype} with non-integral "
                f"or non-finite values"
            )
        if arr.size and np.abs(arr).max() > 2.0**62:
            raise ValueError(f"{name} values are too large for integer labels")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name} must be integers; got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    lo, hi = int(arr.min()), int(arr.max())
    if n_phases is None:
        if lo < 0:
            raise ValueError(f"{name} must be non-negative; got minimum {lo}")
        k = hi + 1
    else:
        k = check_int(n_phases, "n_phases", minimum=1)
        if lo < 0 or hi >= k:
            raise ValueError(
                f"{name} must lie in 0..{k - 1} for n_phases={k}; got range {lo}..{hi}"
            )
    return arr.astype(np.int64, copy=False), k


def resolve_device(device=None):
    """The :class:`torch.device` for a ``device`` argument, checked to exist here.

    Parameters
    ----------
    device : None, "auto", "cpu", "cuda", "cuda:N" or torch.device
        None and ``"auto"`` pick the first CUDA device when one is available, else the CPU.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        ``"device ..."``: an unknown device string, ``"cuda"`` on a machine without CUDA, or
        a CUDA index beyond the devices present.
    """
    import torch

    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise ValueError(
            f"device must be None, 'auto', 'cpu', 'cuda[:N]' or a torch.device; got {device!r}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"device {device!r} is not a device; expected 'auto', 'cpu' or 'cuda[:N]'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} requested but CUDA is not available on "
                f"this machine; use device='cpu'"
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {str(device)!r}: only {n} CUDA device(s) present")
    elif dev.type != "cpu":
        raise ValueError(f"device {str(device)!r} is not supported; expected 'cpu' or 'cuda[:N]'")
    return dev


def check_int(value, name, *, minimum=1, allow_none=False):
    """Return ``value`` as an int, raising if it is not an integer ``>= minimum`` (booleans
    are refused; ``minimum=None`` accepts any integer; ``allow_none`` lets None through)."""
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or (minimum is not None and value < minimum)
    ):
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


def renamed_argument(new_value, old_value, *, new: str, old: str, default):
    """Resolve a keyword renamed from ``old`` to ``new`` (the old one is deprecated).

    Returns ``new_value`` unless ``old_value`` is given (not ``None``), in which case a
    DeprecationWarning is issued and ``old_value`` is returned. Giving both with different
    values is a TypeError.
    """
    if old_value is None:
        return new_value
    if new_value != default and new_value != old_value:
        raise TypeError(
            f"pass only {new}= ({old}= is its deprecated spelling); got "
            f"{new}={new_value!r} and {old}={old_value!r}"
        )
    warnings.warn(f"{old}= is deprecated, use {new}=", DeprecationWarning, stacklevel=3)
    return old_value
