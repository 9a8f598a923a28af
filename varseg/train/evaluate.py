"""Evaluate a trained network with the metrics of Kim & Ye (IEEE TIP 2019, Tables I-VII).

Per dataset (:data:`METRIC_KINDS`):

``"voc"``
    PASCAL VOC: counts pooled over the split in a :class:`varseg.metrics.ConfusionMatrix`
    (void 255 ignored) -> ``mIoU``, ``accuracy`` (pixel accuracy), ``recall`` (mean class
    recall), ``precision`` (mean class precision), and per-class IoU (Tables I-III).
``"foreground"``
    LiTS, BraTS, synthetic: for every foreground class (1 .. K-1), ``dice``, ``precision``,
    ``recall``, ``iou`` of the pooled counts, and their mean over the foreground classes
    (Tables IV-V). Binary conventions of :mod:`varseg.metrics`: both masks empty -> 1;
    a never-predicted but present class has precision 0.
``"bsds"``
    BSDS500: the predicted labels are region ids, scored against **all** human
    segmentations of each image: segmentation covering ``covering`` (RC, pooled over
    images), ``PRI`` and ``VI`` (bits; means over images), as
    :func:`varseg.metrics.bsds_region_scores` (Table VI). Inference at the original
    resolution unless an ``image_size`` is given (then the logits are resized back).

A network trained without labels (``"unsupervised"`` mode) evaluated on a labelled dataset
has its clusters matched to classes per image (:func:`varseg.metrics.match_labels`,
one-to-one Hungarian matching; unmatched clusters count as errors).

Every result also holds ``time_per_image_s``: the mean wall time of the forward pass per
image (after one warm-up pass; CUDA synchronised), the "time" column of Table VII.

An image without ground truth (no label, or no labelled pixel; BSDS500: no human
segmentation) is an error naming it, unless ``skip_missing=True`` (``varseg evaluate
--skip-missing``): then it is left out, ``n_images`` counts the scored images and
``n_skipped`` / ``skipped`` report the others. A split that the dataset does not define
(:data:`EVAL_SPLITS`) is refused.

:class:`ValidationHandler` is the validator the trainer calls during training
(:class:`varseg.train.engine.Trainer` never imports this module).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from varseg._atomic import atomic_write_text
from varseg.metrics.overlap import scores_from_confusion
from varseg.models import split_output

from .builders import TaskInfo, dataset_kwargs, rebuild_model
from .checkpoint import load_checkpoint, resolve_device
from .config import TrainConfig, canonical_dataset, check_kwargs, dataset_class

__all__ = [
    "EVAL_SPLITS",
    "METRIC_KINDS",
    "ValidationHandler",
    "eval_dataset_kwargs",
    "build_eval_dataset",
    "evaluate_model",
    "evaluate_training_model",
    "evaluate_checkpoint",
    "format_results",
    "write_results",
]

METRIC_KINDS = {
    "voc": "voc",
    "lits": "foreground",
    "brats": "foreground",
    "synthetic": "foreground",
    "bsds500": "bsds",
}
DEFAULT_SPLIT = {
    "voc": "val",
    "lits": "val",
    "brats": "val",
    "bsds500": "test",
    "synthetic": "test",
}
#: Splits each dataset defines (VOC: the split lists of its ImageSets folder, checked there).
EVAL_SPLITS = {
    "lits": ("train", "val", "all"),
    "brats": ("train", "val", "all"),
    "bsds500": ("train", "val", "test"),
    "synthetic": ("train", "val", "test"),
}
logger = logging.getLogger(__name__)
# training-only keys dropped when the evaluation set inherits the training settings
_TRAIN_ONLY = {
    "voc": ("crop_size", "scale_range", "flip", "augment", "seed"),
    "bsds500": ("image_size", "labels", "return_all_ground_truths"),
    "synthetic": ("n_images",),
    "lits": (),
    "brats": (),
}


def _canonical(name: str) -> str:
    return canonical_dataset(name)


def check_split(dataset: str, split: str) -> str:
    """``split`` if ``dataset`` defines it (:data:`EVAL_SPLITS`), else ``ValueError``.

    Parameters
    ----------
    dataset : str
        Canonical dataset name.
    split : str
        Requested split.

    Returns
    -------
    str
    """
    valid = EVAL_SPLITS.get(dataset)
    if valid is not None and split not in valid:
        raise ValueError(
            f"unknown split {split!r} for dataset {dataset!r}; choose one of {', '.join(valid)}"
        )
    return split


def eval_dataset_kwargs(
    dataset: str, train_cfg: TrainConfig | None = None, dataset_kw: dict | None = None
) -> dict:
    """Dataset keyword arguments for evaluation.

    When the network was trained on the same dataset, the settings that define the data
    (image size, slice context, windowing, the scan split's ``seed`` / ``val_cases``,
    synthetic generation parameters, normalisation) are inherited from its training config;
    augmentation is switched off; BSDS500 returns all human segmentations. ``dataset_kw``
    overrides everything.
    """
    dataset = _canonical(dataset)
    kw: dict = {}
    if train_cfg is not None and train_cfg.dataset == dataset:
        kw = dataset_kwargs(train_cfg, evaluation=True)
        for k in _TRAIN_ONLY[dataset]:
            kw.pop(k, None)
    if dataset == "voc":
        kw["augment"] = False
    if dataset == "bsds500":
        kw["return_all_ground_truths"] = True
        kw["labels"] = False
    kw.update(dataset_kw or {})
    return kw


def build_eval_dataset(
    dataset: str,
    root=None,
    split: str | None = None,
    train_cfg: TrainConfig | None = None,
    dataset_kw: dict | None = None,
):
    """Build the evaluation dataset (see :func:`eval_dataset_kwargs`)."""
    from varseg.data import build_dataset

    dataset = _canonical(dataset)
    split = check_split(dataset, split or DEFAULT_SPLIT[dataset])
    kw = eval_dataset_kwargs(dataset, train_cfg, dataset_kw)
    check_kwargs(
        dataset_class(dataset), kw, f"dataset {dataset!r} (dataset_kw)", exclude=("root", "split")
    )
    return build_dataset(dataset, root, split=split, **kw)


def _class_names(dataset, k: int) -> list[str]:
    names = getattr(dataset, "classes", None)
    if names is not None and len(names) == k:
        return [str(n) for n in names]
    return [f"class_{i}" for i in range(k)]


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _items(batch: dict):
    """Split a collated batch back into per-image views (images may differ in size)."""
    n = len(batch["image"])
    for i in range(n):
        yield {
            k: (v[i] if isinstance(v, (list, torch.Tensor)) and len(v) == n else v)
            for k, v in batch.items()
        }


class _Scores:
    """Accumulates the counts of one evaluation (confusion matrix or BSDS region scores)."""

    def __init__(self, kind: str, k: int, ignore_index: int, unsupervised: bool):
        from varseg.metrics import ConfusionMatrix

        self.kind, self.k, self.ignore_index = kind, k, ignore_index
        self.unsupervised = unsupervised
        extra = 1 if unsupervised else 0  # bucket of clusters left unmatched
        self.cm = ConfusionMatrix(k + extra, ignore_index=ignore_index) if kind != "bsds" else None
        self.bsds = {"num": 0.0, "den": 0.0, "PRI": [], "VI": []}
        self.n_images = 0
        self.skipped: list[str] = []

    def has_ground_truth(self, item: dict) -> bool:
        """Whether ``item`` carries something to score against."""
        if self.kind == "bsds":
            return len(item.get("ground_truths") or []) > 0
        target = item.get("label")
        if target is None or not bool(item.get("labeled", True)):
            return False
        return bool((torch.as_tensor(target) != self.ignore_index).any())

    def add(self, logits: torch.Tensor, item: dict) -> None:
        """Score the logits ``(K, H, W)`` of one image."""
        self.n_images += 1
        if self.kind == "bsds":
            self._add_bsds(logits, item)
        else:
            self._add_labels(logits, item)

    def _add_bsds(self, logits, item) -> None:
        from varseg.metrics import region_scores

        size = tuple(int(s) for s in item.get("orig_size", logits.shape[-2:]))
        logits = _resize(logits, size)
        seg = logits.argmax(0).cpu().numpy()
        r = region_scores(seg, [np.asarray(g) for g in item["ground_truths"]])
        self.bsds["num"] += r["covering_num"]
        self.bsds["den"] += r["covering_den"]
        self.bsds["PRI"].append(r["PRI"])
        self.bsds["VI"].append(r["VI"])

    def _add_labels(self, logits, item) -> None:
        from varseg.metrics import match_labels

        target = item["label"]
        logits = _resize(logits, tuple(target.shape[-2:]))
        pred = logits.argmax(0).cpu().numpy()
        target = target.cpu().numpy()
        if self.unsupervised:
            pred = np.asarray(match_labels(pred, target, ignore_index=self.ignore_index))
            pred = np.where((pred >= 0) & (pred < self.k), pred, self.k)
        self.cm.update(pred, target)


def _resize(logits: torch.Tensor, size: tuple) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]


class _TimedForward:
    """Forward passes with the Table VII timing (one untimed warm-up; CUDA synchronised)."""

    def __init__(self, model, device: torch.device):
        self.model, self.device = model, device
        self.seconds, self.warm = 0.0, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device).float()
        if not self.warm:
            self.model(x)
            self.warm = True
        self._sync()
        t0 = time.perf_counter()
        out = self.model(x)
        self._sync()
        self.seconds += time.perf_counter() - t0
        return split_output(out)[0].float()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def _score_loader(loader, forward: _TimedForward, scores: _Scores, skip_missing: bool) -> None:
    for batch in loader:
        items = list(_items(batch))
        for item in items:
            if not scores.has_ground_truth(item):
                name = str(item.get("name", item.get("index", "?")))
                if not skip_missing:
                    raise ValueError(
                        f"image {name} has no ground truth to score against; "
                        "pass skip_missing=True (--skip-missing) to leave such "
                        "images out"
                    )
                scores.skipped.append(name)
        images = batch["image"]
        groups = [images] if torch.is_tensor(images) else [im[None] for im in images]
        outs = [o for x in groups for o in forward(x)]
        for logits, item in zip(outs, items, strict=True):
            if scores.has_ground_truth(item):
                scores.add(logits, item)


def _results(scores: _Scores, name: str, dataset, seconds: float) -> dict:
    n = scores.n_images
    res: dict = {
        "dataset": name,
        "metric_kind": scores.kind,
        "n_images": n,
        "time_per_image_s": seconds / max(1, n + len(scores.skipped)),
    }
    if scores.skipped:
        res["n_skipped"] = len(scores.skipped)
        res["skipped"] = scores.skipped
        logger.info(
            "skipped %d image(s) without ground truth: %s",
            len(scores.skipped),
            ", ".join(scores.skipped[:5]),
        )
    if n == 0:
        raise ValueError(f"no image of the {name} evaluation set has ground truth")
    if scores.unsupervised and scores.kind != "bsds":
        res["matching"] = "hungarian-per-image"
    if scores.kind == "bsds":
        b = scores.bsds
        res.update(
            {
                "covering": b["num"] / b["den"],
                "PRI": float(np.mean(b["PRI"])),
                "VI": float(np.mean(b["VI"])),
            }
        )
        return res
    k = scores.k
    names = _class_names(getattr(dataset, "dataset", dataset), k)
    r = scores.cm.compute()
    if scores.kind == "voc":
        res.update(
            {
                "mIoU": _nanmean(r["iou"][:k]),
                "accuracy": _nan_to_none(float(r["accuracy"])),
                "recall": _nanmean(r["recall"][:k]),
                "precision": _nanmean(r["precision"][:k]),
                "per_class_iou": {
                    n: _nan_to_none(float(v)) for n, v in zip(names, r["iou"][:k], strict=True)
                },
            }
        )
        return res
    matrix = r["confusion_matrix"]
    per = {names[c]: scores_from_confusion(matrix, c) for c in range(1, k)}
    for key in ("dice", "precision", "recall", "iou"):
        res[key] = float(np.mean([v[key] for v in per.values()])) if per else None
    res["accuracy"] = _nan_to_none(float(r["accuracy"]))
    res["per_class"] = per
    return res


@torch.no_grad()
def evaluate_model(
    model,
    dataset,
    *,
    dataset_name: str,
    num_classes: int,
    ignore_index: int = -100,
    device="cpu",
    unsupervised: bool = False,
    batch_size: int = 1,
    max_images: int | None = None,
    progress: bool = False,
    skip_missing: bool = False,
) -> dict:
    """Score ``model`` on ``dataset`` (see the module docstring for the metrics).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(B, K, H, W)`` or ``(logits, bias)``.
    dataset : torch.utils.data.Dataset
        A :mod:`varseg.data` dataset (BSDS500 with ``return_all_ground_truths=True``).
    dataset_name : str
        Selects the metric family (:data:`METRIC_KINDS`).
    num_classes : int
        Classes of the labels (VOC 21, LiTS 3, ...); for BSDS500 unused.
    ignore_index : int
        Label excluded from the counts.
    device : str or torch.device
    unsupervised : bool
        Match clusters to classes per image before counting (Hungarian).
    batch_size : int
        Images per forward pass (1 for full-size VOC / BSDS500 images).
    max_images : int, optional
        Evaluate only the first images.
    progress : bool
        tqdm progress bar.
    skip_missing : bool
        Leave out images without ground truth (reported as ``n_skipped`` / ``skipped``)
        instead of raising.

    Returns
    -------
    dict
        Metrics, ``n_images`` (scored images) and ``time_per_image_s``.

    Raises
    ------
    ValueError
        An empty set, or an image without ground truth (unless ``skip_missing``).
    """
    from torch.utils.data import DataLoader, Subset

    from varseg.data import collate_keep_lists

    name = _canonical(dataset_name)
    kind = METRIC_KINDS[name]
    device = torch.device(device)
    if max_images is not None:
        dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
    if len(dataset) == 0:
        raise ValueError(f"the {name} evaluation set is empty")
    scores = _Scores(kind, int(num_classes), ignore_index, unsupervised)
    loader = DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate_keep_lists
    )
    if progress:
        from tqdm.auto import tqdm

        loader = tqdm(loader, desc=f"evaluate {name}", unit="batch")
    forward = _TimedForward(model, device)
    was_training = model.training
    model.eval()
    try:
        _score_loader(loader, forward, scores, skip_missing)
    finally:
        model.train(was_training)
    return _results(scores, name, dataset, forward.seconds)


def _nanmean(a) -> float | None:
    a = np.asarray(a, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def evaluate_training_model(
    model,
    cfg: TrainConfig,
    task: TaskInfo,
    *,
    device="cpu",
    split: str | None = None,
    dataset_kw: dict | None = None,
    max_images: int | None = None,
) -> dict:
    """Score a network being trained under ``cfg`` on ``split`` (default ``cfg.val_split``)."""
    split = split or cfg.val_split or DEFAULT_SPLIT[cfg.dataset]
    ds = build_eval_dataset(cfg.dataset, cfg.root, split, cfg, dataset_kw)
    return evaluate_model(
        model,
        ds,
        dataset_name=cfg.dataset,
        num_classes=int(getattr(ds, "num_classes", None) or task.num_classes),
        ignore_index=int(getattr(ds, "ignore_index", task.ignore_index)),
        device=device,
        unsupervised=cfg.mode == "unsupervised",
        max_images=max_images,
    )


class ValidationHandler:
    """The validator of :class:`varseg.train.engine.Trainer`: scores on ``cfg.val_split``.

    ``handler(model, cfg, task, device)`` returns :func:`evaluate_training_model`'s dict
    (MONAI's ``ValidationHandler`` pattern: the trainer calls it, never imports it).

    Parameters
    ----------
    split : str, optional
        Split to score (default ``cfg.val_split``).
    dataset_kw : dict, optional
        Extra dataset keyword arguments.
    max_images : int, optional
        Score only the first images.
    """

    def __init__(
        self,
        split: str | None = None,
        dataset_kw: dict | None = None,
        max_images: int | None = None,
    ):
        self.split, self.dataset_kw, self.max_images = split, dataset_kw, max_images

    def __call__(self, model, cfg: TrainConfig, task: TaskInfo, device) -> dict:
        """Score ``model`` with :func:`evaluate_training_model`."""
        return evaluate_training_model(
            model,
            cfg,
            task,
            device=device,
            split=self.split,
            dataset_kw=self.dataset_kw,
            max_images=self.max_images,
        )


def evaluate_checkpoint(
    checkpoint,
    dataset: str | None = None,
    root=None,
    split: str | None = None,
    *,
    device="auto",
    dataset_kw: dict | None = None,
    batch_size: int = 1,
    max_images: int | None = None,
    progress: bool = False,
    skip_missing: bool = False,
) -> dict:
    """Rebuild the network of a training checkpoint and evaluate it.

    Parameters
    ----------
    checkpoint : path
        A ``last.pt`` written by :func:`varseg.train.train` (with ``model_name`` and
        ``model_config``).
    dataset, root : str, path, optional
        Default: those of the training config stored in the checkpoint.
    split : str, optional
        Default: ``"val"`` (``"test"`` for BSDS500 and synthetic).
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``...
    dataset_kw : dict, optional
        Extra dataset keyword arguments (see :func:`eval_dataset_kwargs`).
    batch_size, max_images, progress, skip_missing
        As in :func:`evaluate_model`.

    Returns
    -------
    dict
        The metrics with ``checkpoint``, ``split``, ``device``, ``step`` added.

    Raises
    ------
    FileNotFoundError
        Missing checkpoint, or missing dataset root (the dataset's own error).
    ValueError
        A corrupt checkpoint (checksum, truncated, foreign file), an unknown split, CUDA
        requested without CUDA, an image without ground truth.
    """
    ck = load_checkpoint(checkpoint)
    train_cfg = TrainConfig.from_dict(ck["config"]) if ck.get("config") else None
    dataset, root, split = _eval_target(train_cfg, dataset, root, split)
    dev = resolve_device(device)
    model = rebuild_model(ck["model_name"], ck["model_config"])
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as err:
        raise ValueError(
            f"checkpoint {checkpoint} does not fit its model "
            f"{ck['model_name']!r} ({str(err).splitlines()[0]})"
        ) from None
    model.to(dev).eval()
    ds = build_eval_dataset(dataset, root, split, train_cfg, dataset_kw)
    task = ck.get("task") or {}
    num_classes = getattr(ds, "num_classes", None) or task.get("num_classes")
    unsupervised = train_cfg is not None and train_cfg.mode == "unsupervised"
    res = evaluate_model(
        model,
        ds,
        dataset_name=dataset,
        num_classes=int(num_classes or 1),
        ignore_index=int(getattr(ds, "ignore_index", -100)),
        device=dev,
        unsupervised=unsupervised,
        batch_size=batch_size,
        max_images=max_images,
        progress=progress,
        skip_missing=skip_missing,
    )
    res.update(
        {
            "checkpoint": str(checkpoint),
            "split": split,
            "device": str(dev),
            "step": int(ck.get("step", 0)),
            "model": ck["model_name"],
        }
    )
    return res


def _eval_target(train_cfg, dataset, root, split):
    """``(dataset, root, split)`` with the training config's defaults, split checked."""
    if dataset is None:
        if train_cfg is None:
            raise ValueError("pass the dataset: the checkpoint stores no training config")
        dataset = train_cfg.dataset
    dataset = _canonical(dataset)
    if root is None and train_cfg is not None and train_cfg.dataset == dataset:
        root = train_cfg.root
    split = check_split(dataset, split or DEFAULT_SPLIT[dataset])
    return dataset, root, split


_ORDER = (
    "mIoU",
    "accuracy",
    "dice",
    "precision",
    "recall",
    "iou",
    "covering",
    "PRI",
    "VI",
    "time_per_image_s",
)


def format_results(res: dict) -> str:
    """Human-readable summary of :func:`evaluate_model` results."""
    head = f"{res.get('dataset')} {res.get('split', '')}: {res.get('n_images')} images"
    lines = [head.strip()]
    for k in _ORDER:
        if k in res and res[k] is not None:
            lines.append(
                f"  {k:<18} {res[k]:.4f}"
                if k != "time_per_image_s"
                else f"  {'time/image (s)':<18} {res[k]:.4g}"
            )
    per = res.get("per_class")
    if per:
        for cname, v in per.items():
            vals = "  ".join(f"{m} {x:.4f}" for m, x in v.items())
            lines.append(f"  [{cname}] {vals}")
    return "\n".join(lines)


def write_results(res: dict, path) -> Path:
    """Write results as JSON (NaN/inf as null), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(_jsonable(res), indent=2) + "\n")
    return path


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic,)):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj
