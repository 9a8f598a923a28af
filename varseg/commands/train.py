"""``varseg train``: train a network from a shipped experiment config or from flags.

Examples::

    varseg train --list-configs
    varseg train --config lits-unet-ms-1-10 --root data/LiTS --out runs/lits
    varseg train --dataset synthetic --model unet --mode semi --labeled-fraction 1/8 \\
        --ms-weight 1 --max-steps 200 --model-kw '{"base_channels": 8, "depth": 2}' --out runs/s
    varseg train --out runs/lits --resume
    varseg train --config synthetic-sweep --out runs/sweep        # CE vs CE + λ·MS table
    varseg train --out runs/sweep --resume                        # finish that sweep
    torchrun --nproc_per_node 4 -m varseg.cli train --config voc-advsemi-ms-1-8 ...  # DDP

``--resume`` continues the run (or sweep) in ``--out``: only ``--max-steps`` / ``--epochs``
(upward), ``--eval-every`` and ``--num-workers`` may change; anything else that defines the
run is refused (exit 2). Ctrl-C stops at the end of the current step, writes a consistent
checkpoint and exits 130.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

# flag -> config field for the simple overrides
_OVERRIDES = {
    "dataset": "dataset",
    "root": "root",
    "model": "model",
    "mode": "mode",
    "labeled_fraction": "labeled_fraction",
    "ms_weight": "ms_weight",
    "length_weight": "length_weight",
    "beta": "beta",
    "max_steps": "max_steps",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "lr",
    "optimizer": "optimizer",
    "schedule": "schedule",
    "num_classes": "num_classes",
    "num_workers": "num_workers",
    "checkpoint_every": "checkpoint_every",
    "log_every": "log_every",
    "seed": "seed",
    "device": "device",
    "val_split": "val_split",
    "eval_every": "eval_every",
    "semi_sampling": "semi_sampling",
    "train_split": "train_split",
    "name": "name",
}


def add_arguments(p):
    g = p.add_argument_group("what to train")
    g.add_argument("--config", help="shipped config name (see --list-configs) or a JSON file")
    g.add_argument("--list-configs", action="store_true", help="list the shipped configs")
    g.add_argument("--dataset", help="voc | lits | brats | bsds500 | synthetic")
    g.add_argument("--root", help="dataset folder (not needed for synthetic)")
    g.add_argument("--model", help="unet | polyphase-unet | deeplabv2 | kanezaki")
    g.add_argument("--mode", help="supervised | semi | unsupervised | advsemi")
    g.add_argument("--labeled-fraction", help="labelled fraction, e.g. 1/8 or 0.25")
    g.add_argument("--ms-weight", type=float, help="λ of Eq. 16 (weight of the MS loss)")
    g.add_argument("--lambda-ms", type=float, help="deprecated alias of --ms-weight")
    g.add_argument("--length-weight", type=float, help="length weight inside the MS loss")
    g.add_argument("--beta", type=float, help="bias-field TV weight β of Eq. 19")
    g.add_argument(
        "--bias-field",
        action="store_true",
        default=None,
        help="model with a bias-field output, loss of Eq. 19-20 (unsupervised)",
    )
    g.add_argument("--num-classes", type=int, help="output classes / segments")
    g.add_argument("--model-kw", help="JSON object of model keyword arguments (merged)")
    g.add_argument("--dataset-kw", help="JSON object of dataset keyword arguments (merged)")
    g.add_argument("--crop-size", help="training crop, N or H,W (VOC)")
    g.add_argument("--image-size", help="resize to N or H,W (LiTS, BraTS, BSDS500, synthetic)")
    g.add_argument("--train-split", help="training split (default train)")
    g.add_argument("--val-split", help="split evaluated every --eval-every epochs")
    g.add_argument("--eval-every", type=int, help="epochs between validations (0: never)")
    g.add_argument("--semi-sampling", help="mixed | paired (semi-supervised batches)")
    g.add_argument("--name", help="run name")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", help="adam | adamw | sgd")
    o.add_argument("--lr", type=float, help="learning rate")
    o.add_argument("--schedule", help="constant | step | poly")
    o.add_argument("--epochs", type=int, help="number of epochs")
    o.add_argument("--max-steps", type=int, help="number of steps (the shorter limit wins)")
    o.add_argument("--batch-size", type=int, help="global batch size")
    o.add_argument("--seed", type=int, help="random seed")
    o.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field (JSON value), e.g. advsemi.mask_T=0.3; repeatable",
    )
    r = p.add_argument_group("running")
    r.add_argument("--out", "-o", help="run folder")
    r.add_argument("--resume", action="store_true", help="continue the run in --out")
    r.add_argument("--device", help="auto (default) | cpu | cuda | cuda:N")
    r.add_argument(
        "--amp", dest="amp", action="store_true", default=None, help="force mixed precision (CUDA)"
    )
    r.add_argument("--no-amp", dest="amp", action="store_false", help="disable mixed precision")
    r.add_argument("--num-workers", type=int, help="DataLoader workers")
    r.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    r.add_argument("--log-every", type=int, help="steps between log rows")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument(
        "--sweep",
        action="store_true",
        default=None,
        help="run the labelled-fraction sweep (CE vs CE + λ·MS) of the config",
    )
    r.add_argument(
        "--no-sweep",
        dest="sweep",
        action="store_false",
        help="train one run even if the config defines a sweep",
    )


def _size(text):
    if text is None:
        return None
    parts = [int(t) for t in str(text).replace("x", ",").split(",") if t.strip()]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        return parts
    raise ValueError(f"size must be N or H,W; got {text!r}")


def _json_obj(text, flag):
    if text is None:
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} expects a JSON object; got {text!r} ({err})") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{flag} expects a JSON object; got {text!r}")
    return obj


def _parse_value(text):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _base_config(args):
    """The config the flags modify: the run's saved one (resume), a shipped one, or a new one."""
    from varseg.train import TrainConfig, load_config

    out = Path(args.out)
    if args.resume and args.config:
        return load_config(args.config)  # the trainer refuses it if it redefines the run
    if args.resume:
        saved = out / "config.json"
        if not saved.is_file():
            raise FileNotFoundError(f"cannot resume: {saved} does not exist (no run in {out})")
        return TrainConfig.load(saved)
    if args.config:
        return load_config(args.config)
    if not args.dataset:
        raise ValueError(
            "give --config NAME (see --list-configs) or --dataset "
            "(with --model, --mode, --epochs or --max-steps)"
        )
    return TrainConfig(name="custom")


def _flag_changes(args, cfg) -> dict:
    if args.lambda_ms is not None:
        warnings.warn(
            "--lambda-ms is deprecated; use --ms-weight", DeprecationWarning, stacklevel=2
        )
        if args.ms_weight is not None and args.ms_weight != args.lambda_ms:
            raise ValueError(
                "--lambda-ms (deprecated) and --ms-weight disagree; give --ms-weight only"
            )
        args.ms_weight = args.lambda_ms
    changes = {
        field: getattr(args, flag)
        for flag, field in _OVERRIDES.items()
        if getattr(args, flag, None) is not None
    }
    if args.bias_field:
        changes["bias_field"] = True
    if args.amp is not None:
        changes["amp"] = bool(args.amp)
    for name in ("crop_size", "image_size"):
        v = _size(getattr(args, name))
        if v is not None:
            changes[name] = v
    for flag, field in (("--model-kw", "model_kw"), ("--dataset-kw", "dataset_kw")):
        obj = _json_obj(getattr(args, field), flag)
        if obj is not None:
            changes[field] = {**getattr(cfg, field), **obj}
    return changes


def build_config(args):
    """The effective :class:`~varseg.train.TrainConfig` of the parsed arguments."""
    cfg = _base_config(args)
    cfg = cfg.replace(validate=False, **_flag_changes(args, cfg))
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE; got {item!r}")
        key, val = item.split("=", 1)
        cfg = cfg.set_option(key.strip(), _parse_value(val), validate=False)
    return cfg.validate()


def _is_sweep(args, cfg) -> bool:
    """Whether to run the sweep: ``--sweep`` / ``--no-sweep``, else what ``--out`` holds."""
    from varseg.train.sweep import SWEEP_CONFIG_NAME

    out = Path(args.out)
    if args.resume:
        single = (out / "config.json").is_file() or (out / "last.pt").is_file()
        if single and args.sweep:
            raise ValueError(f"{out} holds a single run, not a sweep; resume it without --sweep")
        return not single and (out / SWEEP_CONFIG_NAME).is_file()
    return args.sweep if args.sweep is not None else cfg.sweep is not None


def _resume_sweep_config(args):
    from varseg.train import TrainConfig
    from varseg.train.sweep import SWEEP_CONFIG_NAME

    cfg = TrainConfig.load(Path(args.out) / SWEEP_CONFIG_NAME)
    return cfg.replace(validate=False, **_flag_changes(args, cfg)).validate()


def _list_configs():
    from varseg.train import list_configs, load_config

    names = list_configs()
    width = max(len(n) for n in names)
    for n in names:
        _echo(f"{n:<{width}}  {load_config(n).description}")


def _echo(text: str) -> None:
    """Command output (results) on stdout."""
    sys.stdout.write(text + "\n")


def main(args):
    if args.list_configs:
        _list_configs()
        return 0
    if not args.out:
        raise ValueError("--out DIR is required (the run folder)")
    from varseg.train import run_sweep

    progress = False if args.no_progress else None
    sweep_dir = args.resume and _is_sweep(args, None)
    cfg = _resume_sweep_config(args) if sweep_dir else build_config(args)
    if sweep_dir or _is_sweep(args, cfg):
        res = run_sweep(cfg, args.out, progress=progress)
        _echo(res["markdown"])
        for path in res["paths"].values():
            _echo(f"wrote {path}")
        return 0
    return _train_one(cfg, args, progress)


def _train_one(cfg, args, progress) -> int:
    from varseg.train import TrainingInterrupted, train

    try:
        summary = train(cfg, args.out, resume=args.resume, progress=progress)
    except TrainingInterrupted as err:
        sys.stderr.write(f"varseg train: {err}\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write(
            "varseg train: interrupted mid-step; the last checkpoint in "
            f"{args.out} is unchanged (continue with --resume)\n"
        )
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        row = summary["last_row"]
        scores = ", ".join(
            f"{k} {v:.4g}"
            for k, v in row.items()
            if isinstance(v, float) and k not in ("lr", "elapsed_s")
        )
        _echo(
            f"{cfg.name}: step {summary['step']}/{summary['total_steps']} "
            f"(epoch {summary['epoch']}) {scores}"
        )
        _echo(f"wrote {summary['checkpoint']}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from varseg.cli import run_command

    raise SystemExit(run_command("train"))
