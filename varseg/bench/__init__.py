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


def main(args):
    """Run the selected benchmark target; 0 on success."""
    args._bench_main(args)
    return 0
