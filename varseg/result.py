"""The one result type returned by every segmentation method in varseg."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from varseg._atomic import atomic_path

__all__ = ["Segmentation"]

_ARRAYS = ("labels", "memberships", "means", "energy", "times", "bias", "level_sets")
_REQUIRED = ("labels", "memberships", "means", "energy")
_FORMAT = "varseg.Segmentation/1"
_EXACT_KINDS = "biufcSU"  # no object, void (structured) or datetime arrays
_META_TYPES = {
    "n_iter": (int,),
    "converged": (bool,),
    "elapsed": (int, float),
    "method": (str,),
    "params": (dict,),
    "extras": (dict,),
}


@dataclass
class Segmentation:
    """Result of any varseg segmentation method (classical or neural).

    Every solver fills the same fields, so comparison code never special-cases a method.

    Attributes
    ----------
    labels : ndarray of int, shape S = (H, W) or (D, H, W)
        Hard partition, labels ``0 .. K-1`` (the argmax of ``memberships``).
    memberships : ndarray of float, shape (K,) + S
        Soft memberships summing to 1 over K (regularised Heaviside products for level sets,
        softmax for networks; Eq. 10 of Kim & Ye 2019).
    means : ndarray, shape (K,) or (K, C)
        Region means :math:`c_n` (Eq. 4, or Eq. 20 with a bias field).
    energy : ndarray of float64, shape (n_records,)
        History of the shared Mumford–Shah energy (:func:`varseg.mumford_shah_energy`,
        ``reduction="sum"``) of the hard partition, recorded every iteration including the
        last. ``params["lam"]`` holds the λ it was evaluated with.
    n_iter : int
        Iterations run.
    converged : bool
        Whether the method's stopping rule fired before ``max_iter``.
    elapsed : float
        Wall time in seconds.
    method : str
        Method name (e.g. ``"chan-vese"``).
    params : dict
        Parameters the method was run with (JSON-serialisable).
    bias : ndarray, shape S, optional
        Estimated bias field (bias-field methods).
    level_sets : ndarray, shape (m,) + S, optional
        Final level-set functions (level-set methods).
    times : ndarray of float64, shape (n_records,), optional
        Seconds since the start at which each energy value was recorded (energy-vs-time).
    extras : dict
        Further named arrays (e.g. ``"corrected"`` image of the bias-field method) or scalars.
    """

    labels: np.ndarray
    memberships: np.ndarray
    means: np.ndarray
    energy: np.ndarray
    n_iter: int
    converged: bool
    elapsed: float
    method: str
    params: dict = field(default_factory=dict)
    bias: np.ndarray | None = None
    level_sets: np.ndarray | None = None
    times: np.ndarray | None = None
    extras: dict = field(default_factory=dict)

    @property
    def n_phases(self) -> int:
        """Number of phases K."""
        return int(self.memberships.shape[0])

    @property
    def final_energy(self) -> float:
        """Last recorded value of the shared energy (NaN when none was recorded)."""
        return float(self.energy[-1]) if len(self.energy) else float("nan")

    def __array__(self, dtype=None, copy=None):
        """Return the hard labels as an array (NumPy protocol): ``np.asarray(result)``.

        ``dtype`` converts; ``copy=True`` always copies, ``copy=False`` raises ValueError
        when a conversion would need a copy (NumPy 2 semantics).
        """
        lab = np.asarray(self.labels)
        if dtype is None or np.dtype(dtype) == lab.dtype:
            return lab.copy() if copy else lab
        if copy is False:
            raise ValueError(
                f"Segmentation labels have dtype {lab.dtype}; converting to "
                f"{np.dtype(dtype)} needs a copy, but copy=False was given"
            )
        return lab.astype(dtype)

    def __repr__(self) -> str:
        """One line: method, shape, K, iterations, convergence and rounded time."""
        shape = tuple(int(s) for s in np.shape(self.labels))
        return (
            f"Segmentation(method={self.method!r}, shape={shape}, K={self.n_phases}, "
            f"n_iter={self.n_iter}, converged={self.converged}, "
            f"elapsed={self.elapsed:.3g}s)"
        )

    def save(self, path) -> Path:
        """Save losslessly to a NumPy ``.npz`` file (suffix added if missing), atomically.

        Arrays are stored as they are; ``params`` and scalar fields as JSON; array-valued
        ``extras`` (and NumPy scalars) as ``extra__<name>`` entries. The archive is written
        to a temporary file in the same folder and moved over ``path`` with
        :func:`os.replace`, so a crash or kill during the save leaves any previous file
        intact.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        TypeError
            When a field or an ``extras`` entry cannot round-trip exactly (object arrays,
            tensors, tuples, arbitrary objects); the message names the key.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = (
                path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
            )
        arrays = {}
        for k in _ARRAYS:
            if getattr(self, k) is not None:
                arrays[k] = _storable_array(getattr(self, k), k, tensors=True)
        arrays_extra, scalars, np_scalars = _split_extras(self.extras)
        arrays.update(arrays_extra)
        meta = {
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
            "elapsed": float(self.elapsed),
            "method": self.method,
            "params": self.params,
            "extras": scalars,
            "numpy_scalar_extras": np_scalars,
            "format": _FORMAT,
        }
        meta_text = json.dumps(meta, default=_json_default)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            _write_npz(fh, {"__meta__": np.array(meta_text), **arrays})
        return path

    @classmethod
    def load(cls, path) -> Segmentation:
        """Load a result written by :meth:`save`.

        Parameters
        ----------
        path : str or Path

        Returns
        -------
        Segmentation

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            One line naming the file when it is empty, truncated, not an ``.npz`` archive,
            not a varseg result, or has corrupt metadata.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved segmentation at {path}")
        try:
            meta, arrays = _read_npz(path)
            return cls._from_parts(meta, arrays)
        except _NotSegmentation as err:
            raise ValueError(f"{path} is not a varseg Segmentation file: {err}") from None
        except Exception as err:  # noqa: BLE001 - zip, zlib, EOF, JSON: all mean "corrupt"
            raise ValueError(
                f"could not load varseg Segmentation {path} (corrupt or "
                f"truncated): {_one_line(err)}"
            ) from None

    @classmethod
    def _from_parts(cls, meta, arrays):
        """Build a Segmentation from the decoded ``__meta__`` and the arrays."""
        if not isinstance(meta, dict):
            raise _NotSegmentation("__meta__ is not a JSON object")
        for key, types in _META_TYPES.items():
            value = meta.get(key)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise _NotSegmentation(f"metadata {key!r} is missing or has the wrong type")
        missing = [k for k in _REQUIRED if k not in arrays]
        if missing:
            raise _NotSegmentation(f"missing arrays {missing}")
        extras = dict(meta.get("extras", {}))
        np_scalars = set(meta.get("numpy_scalar_extras", []))
        for k in list(arrays):
            if k.startswith("extra__"):
                name = k[len("extra__") :]
                value = arrays.pop(k)
                extras[name] = value[()] if name in np_scalars else value
        kw = {f.name: arrays.get(f.name) for f in fields(cls) if f.name in _ARRAYS}
        return cls(
            n_iter=meta["n_iter"],
            converged=meta["converged"],
            elapsed=meta["elapsed"],
            method=meta["method"],
            params=meta["params"],
            extras=extras,
            **kw,
        )

    def summary(self) -> str:
        """One-line human-readable description."""
        return (
            f"{self.method}: K={self.n_phases}, energy={self.final_energy:.6g}, "
            f"iterations={self.n_iter}, converged={self.converged}, "
            f"time={self.elapsed:.3f}s"
        )


class _NotSegmentation(ValueError):
    """A readable archive that is not a varseg result (reason in the message)."""


def _one_line(err, limit=200) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: zlib level of the compressed entries of a saved result: level 1 packs label maps about as
#: tightly as the default level 6, several times faster
_NPZ_COMPRESS_LEVEL = 1


def _write_npz(fh, arrays):
    """Write ``arrays`` as an ``.npz`` archive that :func:`numpy.load` reads.

    Integer and boolean arrays (label maps: long runs of a few values) are deflated at
    :data:`_NPZ_COMPRESS_LEVEL`; floating-point arrays (memberships, level sets, bias fields,
    histories), which zlib shrinks by a factor of 1-2 at a cost of about 5 ms per 256² plane,
    are stored as they are. Every entry keeps its CRC-32, so corruption is still detected on
    loading. ``numpy.savez_compressed`` instead deflates everything at level 6 (the saves
    of ``varseg compare sample:camera`` took about 1 s, now about 0.1 s).
    """
    import io
    import zipfile

    with zipfile.ZipFile(fh, "w", allowZip64=True) as zf:
        for key, value in arrays.items():
            arr = np.asanyarray(value)
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            deflate = arr.dtype.kind in "biu"
            zf.writestr(
                zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0)),
                buf.getbuffer(),
                compress_type=zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED,
                compresslevel=_NPZ_COMPRESS_LEVEL if deflate else None,
            )


def _read_npz(path):
    """``(meta, arrays)`` of a saved result; every array is decoded here (CRC checked)."""
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise _NotSegmentation("no __meta__ entry")
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return meta, arrays


def _storable_array(value, key, *, tensors=False):
    """``value`` as an array that ``np.load(allow_pickle=False)`` gives back exactly.

    A CPU tensor in a main field (``tensors=True``) is stored as its NumPy array (those
    fields are documented as arrays); in ``extras`` it is refused, as it would come back as
    an ndarray instead of a tensor.
    """
    if _is_tensor(value) and tensors:
        value = value.detach().cpu().numpy()
    if _is_tensor(value):
        raise TypeError(
            f"cannot save {key!r}: a {type(value).__module__}."
            f"{type(value).__name__}; convert it with .cpu().numpy() first"
        )
    arr = np.asarray(value)
    if arr.dtype.kind not in _EXACT_KINDS:
        raise TypeError(
            f"cannot save {key!r}: arrays of dtype {arr.dtype} do not round-trip "
            "(expected bool, integer, float, complex or string arrays)"
        )
    return arr


def _is_tensor(value):
    return type(value).__module__.split(".")[0] == "torch"


def _is_json_exact(value):
    """Whether ``json.loads(json.dumps(value)) == value`` with the same types."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return not isinstance(value, np.generic)
    if isinstance(value, list):
        return all(_is_json_exact(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json_exact(v) for k, v in value.items())
    return False


def _split_extras(extras):
    """Arrays (``extra__<name>``), JSON scalars and the names of NumPy-scalar extras."""
    if not isinstance(extras, dict):
        raise TypeError(f"extras must be a dict; got {type(extras).__name__}")
    arrays, scalars, np_scalars = {}, {}, []
    for k, v in extras.items():
        if not isinstance(k, str):
            raise TypeError(f"cannot save extras key {k!r}: keys must be strings")
        if isinstance(v, (np.ndarray, np.generic)) or _is_tensor(v):
            arrays[f"extra__{k}"] = _storable_array(v, f"extras[{k!r}]")
            if isinstance(v, np.generic):
                np_scalars.append(k)
        elif _is_json_exact(v):
            scalars[k] = v
        else:
            raise TypeError(
                f"cannot save extras[{k!r}]: a {type(v).__name__} does not "
                "round-trip; use an array, a number, a string, None, or "
                "lists / str-keyed dicts of those"
            )
    return arrays, scalars, np_scalars


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)
