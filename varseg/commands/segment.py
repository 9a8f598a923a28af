"""``varseg segment``: one image or volume, one method; writes labels, views and the result.

Outputs in the ``-o`` folder, for ``--method M``:

* ``M_labels.png`` (2D) or ``M_labels.nii.gz`` (3D, or any medical input): the label map
  as index values ``0 .. K-1`` (uint8, uint16 when K > 256) that napari, ITK-SNAP or Fiji
  read as labels.
  The NIfTI keeps the input's affine and header when the input was NIfTI; MetaImage, NRRD
  and DICOM inputs get a NIfTI whose affine is built from their spacing, origin and
  direction (:func:`varseg.io.save_label_nifti`).
* ``M_preview.png``: coloured labels (middle slice of a volume); ``M_overlay.png``: region
  boundaries over the image; ``M.npz``: the full :class:`varseg.Segmentation`.

Inputs, options and the output folder are checked before anything is computed; on an error
the command exits 2 with one line on stderr and leaves no file behind.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from varseg.commands._output import check_output_dir
from varseg.methods import method_names

logger = logging.getLogger(__name__)


def add_arguments(p):
    p.add_argument(
        "image",
        help="image (PNG, JPEG, TIFF, .npy), volume (.nii, .nii.gz, .mha, "
        ".mhd, .nrrd), DICOM series folder, or sample:NAME (skimage.data)",
    )
    p.add_argument(
        "--method",
        default="chan-vese",
        choices=method_names(),
        help="segmentation method (default: chan-vese)",
    )
    p.add_argument("--phases", "-k", type=int, default=2, help="number of phases K")
    p.add_argument("--mu", type=float, default=None, help="length weight of level-set methods")
    p.add_argument(
        "--lam",
        type=float,
        default=None,
        help="λ of the Mumford–Shah energy (fixed-point, unrolled, neural)",
    )
    p.add_argument("--max-iter", type=int, default=None, help="maximum iterations")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    p.add_argument("--device", default=None, help="auto|cpu|cuda (neural methods)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra keyword for the method (value parsed as JSON), repeatable",
    )
    p.add_argument(
        "-o",
        "--out",
        default="varseg-out",
        help="output folder (created if missing; must not be a file)",
    )


def _option(spec, key, value, kw):
    if not spec.accepts(key):
        raise ValueError(
            f"method {spec.name!r} does not take option {key!r}; it takes {sorted(spec.options)}"
        )
    kw[key] = value


def method_kwargs(spec, args):
    """Keywords for the method, as its :class:`~varseg.methods.MethodSpec` declares them.

    ``--lam`` is the shared λ of Kim & Ye Eq. 1, given as the method's declared length
    weight (``mu = 2λ`` for Chan–Vese); ``--max-iter`` goes to its declared iteration
    budget; ``--mu``, ``--seed``, ``--device`` and ``--param KEY=VALUE`` must be declared
    options, else a one-line error names the option and lists the accepted ones.
    """
    kw = {}
    if args.lam is not None:
        if spec.length_param is None:
            raise ValueError(f"method {spec.name!r} has no length weight for --lam")
        kw.update(spec.shared_kwargs(lam=args.lam))
    if args.max_iter is not None:
        if spec.iteration_param is None:
            raise ValueError(f"method {spec.name!r} is not iterative: --max-iter does not apply")
        kw[spec.iteration_param] = args.max_iter
    for key in ("mu", "seed", "device"):
        if getattr(args, key) is not None:
            _option(spec, key, getattr(args, key), kw)
    for item in args.param:
        if "=" not in item:
            raise ValueError(f"--param expects KEY=VALUE; got {item!r}")
        key, val = item.split("=", 1)
        try:
            value = json.loads(val)
        except json.JSONDecodeError:
            value = val
        _option(spec, key.replace("-", "_"), value, kw)
    return kw


def check_device(device):
    """Refuse an unknown device name, or CUDA on a machine without it, in one line.

    The check is :func:`varseg._validation.resolve_device`'s, run before any work; without
    torch, the message names the extra that installs it.

    Parameters
    ----------
    device : str or None
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (None: the method's default).

    Raises
    ------
    ValueError
        Unknown name, torch missing, or CUDA unavailable.
    """
    if device is None:
        return
    from varseg._optional import has_torch
    from varseg._validation import resolve_device

    if not has_torch():
        raise ValueError(f"--device {device} needs torch: pip install 'varseg[deep]'")
    resolve_device(device)


def spacing_keyword(spec, kw, image, channel_axis, meta):
    """Add ``spacing=meta.spacing`` to ``kw`` for a volume when the method takes it.

    The hook for anisotropic voxels: a method gets the file's voxel spacing ``(dz, dy, dx)``
    only when its :class:`~varseg.methods.MethodSpec` declares a ``spacing`` option and the
    user did not pass one (``--param spacing=[...]``). Otherwise a non-unit spacing is
    reported in the log and the voxels are treated as cubes.

    Parameters
    ----------
    spec : varseg.methods.MethodSpec
    kw : dict
        Keywords for the method.
    image : ndarray
    channel_axis : int or None
    meta : varseg.io.ImageMeta

    Returns
    -------
    dict
        ``kw``, with ``spacing`` added when it applies.
    """
    if "spacing" in kw or image.ndim - (channel_axis is not None) != 3:
        return kw
    spacing = tuple(float(s) for s in meta.spacing)
    if spec.accepts("spacing"):
        return {**kw, "spacing": spacing}
    if any(s != 1.0 for s in spacing):
        logger.warning(
            "%s takes no voxel spacing; the spacing %s of the input is ignored", spec.name, spacing
        )
    return kw


def _write_outputs(image, result, meta, out, stem):
    """Write label map, preview, overlay and ``.npz``; each file atomically."""
    from PIL import Image

    from varseg._atomic import atomic_path
    from varseg.io import save_label_nifti, save_label_png, save_preview_png
    from varseg.report import overlay_image

    labels = np.asarray(result.labels)
    k = max(result.n_phases, int(labels.max()) + 1 if labels.size else 1)
    paths = []
    if labels.ndim == 3 or meta.is_medical:
        paths.append(save_label_nifti(out / f"{stem}_labels.nii.gz", labels, meta, k))
    else:
        paths.append(save_label_png(out / f"{stem}_labels.png", labels, k))
    paths.append(save_preview_png(out / f"{stem}_preview.png", labels))
    overlay = (overlay_image(image, labels) * 255).round().astype(np.uint8)
    with atomic_path(out / f"{stem}_overlay.png") as tmp:
        Image.fromarray(overlay).save(tmp, format="PNG")
    paths.append(out / f"{stem}_overlay.png")
    paths.append(result.save(out / f"{stem}.npz"))
    return paths


def write_outputs(image, result, meta, out, stem):
    """Write every output into ``out``; on a failure remove what this call wrote.

    Parameters
    ----------
    image : ndarray
        The segmented image (for the overlay).
    result : varseg.Segmentation
    meta : varseg.io.ImageMeta
        Geometry for the label NIfTI.
    out : Path
    stem : str
        File name prefix (the method name).

    Returns
    -------
    list of Path
    """
    out = Path(out)
    created = not out.exists()
    before = set(os.listdir(out)) if not created else set()
    try:
        out.mkdir(parents=True, exist_ok=True)
        return _write_outputs(image, result, meta, out, stem)
    except BaseException:
        for name in set(os.listdir(out)) - before if out.is_dir() else ():
            (out / name).unlink(missing_ok=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise


def main(args):
    """Run ``varseg segment``: check everything, segment, write the outputs."""
    from varseg.io import load_image
    from varseg.methods import get_spec

    spec = get_spec(args.method)
    method = spec.load()
    kw = method_kwargs(spec, args)
    check_device(kw.get("device"))
    out = check_output_dir(args.out)
    image, channel_axis, meta = load_image(args.image, return_meta=True)
    kw = spacing_keyword(spec, kw, image, channel_axis, meta)
    result = method(image, args.phases, channel_axis=channel_axis, **kw)
    paths = write_outputs(image, result, meta, out, stem=args.method)
    print(result.summary())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
