r"""``varseg bench all``: one table of every solver of varseg, each beside its peer.

Everything runs in one process, on ``skimage.data.camera()`` resized to ``--size``² (an RGB
stand-in of a BSDS500 image, 321×481, for the neural minimiser), after one untimed warm-up
call of each function (Numba compilation or cache load, torch's first-call set-up), so no
compile time enters a number. For each row:

* **ms/iteration** of varseg and of the peer for ``--iters`` iterations (``tol=0`` so that
  every iteration runs; a whole call divided by the iterations, median of ``--repeats``);
* **ratio** = peer ms / varseg ms (above 1: varseg is faster);
* **converge**: seconds and iterations of a call at the solver's defaults (camera), where
  the solver has a stopping rule, and the peer's seconds at its defaults.

Rows: multiphase Chan–Vese (:func:`varseg.chan_vese`, 2/4/8 phases; peers
``skimage.segmentation.chan_vese`` and ``morphological_chan_vese``), the Eq. 15 fixed point
(:func:`varseg.ms_fixed_point`, Numba; peer: the torch :func:`varseg.unrolled.fixed_point_step`
loop), Li's bias-field level set (:func:`varseg.levelset.bias_field_levelset`, 2 and 4
phases, one outer iteration of 10 level-set steps), the neural minimiser
(:func:`varseg.neural.neural_segment` with the ``backprop-ms`` preset of
:data:`varseg.reproduce.presets.NEURAL_PRESETS`, one Adam step per
iteration), the unrolled network's inference (:class:`varseg.unrolled.UnrolledMumfordShah`,
one unrolled iteration) and the Mumford–Shah loss forward+backward
(:func:`varseg.losses.mumford_shah_loss`, anisotropic TV, against the official formula
:func:`varseg.bench.loss.official_ms_loss`; one "iteration" = one forward+backward of a batch
of 4 images, 4 classes, 3 channels). The header gives the Numba and torch thread counts and
the load average before and after: on a shared machine wall times say little without it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

__all__ = ["add_arguments", "main", "run", "format_table"]

#: Columns of the printed table: (key, header, width, format).
COLUMNS = (
    ("solver", "solver", 27, "s"),
    ("varseg_ms", "varseg ms/it", 12, ".3f"),
    ("peer", "peer", 26, "s"),
    ("peer_ms", "peer ms/it", 11, ".3f"),
    ("ratio", "ratio", 8, ".2f"),
    ("converge_s", "converge s", 10, ".3f"),
    ("converge_iters", "iters", 6, "d"),
    ("peer_converge_s", "peer conv. s", 12, ".3f"),
)


def add_arguments(p):
    """Add the options of ``varseg bench all`` to the parser ``p``."""
    p.add_argument(
        "--size", type=int, default=256, help="camera resized to SIZE x SIZE (>= 8), default 256"
    )
    p.add_argument(
        "--iters", type=int, default=20, help="iterations per timed run (>= 1), default 20"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="timed runs per row, median reported (>= 1), default 3",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="torch device of the torch rows: cpu, cuda or auto (default cpu)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="Numba and torch threads (default: as configured)"
    )
    p.add_argument(
        "--no-converge", action="store_true", help="skip the runs to convergence at the defaults"
    )
    p.add_argument(
        "--json", metavar="FILE", default=None, help="also write the numbers to FILE (atomically)"
    )
    return p


def _check_args(args):
    for name, minimum in (("size", 8), ("iters", 1), ("repeats", 1)):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ValueError(f"--{name} must be an integer >= {minimum}; got {v!r}")
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be an integer >= 1; got {args.threads!r}")
    return _resolve_device(args.device)


def _resolve_device(name):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be cpu, cuda or auto; got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available on this machine")
    return torch.device(name)


def _median_seconds(fn, repeats, sync=None):
    """Median wall time of ``repeats`` calls of ``fn`` after one untimed warm-up call."""
    fn()
    if sync:
        sync()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def _row(solver, varseg_s, iters, peer=None, peer_s=None, **extra):
    """One table row; times in seconds for ``iters`` iterations."""
    ours = 1e3 * varseg_s / iters
    theirs = None if peer_s is None else 1e3 * peer_s / iters
    row = {
        "solver": solver,
        "varseg_ms": ours,
        "peer": peer or "",
        "peer_ms": theirs,
        "ratio": None if theirs is None else theirs / ours,
        "converge_s": None,
        "converge_iters": None,
        "peer_converge_s": None,
    }
    row.update(extra)
    return row


def _camera(size):
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    img = data.camera().astype(np.float64)
    if size != img.shape[0]:
        img = resize(img, (size, size), preserve_range=True, anti_aliasing=True)
    return img


def _chan_vese_rows(img, iters, repeats, converge):
    import numpy as np
    from skimage.segmentation import chan_vese as sk_chan_vese
    from skimage.segmentation import morphological_chan_vese

    from varseg.levelset import chan_vese

    def ours(k):
        return _median_seconds(
            lambda: chan_vese(img, k, max_iter=iters, tol=0.0, dtype=np.float32), repeats
        )

    t2 = ours(2)
    t_sk = _median_seconds(lambda: sk_chan_vese(img, tol=0.0, max_num_iter=iters), repeats)
    t_mcv = _median_seconds(lambda: morphological_chan_vese(img, iters), repeats)
    rows = [
        _row("chan-vese 2 phases", t2, iters, "skimage chan_vese", t_sk),
        _row("chan-vese 2 phases", t2, iters, "skimage morph. chan_vese", t_mcv),
    ]
    if converge:
        seg = chan_vese(img, 2, dtype=np.float32)
        t0 = time.perf_counter()
        sk_chan_vese(img)
        t_sk_conv = time.perf_counter() - t0
        rows[0].update(converge_s=seg.elapsed, converge_iters=seg.n_iter, peer_converge_s=t_sk_conv)
    for k in (4, 8):
        rows.append(_row(f"chan-vese {k} phases", ours(k), iters))
        if converge:
            seg = chan_vese(img, k, dtype=np.float32)
            rows[-1].update(converge_s=seg.elapsed, converge_iters=seg.n_iter)
    return rows


def _torch_fixed_point_loop(img, iters):
    """The previous plain solver: ``iters`` torch steps of Eq. 15 (float32, no grad)."""
    import numpy as np
    import torch

    from varseg.energy import normalise_image
    from varseg.unrolled import fixed_point_step

    x = torch.as_tensor(normalise_image(img), dtype=torch.float32)[None, None]
    q = torch.tensor(np.quantile(x.numpy(), [0.25, 0.75]), dtype=torch.float32)
    z0 = -20 * (x - q.reshape(1, 2, 1, 1)) ** 2

    def run():
        z = z0
        with torch.no_grad():
            for _ in range(iters):
                z = fixed_point_step(z, x, 0.125, 2.0)
        return z

    return run


def _fixed_point_rows(img, iters, repeats, converge):
    from varseg.unrolled import ms_fixed_point

    t = _median_seconds(lambda: ms_fixed_point(img, 2, max_iter=iters, tol=0.0), repeats)
    t_torch = _median_seconds(_torch_fixed_point_loop(img, iters), repeats)
    rows = [_row("fixed point 2 phases", t, iters, "torch fixed_point_step", t_torch)]
    for k in (4, 8):
        rows.append(
            _row(
                f"fixed point {k} phases",
                _median_seconds(
                    lambda k=k: ms_fixed_point(img, k, max_iter=iters, tol=0.0), repeats
                ),
                iters,
            )
        )
    if converge:
        for row, k in zip(rows, (2, 4, 8), strict=True):
            seg = ms_fixed_point(img, k)
            row.update(converge_s=seg.elapsed, converge_iters=seg.n_iter)
    return rows


def _lic_rows(img, iters, repeats, converge):
    """Li's bias-field level set with 2 and 4 phases: ms per outer iteration (``n_inner``
    = 10 level-set steps, then the centres and the bias)."""
    from varseg.levelset import bias_field_levelset

    rows = []
    for k in (2, 4):
        t = _median_seconds(
            lambda k=k: bias_field_levelset(img, k, max_iter=iters, tol=0.0), repeats
        )
        rows.append(_row(f"LIC {k} phases (outer it)", t, iters))
        if converge:
            seg = bias_field_levelset(img, k)
            rows[-1].update(converge_s=seg.elapsed, converge_iters=seg.n_iter)
    return rows


def _neural_row(iters, repeats, device, size):
    """``backprop-ms`` on a 321x481 RGB image at the preset's work size (or ``size`` when
    smaller): the median time of one Adam step of the loss (from the result's ``times``; the
    set-up of each call and the k-means start are left out, ``init="random"``)."""
    import numpy as np
    from skimage import data
    from skimage.transform import resize

    from varseg.neural import neural_segment
    from varseg.reproduce.presets import NEURAL_PRESETS

    kw = dict(NEURAL_PRESETS["backprop-ms"])
    work = min(kw.pop("work_size"), size)
    kw.update(
        max_iter=iters + 1, tol=None, init="random", progress=False, seed=0, device=str(device)
    )
    h, w = 321, 481
    s = work / max(h, w)
    rgb = resize(data.astronaut(), (round(h * s), round(w * s)), anti_aliasing=True)
    neural_segment(rgb, channel_axis=-1, **{**kw, "max_iter": 1})  # warm-up
    steps = [
        float(np.median(np.diff(neural_segment(rgb, channel_axis=-1, **kw).times[:-1])))
        for _ in range(repeats)
    ]
    return _row(
        f"neural backprop-ms {rgb.shape[0]}x{rgb.shape[1]}",
        statistics.median(steps),
        1,
        work_size=work,
        shape=list(rgb.shape),
    )


def _torch_rows(img, iters, repeats, device):
    import torch

    from varseg.bench.loss import official_ms_loss
    from varseg.energy import normalise_image
    from varseg.losses import mumford_shah_loss
    from varseg.unrolled import UnrolledMumfordShah

    sync = torch.cuda.synchronize if device.type == "cuda" else None
    x = torch.as_tensor(normalise_image(img), dtype=torch.float32, device=device)[None, None]
    net = UnrolledMumfordShah(2, 1, n_iter=iters).to(device)

    def infer():
        with torch.inference_mode():
            net(x)

    rows = [_row("unrolled inference", _median_seconds(infer, repeats, sync), iters)]
    g = torch.Generator().manual_seed(0)
    s = img.shape[0]
    z = torch.randn(4, 4, s, s, generator=g).to(device).requires_grad_(True)
    xb = torch.rand(4, 3, s, s, generator=g).to(device)

    def ours():
        z.grad = None
        mumford_shah_loss(z, xb, 1e-3, tv="anisotropic", reduction="sum").backward()

    def official():
        z.grad = None
        official_ms_loss(z, xb, 1e-3).backward()

    t_o = _median_seconds(lambda: [ours() for _ in range(iters)], repeats, sync)
    t_r = _median_seconds(lambda: [official() for _ in range(iters)], repeats, sync)
    rows.append(_row("MS loss fwd+bwd", t_o, iters, "official formula (torch)", t_r))
    return rows


def _load():
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover - not on every platform
        return None


def run(size=256, iters=20, repeats=3, device="cpu", threads=None, converge=True):
    """Time every solver and return ``{"header": {...}, "rows": [...]}``.

    Parameters
    ----------
    size, iters, repeats : int
        Camera size, iterations per timed run, timed runs per row (median).
    device : str or torch.device
        Device of the torch rows.
    threads : int, optional
        Numba and torch threads.
    converge : bool
        Also run the iterative solvers to convergence at their defaults.

    Returns
    -------
    dict
    """
    import numba
    import torch

    ns = argparse.Namespace(
        size=size, iters=iters, repeats=repeats, threads=threads, device=str(device)
    )
    dev = _check_args(ns)
    if threads:
        numba.set_num_threads(threads)
        torch.set_num_threads(threads)
    load0 = _load()
    img = _camera(size)
    rows = _chan_vese_rows(img, iters, repeats, converge)
    rows += _fixed_point_rows(img, iters, repeats, converge)
    rows += _lic_rows(img, iters, repeats, converge)
    rows.append(_neural_row(iters, repeats, dev, size))
    rows += _torch_rows(img, iters, repeats, dev)
    header = {
        "image": f"camera {size}x{size}",
        "iters": iters,
        "repeats": repeats,
        "device": str(dev),
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_before": load0,
        "load_average_after": _load(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    return {"header": header, "rows": rows}


def _cell(value, width, fmt):
    if value is None or value == "":
        return f"{'-':<{width}}" if fmt == "s" else f"{'-':>{width}}"
    return f"{value:>{width}{fmt}}" if fmt != "s" else f"{value:<{width}}"


def format_table(result):
    """The table of :func:`run` as text (header lines, column names, one line per row)."""
    h = result["header"]
    lines = [
        f"varseg bench all: {h['image']}, {h['iters']} iterations, median of "
        f"{h['repeats']}, device {h['device']}",
        f"threads: numba {h['numba_threads']}, torch {h['torch_threads']} "
        f"({h['cpu_count']} CPUs); load average {h['load_average_before']} before, "
        f"{h['load_average_after']} after; {h['date_utc']} UTC",
        "ratio = peer ms / varseg ms (> 1: varseg faster); converge: defaults on camera",
    ]
    lines.append(
        " ".join(_cell(name, w, "s") if f == "s" else f"{name:>{w}}" for _, name, w, f in COLUMNS)
    )
    for row in result["rows"]:
        lines.append(" ".join(_cell(row.get(key), w, f) for key, _, w, f in COLUMNS))
    return "\n".join(lines) + "\n"


def main(args):
    """Run ``varseg bench all``: print the table, optionally write ``--json``."""
    _check_args(args)
    if args.json:
        from pathlib import Path

        parent = Path(args.json).resolve().parent
        if not parent.is_dir():
            raise ValueError(f"--json {args.json}: folder {parent} does not exist")
    result = run(
        args.size,
        args.iters,
        args.repeats,
        args.device,
        args.threads,
        converge=not args.no_converge,
    )
    sys.stdout.write(format_table(result))
    if args.json:
        from varseg._atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(result, indent=2) + "\n")
    return result
