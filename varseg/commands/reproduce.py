"""``varseg reproduce bsds500``: Kim & Ye 2019, Table VI, on a BSDS500 split.

Examples
--------
``varseg reproduce bsds500 --root BSR/BSDS500 --split val -o out`` runs every method on the
100 validation images and writes ``out/results.json``, ``out/results.csv``, ``out/report.md``
and ``out/labels/<method>/<id>.png``; ``--n 2 --methods level-set kmeans`` is a quick check.
"""

from __future__ import annotations


def add_arguments(p):
    from varseg.reproduce.presets import METHODS

    p.add_argument("benchmark", choices=["bsds500"], help="what to reproduce (bsds500: Table VI)")
    p.add_argument(
        "--root", required=True, help="BSDS500 folder (holding data/images, data/groundTruth)"
    )
    p.add_argument(
        "--split",
        default="val",
        choices=["train", "val", "test"],
        help="split to run on (default val)",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        metavar="METHOD",
        help=f"methods (default: all: {' '.join(METHODS)})",
    )
    p.add_argument("--n", type=int, default=None, help="only the first N image ids (sorted)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="worker processes (default 1)")
    p.add_argument(
        "--checkpoint",
        default=None,
        help="trained U-Net checkpoint for unet-ms (default: train one with "
        "--train-config into OUT/unet-ms-train/)",
    )
    p.add_argument(
        "--train-config",
        default="bsds-unet-ms-cpu",
        help="config trained for unet-ms when no checkpoint is given "
        "(bsds-unet-ms-cpu, or bsds-unet-ms: the paper scale, for a GPU)",
    )
    p.add_argument(
        "--work-size",
        type=int,
        default=None,
        help="longest side at which the per-image networks compute (default "
        "240; 0 = full resolution, the paper's setting)",
    )
    p.add_argument("--device", default="cpu", help="torch device of the networks (cpu, cuda)")
    p.add_argument("--seed", type=int, default=0, help="seed of the networks (default 0)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("-o", "--out", default="varseg-reproduce", help="output folder")


def main(args):
    from varseg.reproduce import reproduce_bsds500

    for name in ("n", "jobs"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be a positive integer; got {v}")
    if args.work_size is not None and args.work_size < 0:
        raise ValueError(f"--work-size must be >= 0; got {args.work_size}")
    rows = reproduce_bsds500(
        args.root,
        args.split,
        args.methods,
        n=args.n,
        jobs=args.jobs,
        out=args.out,
        checkpoint=args.checkpoint,
        train_config=args.train_config,
        seed=args.seed,
        work_size=args.work_size,
        device=args.device,
        progress=not args.quiet,
    )
    for r in rows:
        print(
            f"{r['method']:12s} covering {r['covering']:.3f}  PRI {r['pri']:.3f}  "
            f"VI {r['vi']:.3f}  ({r['n_images']} images, {r['seconds_per_image']:.2f} "
            "s/image)"
        )
    print(f"wrote {args.out}/report.md")
    return 0
