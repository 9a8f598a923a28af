"""``varseg bench chan-vese``: :func:`varseg.chan_vese` against ``skimage.segmentation.chan_vese``.

Everything is measured in one run, on ``skimage.data.camera()`` (512², optionally resized):

1. milliseconds per iteration of both solvers for the same number of iterations (``tol=0`` so
   that both run them all; each timing is a whole call, setup and energy records included,
   divided by the number of iterations; median of ``--repeats``) and their ratio;
2. wall time of scikit-image at its defaults (``tol=1e-3``, at most 500 iterations), its final
   energy on the shared ruler (:func:`varseg.energy_from_labels`, λ = μ/2, normalised image)
   and the time varseg needs to reach an energy at or below it (from its ``times``/``energy``
   history, same defaults);
3. milliseconds per iteration of the ``--phases``-phase solver.

Targets (stated, never asserted): two phases at least 20x faster per iteration than
scikit-image; four phases at most 3 ms per iteration on 2 cores. The thread count is Numba's
(``NUMBA_NUM_THREADS``) unless ``--threads`` is given. Wall times use ``time.perf_counter``;
the process CPU time (``time.process_time``, all threads) is printed beside them, and the load
average too: on a machine busy with other work, wall times of several threads say little.
"""
from __future__ import annotations


def add_arguments(p):
    p.add_argument("--iters", type=int, default=100,
                   help="iterations per timed run (tol=0), default 100")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed runs of varseg (median reported), default 5")
    p.add_argument("--sk-repeats", type=int, default=3,
                   help="timed runs of scikit-image (median reported), default 3")
    p.add_argument("--size", type=int, default=512,
                   help="camera resized to SIZE x SIZE (512: the original), default 512")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="working precision of varseg, default float32")
    p.add_argument("--phases", type=int, default=4,
                   help="number of phases of the multiphase timing (4 or 8), default 4")
    p.add_argument("--threads", type=int, default=None,
                   help="Numba threads (default: NUMBA_NUM_THREADS)")
    p.add_argument("--no-time-to-energy", action="store_true",
                   help="skip the time-to-scikit-image-energy comparison (runs skimage to "
                        "its default tolerance)")


def _median_time(fn, repeats):
    """Median wall time and median process CPU time (all threads) of ``repeats`` calls."""
    import statistics
    import time

    ts, cs = [], []
    for _ in range(max(1, repeats)):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), statistics.median(cs)


def main(args) -> dict:
    """Run the benchmark, print a report and return the numbers as a dict."""
    import os

    import numba
    import numpy as np
    from skimage import data
    from skimage.segmentation import chan_vese as sk_chan_vese

    from varseg.energy import energy_from_labels
    from varseg.levelset.chan_vese import chan_vese, normalise_image

    if args.threads:
        numba.set_num_threads(args.threads)
    img = data.camera()
    if args.size != img.shape[0]:
        from skimage.transform import resize

        img = resize(img, (args.size, args.size), preserve_range=True, anti_aliasing=True)
    dtype = np.dtype(args.dtype).type
    iters = int(args.iters)
    K = int(args.phases)

    # warm-up: Numba compilation (or cache load) of every kernel used below
    chan_vese(img, max_iter=2, dtype=dtype)
    chan_vese(img, K, max_iter=2, dtype=dtype)
    sk_chan_vese(img, max_num_iter=1)

    t_ours, c_ours = (v / iters for v in _median_time(
        lambda: chan_vese(img, max_iter=iters, tol=0.0, dtype=dtype), args.repeats))
    t_sk, c_sk = (v / iters for v in _median_time(
        lambda: sk_chan_vese(img, tol=0.0, max_num_iter=iters), args.sk_repeats))
    t_k, c_k = (v / iters for v in _median_time(
        lambda: chan_vese(img, K, max_iter=iters, tol=0.0, dtype=dtype), args.repeats))
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        load = float("nan")
    out = {
        "image": f"camera {img.shape[0]}x{img.shape[1]}",
        "iters": iters,
        "dtype": np.dtype(dtype).name,
        "threads": numba.get_num_threads(),
        "load_average": load,
        "varseg_ms_per_iter": t_ours * 1e3,
        "skimage_ms_per_iter": t_sk * 1e3,
        "speedup_per_iter": t_sk / t_ours,
        "multiphase_K": K,
        "multiphase_ms_per_iter": t_k * 1e3,
        "varseg_cpu_ms_per_iter": c_ours * 1e3,
        "skimage_cpu_ms_per_iter": c_sk * 1e3,
        "multiphase_cpu_ms_per_iter": c_k * 1e3,
    }
    print(f"{out['image']}, {iters} iterations, varseg {out['dtype']}, "
          f"{out['threads']} threads, load average {load:.2f}")
    print("  (wall ms/iteration; in brackets the process CPU ms/iteration, all threads)")
    print(f"  varseg  2 phases : {out['varseg_ms_per_iter']:8.3f} ms/iteration "
          f"({out['varseg_cpu_ms_per_iter']:.3f})")
    print(f"  skimage 2 phases : {out['skimage_ms_per_iter']:8.3f} ms/iteration "
          f"({out['skimage_cpu_ms_per_iter']:.3f})")
    print(f"  speed-up         : {out['speedup_per_iter']:8.1f}x   (target >= 20x)")
    print(f"  varseg  {K} phases : {out['multiphase_ms_per_iter']:8.3f} ms/iteration "
          f"({out['multiphase_cpu_ms_per_iter']:.3f})   (target <= 3 ms for 4 phases on "
          f"2 cores)")

    if not args.no_time_to_energy:
        import time

        t0 = time.perf_counter()
        seg_sk = sk_chan_vese(img)
        t_sk_default = time.perf_counter() - t0
        x = normalise_image(img)[0]
        lam = 0.25 / 2.0  # default mu / 2
        e_sk = energy_from_labels(x, (~seg_sk).astype(np.int64), lam, n_phases=2).total
        seg = chan_vese(img, dtype=dtype)
        hit = np.flatnonzero(seg.energy <= e_sk * (1 + 1e-12))
        t_reach = float(seg.times[hit[0]]) if hit.size else None
        out.update({
            "skimage_default_time_s": t_sk_default,
            "skimage_default_energy": e_sk,
            "varseg_default_time_s": seg.elapsed,
            "varseg_default_energy": seg.final_energy,
            "varseg_default_iterations": seg.n_iter,
            "varseg_time_to_skimage_energy_s": t_reach,
            "varseg_iterations_to_skimage_energy": int(hit[0]) if hit.size else None,
            "speedup_to_energy": (t_sk_default / t_reach) if t_reach else None,
        })
        print(f"  skimage defaults : {t_sk_default:8.3f} s, final energy {e_sk:.6g} "
              f"(shared ruler, lambda = mu/2)")
        if t_reach is None:
            print(f"  varseg defaults  : {seg.elapsed:8.3f} s, final energy "
                  f"{seg.final_energy:.6g}: never at or below scikit-image's")
        else:
            print(f"  varseg reaches it: {t_reach:8.3f} s (iteration {hit[0]}), "
                  f"{t_sk_default / t_reach:.1f}x sooner; its own defaults end at "
                  f"{seg.final_energy:.6g} after {seg.elapsed:.3f} s")
    return out

