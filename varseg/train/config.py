"""Training configurations: one JSON file per experiment of Kim & Ye (IEEE TIP 2019).

A :class:`TrainConfig` holds everything a run needs (dataset, model, mode, labelled fraction,
loss weights, optimiser and schedule). The experiments of the paper ship as JSON files in
``varseg/train/configs/`` (:func:`list_configs`, :func:`load_config`); every field can be
overridden from the command line (``varseg train --config NAME --lr 1e-4 ...`` or the generic
``--set KEY=VALUE``).

Modes (Kim & Ye 2019, Sec. III-C; see :mod:`varseg.train.modes`):

``"supervised"``
    Cross-entropy (Eq. 18), plus ``ms_weight`` times the Mumford–Shah loss (Eq. 12) as a
    regulariser when ``ms_weight > 0`` (Eq. 16 with α = 1 everywhere).
``"semi"``
    Eq. 16-17: cross-entropy on the labelled images (``labeled_fraction`` of the training
    set), Mumford–Shah loss on all of them.
``"unsupervised"``
    Mumford–Shah loss only (Eq. 12), or the bias-field loss (Eq. 19-20) with
    ``bias_field=True``.
``"advsemi"``
    AdvSemi (Hung et al., BMVC 2018) with its discriminator, plus ``ms_weight`` times the
    Mumford–Shah loss on every image (Kim & Ye 2019, Tables I-III).

``lambda_ms`` (config key) is a deprecated alias of ``ms_weight`` (``DeprecationWarning``);
``length_weight`` is the λ inside Eq. 12. On resume only :data:`EXTENDABLE` keys may change
(:func:`resume_changes`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "ADVSEMI_DEFAULTS",
    "DEPRECATED_KEYS",
    "EXTENDABLE",
    "MODES",
    "OPTIMIZERS",
    "SCHEDULES",
    "TrainConfig",
    "list_configs",
    "load_config",
    "config_path",
    "advsemi_settings",
    "canonical_dataset",
    "check_kwargs",
    "dataset_class",
    "resume_changes",
]

MODES = ("supervised", "semi", "unsupervised", "advsemi")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "step", "poly")
SEMI_SAMPLING = ("mixed", "paired")
_AMP = ("auto", True, False)

#: Deprecated config keys and their new names (accepted for one release, with a warning).
DEPRECATED_KEYS = {"lambda_ms": "ms_weight"}

#: Keys a resumed run may change: the run length upward, and settings that do not define
#: the run (how often to validate, how many loader processes).
EXTENDABLE = ("max_steps", "epochs", "eval_every", "num_workers")

#: AdvSemi's PASCAL VOC settings (Hung et al., BMVC 2018): loss weights and schedule of
#: :class:`varseg.models.AdvSemiLossWeights`, discriminator Adam 1e-4 with betas (0.9, 0.99)
#: and ``ndf`` = 64 channels.
ADVSEMI_DEFAULTS = {
    "lambda_adv": 0.01,
    "lambda_semi": 0.1,
    "lambda_semi_adv": 0.001,
    "mask_T": 0.2,
    "semi_start": 5000,
    "semi_start_adv": 0,
    "d_lr": 1e-4,
    "d_betas": [0.9, 0.99],
    "ndf": 64,
}


def advsemi_settings(overrides: dict | None = None) -> dict:
    """AdvSemi settings: :data:`ADVSEMI_DEFAULTS` updated with ``overrides``.

    Parameters
    ----------
    overrides : dict or None
        The ``advsemi`` object of a config.

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        Unknown key (the message lists the valid ones) or a negative weight.
    """
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(ADVSEMI_DEFAULTS))
    if unknown:
        raise ValueError(
            f"unknown advsemi setting(s) {unknown}; valid: {', '.join(ADVSEMI_DEFAULTS)}"
        )
    s = {**ADVSEMI_DEFAULTS, **overrides}
    for k in ("lambda_adv", "lambda_semi", "lambda_semi_adv", "mask_T", "d_lr"):
        if float(s[k]) < 0:
            raise ValueError(f"advsemi.{k} must be >= 0; got {s[k]}")
    if len(s["d_betas"]) != 2:
        raise ValueError(f"advsemi.d_betas must be two numbers; got {s['d_betas']}")
    return s


def _renamed(data: dict) -> dict:
    """Return ``data`` with deprecated keys renamed (one ``DeprecationWarning`` per key)."""
    data = dict(data)
    for old, new in DEPRECATED_KEYS.items():
        if old in data:
            warnings.warn(
                f"config key {old!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=3
            )
            value = data.pop(old)
            if new in data and data[new] is not None and value is not None and data[new] != value:
                raise ValueError(
                    f"{old!r} (deprecated) and {new!r} disagree: {value} vs "
                    f"{data[new]}; give {new!r} only"
                )
            data.setdefault(new, value)
            if data[new] is None:
                data[new] = value
    return data


@dataclass
class TrainConfig:
    """All settings of one training run.

    Attributes
    ----------
    name, description, notes : str
        Identification; ``notes`` says where each paper value comes from.
    dataset : str
        A :data:`varseg.data.DATASET_NAMES` entry (``"voc"``, ``"lits"``, ``"brats"``,
        ``"bsds500"``, ``"synthetic"``).
    root : str or None
        Dataset folder (not needed for ``"synthetic"``).
    train_split, val_split : str, str or None
        Training split; optional split evaluated every ``eval_every`` epochs.
    dataset_kw, eval_dataset_kw : dict
        Keyword arguments of the dataset class (training; extra ones for evaluation).
    crop_size, image_size : int, [H, W] or None
        Forwarded to the dataset when given (VOC takes ``crop_size``, the others
        ``image_size``).
    num_classes : int or None
        Output classes; default the dataset's (required for BSDS500, where it is the number
        of segments of the unsupervised network).
    model, model_kw : str, dict
        :func:`varseg.models.build_model` name and keyword arguments.
    bias_field : bool
        Build the model with the bias-field output (Fig. 2(b)) and train with Eq. 19-20
        (``"unsupervised"`` mode).
    mode : {"supervised", "semi", "unsupervised", "advsemi"}
    labeled_fraction : float or str
        Fraction of labelled training items (``"1/8"``, ``0.25``, ...) for ``"semi"`` and
        ``"advsemi"``; volumes (LiTS, BraTS) are labelled by whole scans.
    split_seed : int
        Seed of the labelled subset (:func:`varseg.data.labeled_subset`).
    semi_sampling : {"mixed", "paired"}
        ``"mixed"``: batches drawn from the whole (partly labelled) set, Eq. 17's α per
        sample, one forward pass per batch (as the official implementation). ``"paired"``:
        every step takes ``batch_size`` labelled and ``batch_size`` unlabelled images, in two
        forward passes so that batch-norm statistics never mix them (AdvSemi's scheme; always
        used by ``"advsemi"``). With ``ms_weight == 0`` the unlabelled images are not loaded.
    ms_weight : float
        λ of Eq. 16 (weight of the Mumford–Shah term next to the cross-entropy); the
        deprecated key ``lambda_ms`` is accepted as an alias.
    length_weight : float
        λ inside Eq. 12 (weight of the length term of the Mumford–Shah loss).
    beta : float
        β of Eq. 19 (total variation of the bias field).
    bias_sigma : float
        Unsupervised mode: standard deviation (pixels) of a Gaussian applied to the network's
        bias before the loss (:func:`varseg.losses.smooth_bias`); 0: none.
    kmeans_warm_steps : int
        Unsupervised mode: the first steps fit each image's own k-means partition by
        cross-entropy (:func:`varseg.train.modes.kmeans_targets`) before the loss takes over.
    tv : {"isotropic", "anisotropic"}
        Length-term discretisation (``"anisotropic"`` is the official code's L1 form).
    ms_reduction : {"mean", "sum"}
        Reduction of the Mumford–Shah loss (see :mod:`varseg.losses`); ``"sum"`` with
        λ = 1e-6 is the official implementation's convention.
    optimizer : {"adam", "adamw", "sgd"}
    lr, momentum, weight_decay, betas
        Optimiser settings (``betas`` for Adam, ``momentum`` for SGD).
    head_lr_mult : float
        Learning-rate multiplier of the head of models with ``parameter_groups``
        (DeepLab-v2: 10, as AdvSemi).
    schedule : {"constant", "step", "poly"}
        ``"step"``: multiply by ``lr_gamma`` every ``lr_step_epochs`` epochs (the paper's
        "halving every 20 epochs"); ``"poly"``: ``(1 - step / total) ** poly_power``.
    epochs, max_steps : int or None
        Run length; with both, the shorter one wins.
    batch_size : int
        *Global* batch size (split over the processes of a distributed run).
    num_workers : int
        DataLoader worker processes.
    seed : int
        Seed of the model initialisation, of the data order and of the augmentation.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    amp : "auto" or bool
        Mixed precision (autocast + GradScaler); ``"auto"`` = on for CUDA only.
    checkpoint_every, log_every, eval_every : int
        Steps between checkpoints (0: only at the end), steps between log rows, epochs
        between evaluations on ``val_split`` (0: never).
    grad_clip : float or None
        Clip the gradient norm of the segmentation network.
    advsemi : dict
        AdvSemi settings (see :data:`ADVSEMI_DEFAULTS`).
    sweep : dict or None
        Settings of :func:`varseg.train.sweep.run_sweep` (labelled-fraction sweep).
    """

    name: str = "custom"
    description: str = ""
    notes: str = ""
    dataset: str = "synthetic"
    root: str | None = None
    train_split: str = "train"
    val_split: str | None = None
    dataset_kw: dict = field(default_factory=dict)
    eval_dataset_kw: dict = field(default_factory=dict)
    crop_size: Any = None
    image_size: Any = None
    num_classes: int | None = None
    model: str = "unet"
    model_kw: dict = field(default_factory=dict)
    bias_field: bool = False
    mode: str = "supervised"
    labeled_fraction: Any = 1.0
    split_seed: int = 0
    semi_sampling: str = "mixed"
    ms_weight: float = 0.0
    length_weight: float = 1e-3
    beta: float = 1e-3
    bias_sigma: float = 0.0
    kmeans_warm_steps: int = 0
    tv: str = "isotropic"
    ms_reduction: str = "mean"
    optimizer: str = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0
    betas: Any = (0.9, 0.999)
    head_lr_mult: float = 10.0
    schedule: str = "constant"
    lr_step_epochs: int = 20
    lr_gamma: float = 0.5
    poly_power: float = 0.9
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int = 4
    num_workers: int = 0
    seed: int = 0
    device: str = "auto"
    amp: Any = "auto"
    checkpoint_every: int = 500
    log_every: int = 10
    eval_every: int = 0
    grad_clip: float | None = None
    advsemi: dict = field(default_factory=dict)
    sweep: dict | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Names of all configuration fields."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build and validate a configuration from a plain dict.

        Raises
        ------
        ValueError
            For an unknown key (the message lists the valid ones) or an invalid value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a training config must be a JSON object; got {type(data).__name__}")
        data = _renamed(data)
        names = cls.field_names()
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(names)}")
        return cls(**data).validate()

    def to_dict(self) -> dict:
        """Plain, JSON-serialisable dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    def replace(self, *, validate: bool = True, **changes) -> TrainConfig:
        """Return a validated copy with ``changes`` applied (``None`` values are ignored).

        ``validate=False`` skips the validation (for a sequence of changes validated once).
        """
        changes = _renamed({k: v for k, v in changes.items() if v is not None})
        unknown = sorted(set(changes) - set(self.field_names()))
        if unknown:
            raise ValueError(
                f"unknown config key(s) {unknown}; valid keys: {', '.join(self.field_names())}"
            )
        new = dataclasses.replace(self, **changes)
        return new.validate() if validate else new

    def set_option(self, key: str, value, *, validate: bool = True) -> TrainConfig:
        """Return a copy with one (possibly nested, dotted) option set: ``"advsemi.mask_T"``."""
        head, _, rest = key.replace("-", "_").partition(".")
        if head in DEPRECATED_KEYS and not rest:
            return self.replace(validate=validate, **{head: value})
        if head not in self.field_names():
            raise ValueError(
                f"unknown config key {head!r}; valid keys: {', '.join(self.field_names())}"
            )
        if not rest:
            new = dataclasses.replace(self, **{head: value})
            return new.validate() if validate else new
        current = getattr(self, head)
        if current is None:
            current = {}
        if not isinstance(current, dict):
            raise ValueError(f"config key {head!r} is not a dict; cannot set {key!r}")
        new = json.loads(json.dumps(current))
        node = new
        parts = rest.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
        new = dataclasses.replace(self, **{head: new})
        return new.validate() if validate else new

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Check values and normalise types; returns ``self``.

        Raises
        ------
        ValueError
            Naming the field and the accepted values.
        """
        self._validate_names()
        self._validate_numbers()
        self._validate_objects()
        return self

    @property
    def lambda_ms(self) -> float:
        """Deprecated alias of :attr:`ms_weight`."""
        warnings.warn(
            "TrainConfig.lambda_ms is deprecated; use ms_weight", DeprecationWarning, stacklevel=2
        )
        return self.ms_weight

    def _validate_names(self) -> None:
        from varseg.models import MODEL_NAMES

        self.dataset = canonical_dataset(self.dataset)
        model = str(self.model).strip().lower().replace("_", "-")
        if model not in MODEL_NAMES:
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(MODEL_NAMES)}"
            )
        self.model = model
        _choice("mode", self.mode, MODES)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("semi_sampling", self.semi_sampling, SEMI_SAMPLING)
        _choice("tv", self.tv, ("isotropic", "anisotropic"))
        _choice("ms_reduction", self.ms_reduction, ("mean", "sum"))
        if self.amp not in _AMP:
            raise ValueError(f"amp must be 'auto', true or false; got {self.amp!r}")

    def _validate_numbers(self) -> None:
        import varseg.data as vdata

        vdata.parse_fraction(self.labeled_fraction)
        for name in (
            "ms_weight",
            "length_weight",
            "beta",
            "bias_sigma",
            "weight_decay",
            "momentum",
        ):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {v}")
            setattr(self, name, v)
        if isinstance(self.kmeans_warm_steps, bool) or int(self.kmeans_warm_steps) < 0:
            raise ValueError(
                f"kmeans_warm_steps must be an integer >= 0; got {self.kmeans_warm_steps!r}"
            )
        self.kmeans_warm_steps = int(self.kmeans_warm_steps)
        if not float(self.lr) > 0 or not math.isfinite(float(self.lr)):
            raise ValueError(f"lr must be a finite number > 0; got {self.lr}")
        self.lr = float(self.lr)
        self.betas = tuple(float(b) for b in self.betas)
        if len(self.betas) != 2:
            raise ValueError(f"betas must be two numbers; got {self.betas}")
        for name in ("batch_size", "lr_step_epochs"):
            _positive_int(name, getattr(self, name))
        for name in ("epochs", "max_steps", "num_classes"):
            v = getattr(self, name)
            if v is not None:
                _positive_int(name, v)
        for name in (
            "num_workers",
            "checkpoint_every",
            "log_every",
            "eval_every",
            "seed",
            "split_seed",
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 0:
                raise ValueError(f"{name} must be an integer >= 0; got {v!r}")
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs or max_steps (the run length)")

    def _validate_objects(self) -> None:
        for name in ("dataset_kw", "eval_dataset_kw", "model_kw", "advsemi"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(
                    f"{name} must be a dict (JSON object); got {type(getattr(self, name)).__name__}"
                )
        if self.sweep is not None and not isinstance(self.sweep, dict):
            raise ValueError("sweep must be a dict (JSON object) or null")
        if self.bias_field and self.mode != "unsupervised":
            raise ValueError(
                "bias_field (Eq. 19-20) is a loss of the 'unsupervised' mode; "
                f"got mode {self.mode!r}"
            )
        from varseg.models import check_model_kwargs

        check_model_kwargs(self.model, self.model_kw)
        reserved = sorted({"bias_field", "in_channels", "num_classes"} & set(self.model_kw))
        if reserved:
            raise ValueError(
                f"model_kw must not set {reserved}: they come from the config "
                "(bias_field) and the dataset"
            )
        if self.model_kw.get("freeze_bn") and not self.model_kw.get("pretrained_backbone"):
            raise ValueError(
                "model_kw freeze_bn=true needs pretrained_backbone (frozen batch "
                "norm of a randomly initialised backbone is the identity and "
                "training diverges); set freeze_bn false or give the weights"
            )
        cls = dataset_class(self.dataset)
        check_kwargs(
            cls,
            self.dataset_kw,
            f"dataset {self.dataset!r} (dataset_kw)",
            exclude=("root", "split"),
        )
        check_kwargs(
            cls,
            self.eval_dataset_kw,
            f"dataset {self.dataset!r} (eval_dataset_kw)",
            exclude=("root", "split"),
        )
        if self.mode == "advsemi":
            advsemi_settings(self.advsemi)

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> Path:
        """Write the configuration as indented JSON (atomically)."""
        from varseg._atomic import atomic_write_text

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> TrainConfig:
        """Read a configuration written by :meth:`save` (or any config JSON file)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"config file {path} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from err
        return cls.from_dict(data)


def dataset_class(name: str):
    """Return the dataset class of ``name`` (:func:`varseg.data.dataset_class`)."""
    from varseg.data import dataset_class as _lookup

    return _lookup(name)


def canonical_dataset(name: str) -> str:
    """Return the canonical :data:`varseg.data.DATASET_NAMES` entry of a name or an alias.

    See :func:`varseg.data.canonical_dataset_name`.

    Raises
    ------
    ValueError
        Unknown name (the message lists the valid ones).
    """
    from varseg.data import canonical_dataset_name

    return canonical_dataset_name(name)


def check_kwargs(cls, kw: dict, what: str, exclude=()) -> None:
    """Raise ``ValueError`` naming the keys of ``kw`` that ``cls(...)`` does not accept.

    The one keyword filter of the training package: the constructor signature of ``cls``
    declares what it takes (a ``**kwargs`` constructor accepts everything).

    Parameters
    ----------
    cls : type
        Dataset or model class.
    kw : dict
        Keyword arguments to check.
    what : str
        Name used in the message.
    exclude : sequence of str
        Parameters set by the caller, not by ``kw``.
    """
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p in params if p != "self" and p not in exclude]
    unknown = sorted(set(kw) - set(accepted))
    if unknown:
        raise ValueError(
            f"unknown keyword argument(s) {unknown} for {what}; accepted: {', '.join(accepted)}"
        )


def resume_changes(saved: dict, new: dict, step: int | None = None) -> list[str]:
    """Keys that differ between a run's saved config and the config of a resume.

    Parameters
    ----------
    saved, new : dict
        :meth:`TrainConfig.to_dict` of the checkpoint's config and of the resume.
    step : int, optional
        Step of the checkpoint (``max_steps`` may not go below it).

    Returns
    -------
    list of str
        The changed keys that a resume may not change (empty: compatible). Only
        :data:`EXTENDABLE` keys may change, ``max_steps`` / ``epochs`` only upward (``None``
        counts as unlimited).
    """
    saved, new = _renamed(saved), _renamed(new)
    bad = []
    for key in sorted(set(saved) | set(new)):
        old_v, new_v = saved.get(key), new.get(key)
        if old_v == new_v or key in ("eval_every", "num_workers"):
            continue
        if key in ("max_steps", "epochs") and (
            new_v is None or (old_v is not None and new_v >= old_v)
        ):
            continue
        bad.append(key)
    if step is not None and new.get("max_steps") is not None and new["max_steps"] < step:
        bad.append("max_steps")
    return sorted(set(bad))


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of {', '.join(map(str, choices))}")


def _positive_int(name, value):
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")


def _config_dir():
    return resources.files("varseg.train") / "configs"


def list_configs() -> list[str]:
    """Names of the configurations shipped in ``varseg/train/configs/``."""
    return sorted(p.name[:-5] for p in _config_dir().iterdir() if p.name.endswith(".json"))


def config_path(name: str):
    """Return the packaged JSON file of configuration ``name``."""
    if name not in list_configs():
        raise ValueError(f"unknown config {name!r}; choose one of {', '.join(list_configs())}")
    return _config_dir() / f"{name}.json"


def load_config(name_or_path) -> TrainConfig:
    """Load a shipped configuration by name, or a JSON file by path.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A name from :func:`list_configs` (``"lits-unet-ms-1-10"``, ``"synthetic-sweep"``, ...)
        or the path of a JSON file.

    Raises
    ------
    ValueError
        Unknown name (the message lists the shipped ones) or invalid content.
    """
    p = Path(str(name_or_path))
    if p.suffix == ".json" and p.is_file():
        return TrainConfig.load(p)
    text = config_path(str(name_or_path)).read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:  # pragma: no cover - shipped files are checked
        raise ValueError(f"config {name_or_path!r} is not valid JSON: {err}") from err
    return TrainConfig.from_dict(data)
