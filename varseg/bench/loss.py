"""``varseg bench loss``: forward+backward of :class:`varseg.losses.MumfordShahLoss` against a
plain transcription of the official implementation's formula (per-class loop, anisotropic L1
finite-difference TV), in one run, with the ratio."""

from __future__ import annotations


def add_arguments(p):
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--classes", type=int, nargs="+", default=[2, 21])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 321])
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="auto", help="auto|cpu|cuda")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def official_ms_loss(logits, image, lam):
    """The official formula transcribed: softmax, per-channel and per-class loop for the means
    and the data term, anisotropic L1 TV of forward differences, all summed."""
    import torch

    y = torch.softmax(logits, 1)
    loss = 0.0
    for ich in range(image.shape[1]):
        x = image[:, ich : ich + 1]
        for n in range(y.shape[1]):
            p = y[:, n : n + 1]
            c = (x * p).sum((2, 3)) / p.sum((2, 3))
            loss = loss + ((x - c[:, :, None, None]) ** 2 * p).sum()
    dh = (y[:, :, 1:, :] - y[:, :, :-1, :]).abs().sum()
    dw = (y[:, :, :, 1:] - y[:, :, :, :-1]).abs().sum()
    return loss + lam * (dh + dw)


def _time(fn, repeats, sync):
    import statistics
    import time

    fn()
    sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def main(args):
    import torch

    from varseg.losses import MumfordShahLoss

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "auto":
        dev = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    g = torch.Generator().manual_seed(0)
    rows = []
    print(f"device={dev} threads={torch.get_num_threads()} B={args.batch} C={args.channels}")
    print(f"{'K':>3} {'size':>5} {'varseg ms':>10} {'official ms':>12} {'ratio':>6}")
    for k in args.classes:
        for s in args.sizes:
            z = torch.randn(args.batch, k, s, s, generator=g).to(dev).requires_grad_(True)
            x = torch.rand(args.batch, args.channels, s, s, generator=g).to(dev)
            ours = MumfordShahLoss(1e-3, tv="anisotropic", reduction="sum")

            def run_ours(z=z, x=x, ours=ours):
                z.grad = None
                ours(z, x).backward()

            def run_off(z=z, x=x):
                z.grad = None
                official_ms_loss(z, x, 1e-3).backward()

            t_o = _time(run_ours, args.repeats, sync)
            t_r = _time(run_off, args.repeats, sync)
            rows.append(
                {
                    "K": k,
                    "size": s,
                    "varseg_ms": 1e3 * t_o,
                    "official_ms": 1e3 * t_r,
                    "ratio": t_o / t_r,
                }
            )
            print(f"{k:>3} {s:>5} {1e3 * t_o:>10.2f} {1e3 * t_r:>12.2f} {t_o / t_r:>6.2f}")
    return {"device": dev, "rows": rows}
