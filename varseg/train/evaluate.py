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
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .builders import TaskInfo, dataset_kwargs, rebuild_model, split_output
from .config import TrainConfig

__all__ = [
    "METRIC_KINDS",
    "eval_dataset_kwargs",
    "build_eval_dataset",
    "evaluate_model",
    "evaluate_training_model",
    "evaluate_checkpoint",
    "format_results",
    "write_results",
]

METRIC_KINDS = {"voc": "voc", "lits": "foreground", "brats": "foreground",
                "synthetic": "foreground", "bsds500": "bsds"}
DEFAULT_SPLIT = {"voc": "val", "lits": "val", "brats": "val", "bsds500": "test",
                 "synthetic": "test"}
# training-only keys dropped when the evaluation set inherits the training settings
_TRAIN_ONLY = {
    "voc": ("crop_size", "scale_range", "flip", "augment", "seed"),
    "bsds500": ("image_size", "labels", "return_all_ground_truths"),
    "synthetic": ("n_images",),
    "lits": (),
    "brats": (),
}


def _canonical(name: str) -> str:
    import varseg.data as vdata

    key = str(name).strip().lower()
    key = getattr(vdata, "_ALIASES", {}).get(key, key)
    if key not in vdata.DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; choose one of "
                         f"{', '.join(vdata.DATASET_NAMES)}")
    return key


def eval_dataset_kwargs(dataset: str, train_cfg: TrainConfig | None = None,
                        dataset_kw: dict | None = None) -> dict:
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


def build_eval_dataset(dataset: str, root=None, split: str | None = None,
                       train_cfg: TrainConfig | None = None, dataset_kw: dict | None = None):
    """The evaluation dataset (see :func:`eval_dataset_kwargs`)."""
    from varseg.data import build_dataset

    dataset = _canonical(dataset)
    split = split or DEFAULT_SPLIT[dataset]
    return build_dataset(dataset, root, split=split,
                         **eval_dataset_kwargs(dataset, train_cfg, dataset_kw))


def _class_names(dataset, k: int) -> list[str]:
    names = getattr(dataset, "classes", None)
    if names is not None and len(names) == k:
        return [str(n) for n in names]
    return [f"class_{i}" for i in range(k)]


def _nan_to_none(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _binary_scores(cm: np.ndarray, c: int) -> dict:
    """Dice / precision / recall / IoU of class ``c`` from pooled counts, with the binary
    conventions of :mod:`varseg.metrics.overlap` (both empty -> 1, one empty -> 0)."""
    tp = float(cm[c, c])
    fp = float(cm[:, c].sum()) - tp
    fn = float(cm[c, :].sum()) - tp

    n_pred, n_true = tp + fp, tp + fn
    both_empty = n_pred == 0 and n_true == 0

    def ratio(num, den):
        if den == 0:  # P (precision) or T (recall) empty: 1 if both are, else 0
            return 1.0 if both_empty else 0.0
        return num / den

    return {"dice": ratio(2 * tp, 2 * tp + fp + fn), "precision": ratio(tp, n_pred),
            "recall": ratio(tp, n_true), "iou": ratio(tp, tp + fp + fn)}


def _items(batch: dict):
    """Split a collated batch back into per-image views (images may differ in size)."""
    n = len(batch["image"])
    for i in range(n):
        yield {k: (v[i] if isinstance(v, (list, torch.Tensor)) and len(v) == n else v)
               for k, v in batch.items()}


@torch.no_grad()
def evaluate_model(model, dataset, *, dataset_name: str, num_classes: int,
                   ignore_index: int = -100, device="cpu", unsupervised: bool = False,
                   batch_size: int = 1, max_images: int | None = None,
                   progress: bool = False) -> dict:
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

    Returns
    -------
    dict
        Metrics, ``n_images`` and ``time_per_image_s``.
    """
    from torch.utils.data import DataLoader, Subset

    from varseg.data import collate_keep_lists
    from varseg.metrics import ConfusionMatrix, match_labels, region_scores

    name = _canonical(dataset_name)
    kind = METRIC_KINDS[name]
    device = torch.device(device)
    if max_images is not None:
        dataset = Subset(dataset, range(min(int(max_images), len(dataset))))
    n_total = len(dataset)
    if n_total == 0:
        raise ValueError(f"the {name} evaluation set is empty")
    k = int(num_classes)
    extra = 1 if unsupervised else 0  # bucket of clusters left unmatched
    cm = ConfusionMatrix(k + extra, ignore_index=ignore_index) if kind != "bsds" else None
    bsds = {"num": 0.0, "den": 0.0, "PRI": [], "VI": []}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                        collate_fn=collate_keep_lists)
    was_training = model.training
    model.eval()
    fwd_time, n_images, warm = 0.0, 0, False
    it = loader
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(loader, desc=f"evaluate {name}", unit="batch")
    try:
        for batch in it:
            images = batch["image"]
            groups = [images] if torch.is_tensor(images) else [im[None] for im in images]
            outs = []
            for x in groups:
                x = x.to(device).float()
                if not warm:  # warm-up pass, not timed
                    model(x)
                    warm = True
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t0 = time.perf_counter()
                out = model(x)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                fwd_time += time.perf_counter() - t0
                outs.extend(split_output(out)[0].float())
            for logits, item in zip(outs, _items(batch), strict=True):
                n_images += 1
                if kind == "bsds":
                    size = tuple(int(s) for s in item.get("orig_size", logits.shape[-2:]))
                    if tuple(logits.shape[-2:]) != size:
                        logits = F.interpolate(logits[None], size=size, mode="bilinear",
                                               align_corners=False)[0]
                    seg = logits.argmax(0).cpu().numpy()
                    r = region_scores(seg, [np.asarray(g) for g in item["ground_truths"]])
                    bsds["num"] += r["covering_num"]
                    bsds["den"] += r["covering_den"]
                    bsds["PRI"].append(r["PRI"])
                    bsds["VI"].append(r["VI"])
                    continue
                target = item["label"]
                if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
                    logits = F.interpolate(logits[None], size=tuple(target.shape[-2:]),
                                           mode="bilinear", align_corners=False)[0]
                pred = logits.argmax(0).cpu().numpy()
                target = target.cpu().numpy()
                if unsupervised:
                    pred = np.asarray(match_labels(pred, target, ignore_index=ignore_index))
                    pred = np.where((pred >= 0) & (pred < k), pred, k)
                cm.update(pred, target)
    finally:
        model.train(was_training)
    res: dict = {"dataset": name, "metric_kind": kind, "n_images": n_images,
                 "time_per_image_s": fwd_time / max(1, n_images)}
    if unsupervised and kind != "bsds":
        res["matching"] = "hungarian-per-image"
    if kind == "bsds":
        res.update({"covering": bsds["num"] / bsds["den"], "PRI": float(np.mean(bsds["PRI"])),
                    "VI": float(np.mean(bsds["VI"]))})
        return res
    names = _class_names(getattr(dataset, "dataset", dataset), k)
    r = cm.compute()
    if kind == "voc":
        res.update({
            "mIoU": _nanmean(r["iou"][:k]),
            "accuracy": _nan_to_none(float(r["accuracy"])),
            "recall": _nanmean(r["recall"][:k]),
            "precision": _nanmean(r["precision"][:k]),
            "per_class_iou": {n: _nan_to_none(float(v)) for n, v in zip(names, r["iou"][:k],
                                                                        strict=True)},
        })
        return res
    matrix = r["confusion_matrix"]
    per = {names[c]: _binary_scores(matrix, c) for c in range(1, k)}
    for key in ("dice", "precision", "recall", "iou"):
        res[key] = float(np.mean([v[key] for v in per.values()])) if per else None
    res["accuracy"] = _nan_to_none(float(r["accuracy"]))
    res["per_class"] = per
    return res


def _nanmean(a) -> float | None:
    a = np.asarray(a, dtype=float)
    return float(np.nanmean(a)) if np.isfinite(a).any() else None


def evaluate_training_model(model, cfg: TrainConfig, task: TaskInfo, *, device="cpu",
                            split: str | None = None, dataset_kw: dict | None = None,
                            max_images: int | None = None) -> dict:
    """Score a network being trained under ``cfg`` on ``split`` (default ``cfg.val_split``)."""
    split = split or cfg.val_split or DEFAULT_SPLIT[cfg.dataset]
    ds = build_eval_dataset(cfg.dataset, cfg.root, split, cfg, dataset_kw)
    return evaluate_model(model, ds, dataset_name=cfg.dataset,
                          num_classes=int(getattr(ds, "num_classes", None) or task.num_classes),
                          ignore_index=int(getattr(ds, "ignore_index", task.ignore_index)),
                          device=device, unsupervised=cfg.mode == "unsupervised",
                          max_images=max_images)


def evaluate_checkpoint(checkpoint, dataset: str | None = None, root=None,
                        split: str | None = None, *, device="auto",
                        dataset_kw: dict | None = None, batch_size: int = 1,
                        max_images: int | None = None, progress: bool = False) -> dict:
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
    batch_size, max_images, progress
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
        A checkpoint without ``model_name`` / ``model_config``.
    """
    from .engine import load_checkpoint_dict, resolve_device

    ck = load_checkpoint_dict(checkpoint)
    if "model_name" not in ck or "model_config" not in ck:
        raise ValueError(f"{checkpoint} has no model_name / model_config: not a varseg "
                         "training checkpoint")
    train_cfg = TrainConfig.from_dict(ck["config"]) if ck.get("config") else None
    if dataset is None:
        if train_cfg is None:
            raise ValueError("pass the dataset: the checkpoint stores no training config")
        dataset = train_cfg.dataset
    dataset = _canonical(dataset)
    if root is None and train_cfg is not None and train_cfg.dataset == dataset:
        root = train_cfg.root
    split = split or DEFAULT_SPLIT[dataset]
    dev = resolve_device(device)
    model = rebuild_model(ck["model_name"], ck["model_config"])
    model.load_state_dict(ck["model"])
    model.to(dev).eval()
    ds = build_eval_dataset(dataset, root, split, train_cfg, dataset_kw)
    task = ck.get("task") or {}
    num_classes = getattr(ds, "num_classes", None) or task.get("num_classes")
    unsupervised = train_cfg is not None and train_cfg.mode == "unsupervised"
    res = evaluate_model(model, ds, dataset_name=dataset, num_classes=int(num_classes or 1),
                         ignore_index=int(getattr(ds, "ignore_index", -100)), device=dev,
                         unsupervised=unsupervised, batch_size=batch_size,
                         max_images=max_images, progress=progress)
    res.update({"checkpoint": str(checkpoint), "split": split, "device": str(dev),
                "step": int(ck.get("step", 0)), "model": ck["model_name"]})
    return res


_ORDER = ("mIoU", "accuracy", "dice", "precision", "recall", "iou", "covering", "PRI", "VI",
          "time_per_image_s")


def format_results(res: dict) -> str:
    """Human-readable summary of :func:`evaluate_model` results."""
    head = f"{res.get('dataset')} {res.get('split', '')}: {res.get('n_images')} images"
    lines = [head.strip()]
    for k in _ORDER:
        if k in res and res[k] is not None:
            lines.append(f"  {k:<18} {res[k]:.4f}" if k != "time_per_image_s"
                         else f"  {'time/image (s)':<18} {res[k]:.4g}")
    per = res.get("per_class")
    if per:
        for cname, v in per.items():
            vals = "  ".join(f"{m} {x:.4f}" for m, x in v.items())
            lines.append(f"  [{cname}] {vals}")
    return "\n".join(lines)


def write_results(res: dict, path) -> Path:
    """Write results as JSON (NaN/inf as null)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(res), indent=2) + "\n")
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
