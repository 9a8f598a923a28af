"""Throughput benchmark of the segmentation networks (``varseg bench models``).

For each selected model and each input size the paper uses it at, time ``repeats``
training iterations (forward, a scalar loss, backward; training mode) after one warm-up
iteration, and report images per second:

==============  ==========  ======  =======  =========  ==========================
case            model       C       classes  H x W      paper
==============  ==========  ======  =======  =========  ==========================
VOC             deeplabv2   3       21       321 x 321  AdvSemi crop, ResNet-101
LiTS            (polyphase  3       3        256 x 256  3 adjacent CT slices
                -)unet
BraTS           (polyphase  12      2        256 x 256  4 MR sequences x 3 slices
                -)unet
BSDS            (polyphase  3       4        321 x 481  unsupervised, bias field on
                -)unet
BSDS            kanezaki    3       100      321 x 481  "Backprop" baseline
==============  ==========  ======  =======  =========  ==========================

The number of regions for the unsupervised BSDS500 U-Net is not stated in the paper; 4 is
used (the throughput hardly depends on it).  ``--small`` shrinks both the inputs and the
networks (ResNet-50, 8-channel 3-level U-Nets, 16-channel Kanezaki net) for a quick check
of the whole path; its numbers are not comparable with the full run.

Torch is imported inside the functions so that building the CLI parser stays cheap.

References
----------
.. [1] B. Kim and J. C. Ye, "Mumford-Shah Loss Functional for Image Segmentation with Deep
       Learning", IEEE Trans. Image Process. 29, 2019, Sec. IV.
"""

from __future__ import annotations

import argparse
import time

__all__ = ["add_arguments", "main", "BENCH_MODELS"]

#: Model names (same as :data:`varseg.models.MODEL_NAMES`, kept here to avoid importing torch).
BENCH_MODELS = ("unet", "polyphase-unet", "deeplabv2", "kanezaki")

_UNET_SMALL = {"base_channels": 8, "depth": 3}

# (case, model, in_channels, num_classes, (H, W), kwargs, small kwargs, small (H, W))
_CASES = [
    ("VOC", "deeplabv2", 3, 21, (321, 321), {"depth": 101}, {"depth": 50}, (65, 65)),
    *[
        (case, name, c, k, size, kw, {**_UNET_SMALL, **kw}, small)
        for name in ("unet", "polyphase-unet")
        for case, c, k, size, kw, small in (
            ("LiTS", 3, 3, (256, 256), {}, (64, 64)),
            ("BraTS", 12, 2, (256, 256), {}, (64, 64)),
            ("BSDS", 3, 4, (321, 481), {"bias_field": True}, (81, 121)),
        )
    ],
    ("BSDS", "kanezaki", 3, 100, (321, 481), {}, {"num_classes": 16}, (81, 121)),
]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark options to ``parser`` and return it.

    Options: ``--models`` (names from :data:`BENCH_MODELS`, default all), ``--device``
    (``auto``, ``cpu`` or ``cuda``), ``--batch-size`` (default 2), ``--repeats`` (timed
    iterations, default 3) and ``--small`` (reduced inputs and networks, for a quick run).
    """
    parser.add_argument(
        "--models",
        nargs="+",
        choices=BENCH_MODELS,
        default=list(BENCH_MODELS),
        metavar="NAME",
        help=f"models to time (default: all of {', '.join(BENCH_MODELS)})",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="device (auto: cuda if available, else cpu)",
    )
    parser.add_argument("--batch-size", type=int, default=2, help="images per iteration")
    parser.add_argument("--repeats", type=int, default=3, help="timed iterations per case")
    parser.add_argument(
        "--small", action="store_true", help="reduced input sizes and networks for a quick run"
    )
    return parser


def _resolve_device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but torch.cuda.is_available() is False")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def _time_case(model, x, repeats: int, device) -> float:
    """Seconds for ``repeats`` forward+backward iterations (after one warm-up)."""
    import torch

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x)
        outs = out if isinstance(out, tuple) else (out,)
        sum(o.float().mean() for o in outs).backward()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    sync()
    return time.perf_counter() - start


def main(args: argparse.Namespace | None = None) -> dict:
    """Run the benchmark, print a table and return the numbers.

    Parameters
    ----------
    args : argparse.Namespace, optional
        Parsed options of :func:`add_arguments` (defaults if ``None``).

    Returns
    -------
    dict
        ``{"device", "batch_size", "repeats", "small", "results"}`` where ``results`` maps
        ``"<model>/<case>"`` to ``{"model", "case", "input_shape" (B, C, H, W),
        "num_classes", "parameters", "seconds_per_iteration", "images_per_second"}``.
    """
    import torch

    from varseg.models import build_model

    if args is None:
        args = add_arguments(argparse.ArgumentParser()).parse_args([])
    models = list(getattr(args, "models", None) or BENCH_MODELS)
    unknown = sorted(set(models) - set(BENCH_MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {', '.join(BENCH_MODELS)}")
    batch = int(getattr(args, "batch_size", 2))
    repeats = int(getattr(args, "repeats", 3))
    small = bool(getattr(args, "small", False))
    if batch < 1 or repeats < 1:
        raise ValueError(f"batch size and repeats must be >= 1, got {batch} and {repeats}")
    device = _resolve_device(getattr(args, "device", "auto"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    results: dict[str, dict] = {}
    for case, name, c, k, size, kw, small_kw, small_size in _CASES:
        if name not in models:
            continue
        if small:
            kw, size = dict(small_kw), small_size
            k = kw.pop("num_classes", k)
        torch.manual_seed(0)
        model = build_model(name, c, k, **kw).to(device).train()
        x = torch.rand(batch, c, *size, device=device)
        seconds = _time_case(model, x, repeats, device)
        results[f"{name}/{case}"] = {
            "model": name,
            "case": case,
            "input_shape": [batch, c, *size],
            "num_classes": k,
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds_per_iteration": seconds / repeats,
            "images_per_second": batch * repeats / seconds,
        }
        del model, x
        if device.type == "cuda":
            torch.cuda.empty_cache()

    _print_table(results, device, small)
    return {
        "device": str(device),
        "batch_size": batch,
        "repeats": repeats,
        "small": small,
        "results": results,
    }


def _print_table(results: dict, device, small: bool) -> None:
    title = f"forward+backward throughput on {device}" + (" (--small)" if small else "")
    header = (
        f"{'model/case':<24} {'input B x C x H x W':<22} {'K':>4} {'params':>9} "
        f"{'s/iter':>9} {'img/s':>9}"
    )
    print(title)
    print(header)
    print("-" * len(header))
    for key, r in results.items():
        shape = " x ".join(str(v) for v in r["input_shape"])
        print(
            f"{key:<24} {shape:<22} {r['num_classes']:>4} {r['parameters'] / 1e6:>8.3f}M "
            f"{r['seconds_per_iteration']:>9.3f} {r['images_per_second']:>9.2f}"
        )
