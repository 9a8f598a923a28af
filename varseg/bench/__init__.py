"""``varseg bench TARGET``: time varseg and its peer in one run and print the ratio.

Targets: ``all`` (one table of every solver, :mod:`varseg.bench.all`), ``chan-vese`` (vs
scikit-image), ``loss`` (vs a transcription of the official MS loss), ``models``
(forward+backward images/second). Never used in tests as thresholds.
"""

from __future__ import annotations

from importlib import import_module

TARGETS = {
    "all": ("varseg.bench.all", "one table of every solver beside its peer (ms/iteration)"),
    "chan-vese": ("varseg.bench.chan_vese", "multiphase Chan–Vese vs skimage.segmentation"),
    "loss": ("varseg.bench.loss", "MumfordShahLoss forward+backward vs the official formula"),
    "models": ("varseg.bench.models", "forward+backward images/second of each model"),
}


def add_arguments(p):
    """Add one sub-parser per benchmark target to ``p``."""
    sub = p.add_subparsers(dest="target", metavar="TARGET")
    sub.required = True
    for name, (module, help_text) in TARGETS.items():
        q = sub.add_parser(name, help=help_text, description=help_text)
        mod = import_module(module)
        mod.add_arguments(q)
        q.set_defaults(_bench_main=mod.main)


#: Numeric options of the targets and their smallest valid value.
_COUNTS = {
    "iters": 1,
    "repeats": 1,
    "sk_repeats": 1,
    "size": 8,
    "batch": 1,
    "batch_size": 1,
    "channels": 1,
    "threads": 1,
    "classes": 2,
    "sizes": 8,
    "phases": 2,
}


def check_options(args):
    """Refuse, in one line naming the option, a count below its minimum or CUDA without CUDA.

    Runs before any timing, for every target (``--iters 0``, ``--size 0``, ``--repeats 0``,
    ``--device cuda`` on a machine without CUDA, …).
    """
    from varseg._validation import check_int

    for name, minimum in _COUNTS.items():
        value = getattr(args, name, None)
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if v is not None:
                check_int(v, "--" + name.replace("_", "-"), minimum=minimum)
    device = getattr(args, "device", None)
    if isinstance(device, str) and device.startswith("cuda"):
        from varseg._validation import resolve_device

        resolve_device(device)


def main(args):
    """Run the selected benchmark target; 0 on success."""
    check_options(args)
    args._bench_main(args)
    return 0
