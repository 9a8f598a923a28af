"""Registry of segmentation methods, with their metadata declared in one table.

Every entry is a :class:`MethodSpec`: where the function lives and how the comparison
harness and the command line talk to it (which keyword is its length weight and on which
scale, how it spells its iteration budget, whether it takes a seed, a device or a progress
flag, whether it needs torch). Nothing is discovered by inspecting signatures: what a method
accepts is declared here, and ``tests/test_methods.py`` checks each declaration against the
function's real signature.

Every registered function has the contract ``func(image, n_phases, *, channel_axis=None,
**options) -> varseg.Segmentation``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._optional import import_deep

__all__ = ["METHODS", "MethodSpec", "get_method", "get_spec", "method_names"]


@dataclass(frozen=True)
class MethodSpec:
    """Declared metadata of one segmentation method.

    Parameters
    ----------
    name : str
        Registry name (``"chan-vese"``, …).
    func : str or callable
        ``"module:function"`` (imported on first use) or the function itself.
    length_param : str or None
        Keyword of the method's length weight, or None when it has none it shares.
    length_scale : float
        The method receives ``length_scale * λ`` for the shared λ of Eq. 1 (Chan–Vese's
        ``mu`` counts each boundary once, the shared length term twice: ``mu = 2 λ``).
    iteration_param : str or None
        Keyword of the iteration budget (``max_iter`` for every iterative solver).
    takes_seed, takes_device, takes_progress : bool
        Whether the method accepts ``seed=``, ``device=`` and ``progress=``.
    needs_torch : bool
        The method runs on torch (``pip install 'varseg[deep]'``).
    jit : bool
        The method has first-use costs: Numba kernels that compile (or load from the cache)
        on first use, or torch's lazy initialisation of its first operators (about 0.5 s of
        ``neural`` on camera 256²). The harness warms it up on a small crop before the clock
        starts.
    options : tuple of str
        Every keyword the method accepts besides ``image``, ``n_phases``, ``channel_axis``
        (the command line's ``--param KEY=VALUE`` is checked against it).
    deprecated : tuple of str
        Old spellings the function still accepts with a ``DeprecationWarning`` (not
        offered by the command line).
    cli_defaults : dict
        Keywords the command line sets unless overridden, chosen so that ``varseg compare
        sample:camera`` finishes in seconds on a CPU.
    cli_threads : int or None
        torch CPU threads ``varseg compare`` runs the method with unless ``--threads`` is
        given (None: torch's own default).
    summary : str
        One line for ``--help`` and the docs.
    """

    name: str
    func: object
    length_param: str | None = "lam"
    length_scale: float = 1.0
    iteration_param: str | None = "max_iter"
    takes_seed: bool = True
    takes_device: bool = False
    takes_progress: bool = False
    needs_torch: bool = False
    jit: bool = False
    options: tuple = ()
    deprecated: tuple = ()
    cli_defaults: dict = field(default_factory=dict)
    cli_threads: int | None = None
    summary: str = ""

    def load(self):
        """Return the method's function (imported on first use)."""
        if callable(self.func):
            return self.func
        module, name = str(self.func).split(":")
        return getattr(import_deep(module, f"method {self.name!r}"), name)

    def accepts(self, key):
        """Whether ``key`` is a declared option of the method."""
        return key in self.options or key == "channel_axis"

    def shared_kwargs(self, *, lam=None, seed=None, progress=None, device=None):
        """Keywords implied by the shared settings, as this method spells them.

        ``lam`` becomes ``{length_param: length_scale * lam}``; ``seed``, ``progress`` and
        ``device`` are given only to methods that declare them.
        """
        kw = {}
        if lam is not None and self.length_param is not None:
            kw[self.length_param] = self.length_scale * float(lam)
        if seed is not None and self.takes_seed:
            kw["seed"] = seed
        if progress is not None and self.takes_progress:
            kw["progress"] = progress
        if device is not None and self.takes_device:
            kw["device"] = device
        return kw


_CV_OPTIONS = (
    "mu",
    "lambdas",
    "dt",
    "eps",
    "max_iter",
    "tol",
    "stop",
    "window",
    "init",
    "dtype",
    "seed",
    "record_energy",
    "return_history",
    "snapshot_every",
    "spacing",
    "init_regions",
)

#: method name -> :class:`MethodSpec`.
METHODS = {
    s.name: s
    for s in (
        MethodSpec(
            "chan-vese",
            "varseg.levelset:chan_vese",
            length_param="mu",
            length_scale=2.0,
            jit=True,
            options=_CV_OPTIONS,
            cli_defaults={"max_iter": 200},
            summary="multiphase Chan–Vese level sets (Vese–Chan 2002), Numba",
        ),
        MethodSpec(
            "lic",
            "varseg.levelset:bias_field_levelset",
            jit=True,
            options=(
                "mask",
                "sigma",
                "nu",
                "mu",
                "dt",
                "eps",
                "max_iter",
                "n_inner",
                "init",
                "lam",
                "seed",
                "tol",
            ),
            deprecated=("n_outer",),
            cli_defaults={"max_iter": 50},
            summary="Li et al. 2011 bias-field level set (local intensity clustering)",
        ),
        MethodSpec(
            "fixed-point",
            "varseg.fixed_point:ms_fixed_point",
            options=(
                "lam",
                "step",
                "max_iter",
                "tol",
                "init",
                "update",
                "curvature_eps",
                "dirac_eps",
                "dtype",
                "seed",
            ),
            cli_defaults={"max_iter": 200},
            jit=True,
            summary="the fixed point of Kim & Ye Eq. 15 as a plain solver (Numba, no torch)",
        ),
        MethodSpec(
            "unrolled",
            "varseg.unrolled:unrolled_segment",
            takes_device=True,
            takes_progress=True,
            needs_torch=True,
            options=(
                "model",
                "lam",
                "n_iter",
                "max_iter",
                "lr",
                "learn_kernels",
                "seed",
                "device",
                "progress",
            ),
            deprecated=("fit_steps",),
            cli_defaults={"max_iter": 20},
            summary="Eq. 15 unrolled as a network (optionally fitted per image)",
        ),
        MethodSpec(
            "neural",
            "varseg.neural:neural_segment",
            takes_device=True,
            takes_progress=True,
            needs_torch=True,
            options=(
                "lam",
                "bias_field",
                "beta",
                "kanezaki_ce",
                "ms_loss",
                "superpixels",
                "model",
                "init",
                "warm_steps",
                "restarts",
                "max_iter",
                "lr",
                "optimizer",
                "tol",
                "patience",
                "min_labels",
                "seed",
                "device",
                "progress",
                "tv",
                "hidden_channels",
                "bias_model",
                "bias_degree",
                "bias_sigma",
            ),
            # compare's budget, about 1.5 s on camera 256² (20 + 20 steps of an 8-channel
            # network on one thread; a second thread on a busy 2-core machine made it 3-10x
            # slower). Shared energy of camera over seeds 0-2: K=2 1212 (k-means 1413, the
            # previous 300-step budget 1204, chan-vese 1181); K=3 889 / 922 / 1117 (k-means
            # 1351, 300 steps 802), where 10 + 10 steps stayed at the two-region 1212-1216
            cli_defaults={"max_iter": 20, "warm_steps": 20, "hidden_channels": 8, "lr": 0.03},
            cli_threads=1,
            jit=True,
            summary="per-image network minimising the MS loss (Sec. IV-B3)",
        ),
        MethodSpec(
            "kmeans",
            "varseg.baselines:kmeans_segment",
            options=("seed", "max_iter", "lam"),
            summary="k-means of the intensities (baseline)",
        ),
        MethodSpec(
            "otsu",
            "varseg.baselines:otsu_segment",
            iteration_param=None,
            takes_seed=False,
            options=("lam", "nbins"),
            summary="multi-Otsu thresholds (baseline)",
        ),
    )
}


def method_names():
    """Names accepted by :func:`get_method`, sorted."""
    return sorted(METHODS)


def get_spec(name):
    """Return the :class:`MethodSpec` registered under ``name``.

    Raises
    ------
    ValueError
        Unknown method name (the message lists the known ones).
    """
    if isinstance(name, MethodSpec):
        return name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; expected one of {method_names()}")
    return METHODS[name]


def get_method(name):
    """Return the segmentation function registered under ``name``.

    ``name`` itself is returned when it is a callable.

    Raises
    ------
    ValueError
        Unknown method name (the message lists the known ones).
    ImportError
        The method needs torch and torch is not installed (one line naming the extra).
    """
    if callable(name) and not isinstance(name, MethodSpec):
        return name
    return get_spec(name).load()
