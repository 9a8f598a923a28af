"""The one result type returned by every segmentation method in varseg."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

__all__ = ["Segmentation"]

_ARRAYS = ("labels", "memberships", "means", "energy", "times", "bias", "level_sets")


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

    def save(self, path) -> Path:
        """Save losslessly to a NumPy ``.npz`` file (suffix added if missing).

        Arrays are stored as they are; ``params`` and scalar fields as JSON; array-valued
        ``extras`` as ``extra__<name>`` entries.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(
                ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {k: np.asarray(getattr(self, k)) for k in _ARRAYS
                  if getattr(self, k) is not None}
        scalars = {}
        for k, v in self.extras.items():
            if isinstance(v, np.ndarray):
                arrays[f"extra__{k}"] = v
            else:
                scalars[k] = v
        meta = {
            "n_iter": int(self.n_iter),
            "converged": bool(self.converged),
            "elapsed": float(self.elapsed),
            "method": self.method,
            "params": self.params,
            "extras": scalars,
            "format": "varseg.Segmentation/1",
        }
        np.savez_compressed(path, __meta__=np.array(json.dumps(meta, default=_json_default)),
                            **arrays)
        return path

    @classmethod
    def load(cls, path) -> Segmentation:
        """Load a result written by :meth:`save`."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no saved segmentation at {path}")
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z:
                raise ValueError(f"{path} is not a varseg Segmentation file (no __meta__)")
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        extras = dict(meta.get("extras", {}))
        for k in list(arrays):
            if k.startswith("extra__"):
                extras[k[len("extra__"):]] = arrays.pop(k)
        kw = {f.name: arrays.get(f.name) for f in fields(cls) if f.name in _ARRAYS}
        return cls(n_iter=meta["n_iter"], converged=meta["converged"], elapsed=meta["elapsed"],
                   method=meta["method"], params=meta["params"], extras=extras, **kw)

    def summary(self) -> str:
        """One-line human-readable description."""
        return (f"{self.method}: K={self.n_phases}, energy={self.final_energy:.6g}, "
                f"iterations={self.n_iter}, converged={self.converged}, "
                f"time={self.elapsed:.3f}s")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)
