"""``varseg segment``: one image, one method; writes labels, an overlay and the result."""
from __future__ import annotations

import json
from pathlib import Path

from varseg.methods import method_names


def add_arguments(p):
    p.add_argument("image", help="image file path, .npy array, or sample:NAME (skimage.data)")
    p.add_argument("--method", default="chan-vese", choices=method_names(),
                   help="segmentation method (default: chan-vese)")
    p.add_argument("--phases", "-k", type=int, default=2, help="number of phases K")
    p.add_argument("--mu", type=float, default=None, help="length weight of level-set methods")
    p.add_argument("--lam", type=float, default=None,
                   help="λ of the Mumford–Shah energy (fixed-point, unrolled, neural)")
    p.add_argument("--max-iter", type=int, default=None, help="maximum iterations")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", default=None, help="auto|cpu|cuda (neural methods)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="extra keyword for the method (value parsed as JSON), repeatable")
    p.add_argument("-o", "--out", default="varseg-out", help="output folder")


_ALIASES = {"max_iter": ("n_outer", "fit_steps")}  # names of the same idea in other methods


def _fit_to(method, kw, name):
    """Keep only keywords ``method`` accepts, renaming aliases; unknown ones are an error."""
    import inspect

    accepted = inspect.signature(method).parameters
    out = {}
    for key, value in kw.items():
        if key in accepted:
            out[key] = value
            continue
        alias = next((a for a in _ALIASES.get(key, ()) if a in accepted), None)
        if alias is None:
            raise ValueError(f"method {name!r} does not take option {key!r}; it takes "
                             f"{sorted(k for k in accepted if k not in ('image', 'n_phases'))}")
        out[alias] = value
    return out


def _params(args):
    kw = {}
    for name in ("mu", "lam", "max_iter", "seed", "device"):
        v = getattr(args, name)
        if v is not None:
            kw[name] = v
    for item in args.param:
        if "=" not in item:
            raise ValueError(f"--param expects KEY=VALUE; got {item!r}")
        key, val = item.split("=", 1)
        try:
            kw[key.replace("-", "_")] = json.loads(val)
        except json.JSONDecodeError:
            kw[key.replace("-", "_")] = val
    return kw


def main(args):
    from varseg.io import load_image
    from varseg.methods import get_method
    from varseg.report import save_segmentation_outputs

    image, channel_axis = load_image(args.image)
    method = get_method(args.method)
    kw = _fit_to(method, _params(args), args.method)
    result = method(image, args.phases, channel_axis=channel_axis, **kw)
    out = Path(args.out)
    paths = save_segmentation_outputs(image, result, out, stem=args.method)
    print(result.summary())
    for p in paths:
        print(f"wrote {p}")
    return 0
