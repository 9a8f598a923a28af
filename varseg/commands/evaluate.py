"""``varseg evaluate``: score a training checkpoint with the paper's metrics.

VOC: mIoU / accuracy / recall; LiTS, BraTS (and synthetic): Dice / precision / recall / IoU
of the foreground classes; BSDS500: covering (RC) / PRI / VI against all human
segmentations; plus the inference time per image. ``--out FILE`` writes them as JSON.

Example::

    varseg evaluate --checkpoint runs/lits/last.pt --dataset lits --root data/LiTS \\
        --split val --out runs/lits/eval.json
"""

from __future__ import annotations

import json


def add_arguments(p):
    p.add_argument("--checkpoint", required=True, help="last.pt of a training run")
    p.add_argument(
        "--dataset", help="voc | lits | brats | bsds500 | synthetic (default: the training dataset)"
    )
    p.add_argument("--root", help="dataset folder (default: the training root)")
    p.add_argument("--split", help="split (default val; test for bsds500 and synthetic)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    p.add_argument("--max-images", type=int, default=None, help="evaluate the first N images")
    p.add_argument("--dataset-kw", help="JSON object of extra dataset keyword arguments")
    p.add_argument("--out", "-o", help="write the metrics to this JSON file")
    p.add_argument(
        "--skip-missing",
        action="store_true",
        help="leave out images without ground truth (their count is reported) instead of failing",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args):
    import sys

    from varseg.train.evaluate import evaluate_checkpoint, format_results, write_results

    kw = None
    if args.dataset_kw:
        try:
            kw = json.loads(args.dataset_kw)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--dataset-kw expects a JSON object; got {args.dataset_kw!r}"
            ) from err
        if not isinstance(kw, dict):
            raise ValueError(f"--dataset-kw expects a JSON object; got {args.dataset_kw!r}")
    for name in ("batch_size", "max_images"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer; got {v}")
    res = evaluate_checkpoint(
        args.checkpoint,
        args.dataset,
        args.root,
        args.split,
        device=args.device,
        dataset_kw=kw,
        batch_size=args.batch_size,
        max_images=args.max_images,
        skip_missing=args.skip_missing,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    sys.stdout.write(format_results(res) + "\n")
    if res.get("n_skipped"):
        sys.stderr.write(
            f"varseg evaluate: skipped {res['n_skipped']} image(s) without ground "
            f"truth: {', '.join(res['skipped'][:5])}\n"
        )
    if args.out:
        sys.stdout.write(f"wrote {write_results(res, args.out)}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    from varseg.cli import run_command

    raise SystemExit(run_command("evaluate"))
