"""Tiny datasets in the real on-disk formats, written to a temporary folder.

* :func:`write_voc` -- ``VOCdevkit/VOC2012`` with JPEGs, palette PNG masks and split lists;
* :func:`write_lits` -- ``volume-N.nii`` / ``segmentation-N.nii`` pairs (nibabel);
* :func:`write_brats` -- the official BraTS 2015 ``.mha`` layout (SimpleITK);
* :func:`write_bsds` -- ``data/images/<split>/*.jpg`` and ``data/groundTruth/<split>/*.mat``;
* :func:`run_cli` -- run ``varseg train`` / ``varseg evaluate`` without the other subcommands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

_PALETTE = [v for i in range(256) for v in ((i * 37) % 256, (i * 91) % 256, (i * 13) % 256)]


def _blob_labels(rng, h, w, n_labels, first=1):
    """Background 0 and up to ``n_labels`` rectangles with labels ``first..``."""
    lab = np.zeros((h, w), np.uint8)
    for k in range(n_labels):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        dy, dx = rng.integers(h // 4, h // 2 + 1), rng.integers(w // 4, w // 2 + 1)
        lab[y0 : y0 + dy, x0 : x0 + dx] = first + k
    return lab


def write_voc(
    root,
    ids_train=("2007_000001", "2007_000002", "2007_000003", "2007_000004"),
    ids_val=("2007_000005", "2007_000006"),
    size=(40, 48),
    seed=0,
) -> Path:
    """A VOC 2012 tree; images are darker inside the labelled objects. Returns the root."""
    voc = Path(root) / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True)
    (voc / "SegmentationClass").mkdir()
    sets = voc / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    h, w = size
    for i, id_ in enumerate(list(ids_train) + list(ids_val)):
        lab = _blob_labels(rng, h, w, 1, first=1 + i % 20)
        lab[np.roll(lab, 1, axis=0) != lab] = 255  # void boundary, as in VOC
        img = rng.integers(120, 255, size=(h, w, 3)).astype(np.uint8)
        img[(lab > 0) & (lab < 255)] //= 3
        Image.fromarray(img).save(voc / "JPEGImages" / f"{id_}.jpg", quality=95)
        im = Image.frombytes("P", (w, h), np.ascontiguousarray(lab).tobytes())
        im.putpalette(_PALETTE)
        im.save(voc / "SegmentationClass" / f"{id_}.png")
    (sets / "train.txt").write_text("".join(f"{i}\n" for i in ids_train))
    (sets / "val.txt").write_text("".join(f"{i}\n" for i in ids_val))
    return voc


def write_lits(root, n_scans=3, shape=(24, 24, 4), seed=0) -> Path:
    """LiTS scans ``volume-N.nii`` + ``segmentation-N.nii`` (0 background, 1 liver, 2 tumour)."""
    import nibabel as nib

    root = Path(root) / "Training Batch 1"
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for n in range(n_scans):
        seg = np.zeros(shape, np.uint8)
        seg[4:18, 5:20, :] = 1
        seg[8:12, 9:13, 1:3] = 2
        hu = rng.normal(-500, 50, size=shape)
        hu[seg == 1] = rng.normal(60, 10, size=int((seg == 1).sum()))
        hu[seg == 2] = rng.normal(150, 10, size=int((seg == 2).sum()))
        nib.save(nib.Nifti1Image(hu.astype(np.float32), np.eye(4)), root / f"volume-{n}.nii")
        nib.save(nib.Nifti1Image(seg, np.eye(4)), root / f"segmentation-{n}.nii")
    return Path(root).parent


def write_brats(root, n_cases=3, shape=(4, 24, 24), seed=0) -> Path:
    """BRATS2015_Training/HGG/<case>/VSD.Brain.XX.O.MR_<seq>.<id>/*.mha + OT labels (0-4)."""
    import SimpleITK as sitk

    base = Path(root) / "BRATS2015_Training" / "HGG"
    rng = np.random.default_rng(seed)
    uid = 1000
    for c in range(n_cases):
        case = base / f"brats_2013_pat{c:04d}_1"
        ot = np.zeros(shape, np.uint8)
        ot[:, 6:14, 8:18] = 2
        ot[1:3, 8:12, 10:14] = 4
        brain = np.zeros(shape, bool)
        brain[:, 2:22, 2:22] = True
        for seq in ("T1", "T1c", "T2", "Flair"):
            vol = np.where(brain, rng.normal(100, 10, size=shape), 0.0)
            vol[ot > 0] += 60
            uid += 1
            d = case / f"VSD.Brain.XX.O.MR_{seq}.{uid}"
            d.mkdir(parents=True)
            sitk.WriteImage(
                sitk.GetImageFromArray(vol.astype(np.float32)),
                str(d / f"VSD.Brain.XX.O.MR_{seq}.{uid}.mha"),
            )
        uid += 1
        d = case / f"VSD.Brain_3more.XX.O.OT.{uid}"
        d.mkdir(parents=True)
        sitk.WriteImage(sitk.GetImageFromArray(ot), str(d / f"VSD.Brain_3more.XX.O.OT.{uid}.mha"))
    return Path(root)


def write_bsds(root, splits=(("train", 3), ("test", 2)), size=(30, 36), n_humans=2, seed=0) -> Path:
    """BSDS500 ``data/images`` and ``data/groundTruth`` (a (1, K) cell of structs per image)."""
    from scipy.io import savemat

    data = Path(root) / "BSDS500" / "data"
    rng = np.random.default_rng(seed)
    h, w = size
    for split, n in splits:
        (data / "images" / split).mkdir(parents=True)
        (data / "groundTruth" / split).mkdir(parents=True)
        for i in range(n):
            id_ = f"{split}{i:03d}"
            lab = _blob_labels(rng, h, w, 2, first=2) + 0
            lab[lab == 0] = 1
            img = np.zeros((h, w, 3), np.uint8)
            for k, colour in zip(
                (1, 2, 3), ((200, 60, 40), (40, 180, 60), (30, 60, 200)), strict=True
            ):
                img[lab == k] = colour
            img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(data / "images" / split / f"{id_}.jpg", quality=95)
            cell = np.empty((1, n_humans), dtype=object)
            for k in range(n_humans):
                seg = (
                    lab.astype(np.uint16)
                    if k == 0
                    else np.where(lab == 3, 2, lab).astype(np.uint16)
                )
                bnd = (np.roll(seg, 1, 0) != seg).astype(np.uint8)
                rec = np.empty((1, 1), dtype=[("Segmentation", object), ("Boundaries", object)])
                rec[0, 0] = (seg, bnd)
                cell[0, k] = rec
            savemat(data / "groundTruth" / split / f"{id_}.mat", {"groundTruth": cell})
    return Path(root)


def run_cli(command: str, argv: list[str]) -> int:
    """Run ``varseg <command> argv`` through the command module (as :mod:`varseg.cli` does:
    ValueError / FileNotFoundError -> exit status 2 with a message on stderr)."""
    from importlib import import_module

    mod = import_module(f"varseg.commands.{command}")
    parser = argparse.ArgumentParser(prog=f"varseg {command}")
    mod.add_arguments(parser)
    args = parser.parse_args([str(a) for a in argv])
    try:
        return int(mod.main(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as err:
        print(f"varseg {command}: error: {err}", file=sys.stderr)
        return 2
