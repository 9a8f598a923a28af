"""The ``varseg`` command line (thin: it parses arguments and calls the library).

Subcommands: ``segment``, ``compare``, ``bench``, ``train``, ``evaluate``. Each lives in a
module exposing ``add_arguments(parser)`` and ``main(args) -> int``.
"""
from __future__ import annotations

import argparse
import sys
from importlib import import_module

__all__ = ["main", "build_parser", "run_command"]

COMMANDS = {
    "segment": ("varseg.commands.segment", "segment one image with one method"),
    "compare": ("varseg.commands.compare",
                "run several methods on one image (or a dataset) and score them side by side"),
    "bench": ("varseg.bench", "time varseg against its peers (chan-vese, loss, models)"),
    "train": ("varseg.commands.train", "train a network (supervised, semi- or unsupervised)"),
    "evaluate": ("varseg.commands.evaluate", "evaluate a trained checkpoint on a dataset"),
    "reproduce": ("varseg.commands.reproduce",
                  "reproduce a table of the paper on real data (bsds500: Table VI)"),
    "warmup": ("varseg.commands.warmup", "compile the Numba kernels ahead of time"),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``varseg`` command."""
    from varseg import __version__

    parser = argparse.ArgumentParser(
        prog="varseg",
        description="Classical variational and deep Mumford–Shah segmentation, side by side.")
    parser.add_argument("--version", action="version", version=f"varseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        mod = import_module(module)
        mod.add_arguments(p)
        p.set_defaults(_handler=mod.main)
    return parser


def _run(handler, command, args) -> int:
    """Call a subcommand; user errors become one line on stderr and exit status 2."""
    try:
        return int(handler(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"varseg {command}: error: {err}", file=sys.stderr)
        return 2


def main(argv=None) -> int:
    """Entry point of the ``varseg`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return _run(args._handler, args.command, args)


def run_command(name, argv=None) -> int:
    """Run one subcommand on its own, without importing the others (``python -m
    varseg.commands.train``, e.g. under ``torchrun``)."""
    module, help_text = COMMANDS[name]
    mod = import_module(module)
    parser = argparse.ArgumentParser(prog=f"varseg {name}", description=help_text)
    mod.add_arguments(parser)
    return _run(mod.main, name, parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
