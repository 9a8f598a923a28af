"""Reading and writing images and volumes: pictures, NumPy arrays and medical formats.

One reader per format, shared by the command line, the comparison harness and the training
loaders of :mod:`varseg.data`:

============================  ============================  ==============================
format                        reader                        backend
============================  ============================  ==============================
PNG, JPEG, TIFF, BMP, GIF     :func:`read_picture`          Pillow
``.npy``                      :func:`read_image`            NumPy (no pickles)
``.nii``, ``.nii.gz``         :func:`read_nifti`            nibabel
``.mha``/``.mhd``, ``.nrrd``  :func:`read_sitk`             SimpleITK
DICOM series (a folder)       :func:`read_dicom_series`     SimpleITK ``ImageSeriesReader``
============================  ============================  ==============================

**One axis order.** Volumes are always returned as ``(z, y, x)`` arrays (slices along axis 0,
the order of scikit-image and of ``SimpleITK.GetArrayFromImage``), whatever the file format;
a NIfTI array, stored ``(i, j, k) = (x, y, z)`` by nibabel, is transposed. 2D pictures are
``(y, x)`` or ``(y, x, C)``. The :class:`ImageMeta` returned beside the array gives the voxel
``spacing`` in the same order as the array axes and the NIfTI-convention ``affine``.

nibabel and SimpleITK are the ``medical`` extra (``pip install "varseg[medical]"``); they
are imported only when a medical file is read or written.
"""

from __future__ import annotations

import gzip
import locale
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from varseg._atomic import atomic_path, atomic_write_bytes

__all__ = [
    "load_bsds_ground_truth",
    "reading",
    "check_positive_labels",
    "read_ground_truth",
    "ImageMeta",
    "MEDICAL_HINT",
    "label_dtype",
    "load_image",
    "read_dicom_series",
    "read_image",
    "read_nifti",
    "read_nifti_raw",
    "read_picture",
    "read_sitk",
    "require_nibabel",
    "require_simpleitk",
    "sample_names",
    "save_label_nifti",
    "save_label_png",
    "save_preview_png",
    "sitk_affine",
]

logger = logging.getLogger(__name__)

MEDICAL_HINT = "pip install varseg[medical]"
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif")
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class ImageMeta:
    """Geometry and provenance of an image read by :func:`read_image`.

    Attributes
    ----------
    spacing : tuple of float
        Pixel / voxel size along each spatial axis of the returned array, in the same order
        (``(dz, dy, dx)`` for a volume, in mm for medical files; ``1.0`` for pictures).
    affine : ndarray of shape (4, 4) or None
        NIfTI-convention affine mapping the voxel index ``(i, j, k) = (x, y, z)`` (the array
        index reversed: ``array[z, y, x]``) to RAS+ world coordinates in mm. Read from the
        file for NIfTI; built from SimpleITK's origin, spacing and direction (LPS, converted
        to RAS) for MetaImage / NRRD / DICOM (:func:`sitk_affine`); None for pictures.
    header : object
        The nibabel header (NIfTI), a dict of origin / direction / metadata (SimpleITK
        formats), or None.
    source_format : str
        ``"nifti"``, ``"metaimage"``, ``"nrrd"``, ``"dicom"``, ``"picture"``, ``"npy"`` or
        ``"sample"``.
    path : str or None
        The file or folder read.
    """

    spacing: tuple
    affine: np.ndarray | None = None
    header: object = None
    source_format: str = ""
    path: str | None = None

    @property
    def is_medical(self) -> bool:
        """Whether the image came from a medical format (NIfTI, MetaImage, NRRD, DICOM)."""
        return self.source_format in ("nifti", "metaimage", "nrrd", "dicom")


# --------------------------------------------------------------------------------------
# optional dependencies and errors
# --------------------------------------------------------------------------------------
def require_nibabel():
    """Import :mod:`nibabel` lazily.

    Raises
    ------
    ImportError
        One line saying ``install varseg[medical]`` when nibabel is missing.
    """
    try:
        import nibabel
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading or writing NIfTI needs nibabel: {MEDICAL_HINT}") from None
    return nibabel


def require_simpleitk():
    """Import :mod:`SimpleITK` lazily (warnings of ITK are not printed).

    Raises
    ------
    ImportError
        One line saying ``install varseg[medical]`` when SimpleITK is missing.
    """
    try:
        import SimpleITK
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"reading MetaImage, NRRD or DICOM needs SimpleITK: {MEDICAL_HINT}"
        ) from None
    SimpleITK.ProcessObject.SetGlobalWarningDisplay(False)
    return SimpleITK


def _one_line(err, limit=200) -> str:
    """Return an exception's message on one line (ITK messages span many lines)."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _existing_file(path, what) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise ValueError(f"{what} {path} is not a file")
    return path


# --------------------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------------------
def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_picture(path, *, mode=None, what="image") -> np.ndarray:
    """Read a 2D picture (PNG, JPEG, TIFF, BMP, GIF) with Pillow, fully decoded.

    Parameters
    ----------
    path : str or Path
    mode : str, optional
        Convert to this Pillow mode first (``"RGB"``, ``"L"`` …); by default the stored
        pixels are returned: ``(H, W)`` gray, ``(H, W, 2)`` gray+alpha, ``(H, W, 3|4)``
        colour, palette images as RGB(A). 16-bit gray stays ``uint16``. A multi-page TIFF
        is read as a ``(z, y, x)`` stack of its pages.
    what : str
        Name of the file in error messages (e.g. ``"VOC image"``).

    Returns
    -------
    ndarray
        ``uint8`` (or ``uint16`` / ``int32`` / ``float32`` for 16-bit, 32-bit and float
        pictures).

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        One line naming the file when it is not a picture Pillow can decode, or is
        truncated / corrupt.
    """
    from PIL import Image

    path = _existing_file(path, what)
    try:
        with Image.open(path) as im:
            n_frames = getattr(im, "n_frames", 1) if im.format == "TIFF" else 1
            frames = []
            for index in range(n_frames):
                im.seek(index)
                frames.append(_decoded_frame(im, mode))
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # incl. UnidentifiedImageError
        raise ValueError(f"could not read {what} {path}: {_one_line(err)}") from None
    if len({f.shape for f in frames}) > 1:
        raise ValueError(
            f"{what} {path} is a multi-page TIFF whose pages differ in shape: "
            "expected a stack of equal slices"
        )
    arr = frames[0] if n_frames == 1 else np.stack(frames)
    if arr.dtype == np.int32 and arr.size and 0 <= arr.min() and arr.max() <= 65535:
        arr = arr.astype(np.uint16)  # Pillow's "I" mode for 16-bit PNG
    return arr


def _decoded_frame(im, mode):
    """Return the current frame of a Pillow image as an array (palette images as RGB(A))."""
    im.load()
    if mode is not None:
        im = im.convert(mode)
    elif im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    return np.array(im)


def read_nifti_raw(path, *, labels=False, reorient=False, what="NIfTI file"):
    """Read a NIfTI volume with nibabel in its stored ``(i, j, k)`` index order.

    Images are read with ``get_fdata(dtype=np.float32)`` (scaling applied, e.g. CT in HU);
    label maps return the raw scaled data (``np.asarray(img.dataobj)``) so that a caller
    can validate the values before casting.

    Parameters
    ----------
    path : str or Path
    labels : bool
        Return the stored values instead of float32.
    reorient : bool
        Apply :func:`nibabel.as_closest_canonical` (axes permuted / flipped to RAS) first.
    what : str
        Name of the file in error messages.

    Returns
    -------
    data : ndarray
        The voxel array in NIfTI ``(i, j, k)`` order.
    img : nibabel.Nifti1Image
        The image (header / affine).

    Raises
    ------
    ValueError
        One line naming the file when it is not a NIfTI file, is truncated or corrupt.
    """
    nib = require_nibabel()
    path = _existing_file(path, what)
    try:
        img = nib.load(str(path))
        if reorient:
            img = nib.as_closest_canonical(img)
        data = np.asarray(img.dataobj) if labels else img.get_fdata(dtype=np.float32)
    except Exception as err:  # noqa: BLE001 - nibabel, gzip, zlib and numpy all raise here
        raise ValueError(f"could not read {what} {path}: {_one_line(err)}") from None
    return data, img


def read_nifti(path, *, what="NIfTI file"):
    """Read a NIfTI file as a ``(z, y, x)`` float32 array plus its :class:`ImageMeta`.

    Trailing axes of length 1 beyond the third (``(X, Y, Z, 1)``) are dropped.

    Returns
    -------
    array : ndarray of float32, shape (Z, Y, X) (or (Y, X) for a 2D file)
    meta : ImageMeta
        ``spacing`` from ``header.get_zooms()`` reversed, ``affine`` = ``img.affine``,
        ``header`` = a copy of the nibabel header.
    """
    data, img = read_nifti_raw(path, what=what)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise ValueError(f"{what} {path} has shape {data.shape}: expected a 2-D or 3-D image")
    zooms = tuple(float(z) for z in img.header.get_zooms()[: data.ndim])
    meta = ImageMeta(
        spacing=zooms[::-1],
        affine=np.asarray(img.affine, dtype=np.float64),
        header=img.header.copy(),
        source_format="nifti",
        path=str(path),
    )
    return np.ascontiguousarray(data.T), meta


def sitk_affine(spacing, origin, direction) -> np.ndarray:
    r"""NIfTI (RAS+) affine of a SimpleITK image from its spacing, origin and direction.

    ITK maps the index :math:`(i, j, k)` to the LPS point
    :math:`p = o + D\,\mathrm{diag}(s)\,(i, j, k)^T`; RAS flips the first two world axes:
    :math:`A = \mathrm{diag}(-1, -1, 1)\,[D\,\mathrm{diag}(s) \mid o]`. 2D images are padded
    to 3D with unit spacing.

    Parameters
    ----------
    spacing, origin : sequence of float
        In ITK's ``(x, y[, z])`` order (``image.GetSpacing()``, ``image.GetOrigin()``).
    direction : sequence of float
        Row-major direction cosines (``image.GetDirection()``), 4 or 9 numbers.

    Returns
    -------
    ndarray of float64, shape (4, 4)
    """
    n = len(spacing)
    s, o = np.ones(3), np.zeros(3)
    s[:n], o[:n] = spacing, origin
    d = np.eye(3)
    d[:n, :n] = np.asarray(direction, dtype=np.float64).reshape(n, n)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ d @ np.diag(s)
    affine[:3, 3] = _LPS_TO_RAS @ o
    return affine


def _from_sitk(img, source_format, path, extra=None):
    """Array ``(z, y, x)`` and :class:`ImageMeta` of a SimpleITK image."""
    import SimpleITK as sitk

    if img.GetNumberOfComponentsPerPixel() != 1:
        raise ValueError(
            f"{path} has {img.GetNumberOfComponentsPerPixel()} components per "
            "voxel: expected a scalar image"
        )
    header = {
        "origin": img.GetOrigin(),
        "direction": img.GetDirection(),
        "metadata": {k: img.GetMetaData(k) for k in img.GetMetaDataKeys()},
    }
    header.update(extra or {})
    meta = ImageMeta(
        spacing=tuple(float(s) for s in img.GetSpacing())[::-1],
        affine=sitk_affine(img.GetSpacing(), img.GetOrigin(), img.GetDirection()),
        header=header,
        source_format=source_format,
        path=str(path),
    )
    return sitk.GetArrayFromImage(img), meta


def read_sitk(path, *, what="image file"):
    """Read a MetaImage (``.mha``/``.mhd``) or NRRD (``.nrrd``/``.nhdr``) file with SimpleITK.

    Returns
    -------
    array : ndarray, shape (Z, Y, X) or (Y, X)
        ``SimpleITK.GetArrayFromImage``, stored dtype (e.g. (155, 240, 240) for BraTS 2015).
    meta : ImageMeta
        ``spacing`` reversed from ITK's ``(x, y, z)``, ``affine`` from :func:`sitk_affine`,
        ``header`` with origin, direction and the file's metadata.

    Raises
    ------
    ValueError
        One line naming the file when it is truncated, corrupt or not readable.
    """
    sitk = require_simpleitk()
    path = _existing_file(path, what)
    fmt = "nrrd" if _suffix(path) in (".nrrd", ".nhdr") else "metaimage"
    try:
        with _keep_locale():
            img = sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise ValueError(f"could not read {what} {path}: {_one_line(err)}") from None
    return _from_sitk(img, fmt, path)


@contextmanager
def _keep_locale():
    """Restore every locale category after a call into a C++ library that changes it."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def read_dicom_series(folder, *, what="DICOM folder"):
    """Read the DICOM series in ``folder`` with SimpleITK's ``ImageSeriesReader``.

    Slices are sorted by GDCM along the slice normal (``ImagePositionPatient``); with several
    series in the folder the first series ID is read (a warning names the others).

    Returns
    -------
    array : ndarray, shape (Z, Y, X)
    meta : ImageMeta
        ``spacing`` ``(dz, dy, dx)`` with ``dz`` from the slice positions, ``affine`` from
        :func:`sitk_affine`, ``header`` with origin, direction, ``series_uid`` and ``files``.

    Raises
    ------
    ValueError
        One line naming the folder when it holds no readable DICOM series.
    """
    sitk = require_simpleitk()
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} not found: {folder}")
    reader = sitk.ImageSeriesReader()
    try:
        with _keep_locale():  # GDCM resets the C locale (Python's text files turn ASCII)
            ids = reader.GetGDCMSeriesIDs(str(folder))
            if not ids:
                raise ValueError(f"{what} {folder} holds no DICOM series")
            if len(ids) > 1:
                logger.warning(
                    "%s %s holds %d DICOM series; reading %s (others: %s)",
                    what,
                    folder,
                    len(ids),
                    ids[0],
                    ", ".join(ids[1:]),
                )
            files = reader.GetGDCMSeriesFileNames(str(folder), ids[0])
            reader.SetFileNames(files)
            img = reader.Execute()
    except RuntimeError as err:
        raise ValueError(f"could not read {what} {folder}: {_one_line(err)}") from None
    return _from_sitk(img, "dicom", folder, {"series_uid": ids[0], "files": tuple(files)})


def _read_npy(path):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError, OSError, EOFError
        raise ValueError(f"could not read array {path}: {_one_line(err)}") from None


def read_image(path):
    """Read any supported image file or DICOM folder: the array and its :class:`ImageMeta`.

    The format is chosen from the suffix (a folder is a DICOM series); see the table in
    :mod:`varseg.io`. Volumes come back ``(z, y, x)`` with ``spacing`` in that order.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    array : ndarray
        Stored values (no scaling), float32 for NIfTI.
    meta : ImageMeta

    Raises
    ------
    FileNotFoundError
        Missing file or folder.
    ValueError
        Unsupported suffix, or a corrupt / truncated file (one line naming it).
    ImportError
        A medical format without the ``medical`` extra installed.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"image file not found: {path}")
    if path.is_dir():
        return read_dicom_series(path)
    suffix = _suffix(path)
    if suffix in NIFTI_SUFFIXES:
        return read_nifti(path)
    if suffix in SITK_SUFFIXES:
        return read_sitk(path)
    if suffix == ".npy":
        arr = _read_npy(path)
        return arr, ImageMeta((1.0,) * min(arr.ndim, 3), source_format="npy", path=str(path))
    if suffix in PICTURE_SUFFIXES or suffix == "":
        arr = read_picture(path)
        stack = suffix in (".tif", ".tiff") and arr.ndim >= 3 and arr.shape[-1] not in (2, 3, 4)
        spacing = (1.0,) * (3 if stack else 2)
        return arr, ImageMeta(spacing, source_format="picture", path=str(path))
    known = ", ".join(PICTURE_SUFFIXES + (".npy",) + NIFTI_SUFFIXES + SITK_SUFFIXES)
    raise ValueError(
        f"unsupported image format {suffix!r} for {path}: expected one of "
        f"{known}, or a DICOM series folder"
    )


# --------------------------------------------------------------------------------------
# the command-line entry point
# --------------------------------------------------------------------------------------
def sample_names():
    """Names of the bundled ``skimage.data`` images usable as ``sample:NAME``."""
    return [
        "astronaut",
        "brain",
        "camera",
        "cells3d-slice",
        "chelsea",
        "coffee",
        "coins",
        "horse",
        "moon",
        "page",
        "text",
    ]


#: samples that ``skimage.data`` reads unchanged from a PNG file it ships: read here with
#: Pillow directly (the same pixels, without importing ``skimage.io`` and its plugins,
#: about half a second)
_BUNDLED_PNG_SAMPLES = frozenset(
    {"astronaut", "camera", "chelsea", "coffee", "coins", "moon", "page", "text"}
)


def _bundled_sample(name):
    """Return the pixels of a sample shipped as ``skimage/data/<name>.png`` (None if absent)."""
    from importlib.util import find_spec

    if name not in _BUNDLED_PNG_SAMPLES:
        return None
    spec = find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "data" / f"{name}.png"
        if path.is_file():
            return read_picture(path, what=f"sample {name!r}")
    return None


def _sample(name):
    if name not in sample_names():
        raise ValueError(f"unknown sample {name!r}; expected one of {sample_names()}")
    img = _bundled_sample(name)
    if img is None:
        from skimage import data

        img = data.cells3d()[30, 1] if name == "cells3d-slice" else getattr(data, name)()
    return np.asarray(img), ImageMeta((1.0, 1.0), source_format="sample", path=f"sample:{name}")


def _check_layout(img, meta, spec):
    """Drop an alpha channel, refuse shapes and values no method takes.

    Returns ``(img, channel_axis)``.
    """
    if img.size == 0 or img.ndim < 2:
        raise ValueError(f"image {spec} has shape {img.shape}: expected a 2-D or 3-D image")
    if np.issubdtype(img.dtype, np.inexact):
        bad = int(img.size - np.count_nonzero(np.isfinite(img)))
        if bad:
            raise ValueError(f"image {spec} has {bad} NaN or Inf value(s); no method takes them")
    if meta.is_medical:
        return img, None
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if img.ndim == 3 and img.shape[-1] == 2:
        raise ValueError(
            f"image {spec} has 2 channels (gray + alpha?): expected gray "
            "(H, W), colour (H, W, 3) or RGBA; convert it to gray or RGB first"
        )
    colour = img.ndim >= 3 and img.shape[-1] == 3
    if img.ndim > 3 + colour:
        raise ValueError(
            f"image {spec} has shape {img.shape}: expected (H, W), (H, W, 3), "
            "(D, H, W) or (D, H, W, 3)"
        )
    return img, (-1 if colour else None)


def load_image(spec, *, as_float=True, return_meta=False):
    """Load an image or volume from a path, a DICOM folder or ``sample:NAME``.

    Parameters
    ----------
    spec : str or Path
        A picture (PNG, JPEG, TIFF…), a ``.npy`` array, a medical volume (``.nii``,
        ``.nii.gz``, ``.mha``/``.mhd``, ``.nrrd``, a DICOM series folder; see
        :func:`read_image`), or ``sample:NAME`` with NAME in :func:`sample_names`.
    as_float : bool
        Convert to float64. Integer pictures, arrays and samples are divided by their dtype's
        maximum (into [0, 1]); medical volumes keep their physical values (e.g. CT in HU),
        as every method rescales internally.
    return_meta : bool
        Also return the :class:`ImageMeta` (spacing, affine, header).

    Returns
    -------
    image : ndarray, shape (H, W), (H, W, 3), (Z, Y, X) or (Z, Y, X, 3)
        Volumes in ``(z, y, x)`` order; an alpha channel is dropped.
    channel_axis : int or None
        ``-1`` for colour images, None for gray.
    meta : ImageMeta
        Only with ``return_meta=True``.

    Raises
    ------
    FileNotFoundError
        Missing file.
    ValueError
        Unknown sample, unsupported or unreadable file, or a layout no method takes (e.g. a
        2-channel picture).
    """
    spec = str(spec)
    if spec.startswith("sample:"):
        img, meta = _sample(spec.split(":", 1)[1])
    else:
        img, meta = read_image(spec)
    img, channel_axis = _check_layout(np.asarray(img), meta, spec)
    if as_float:
        if np.issubdtype(img.dtype, np.integer) and not meta.is_medical:
            img = img / float(np.iinfo(img.dtype).max)
        img = img.astype(np.float64)
    return (img, channel_axis, meta) if return_meta else (img, channel_axis)


# --------------------------------------------------------------------------------------
# writers
# --------------------------------------------------------------------------------------
def label_dtype(n_labels):
    """Smallest unsigned dtype holding labels 0 to ``n_labels - 1`` (uint8 or uint16).

    Parameters
    ----------
    n_labels : int
        K.

    Returns
    -------
    numpy.dtype
    """
    n_labels = int(n_labels)
    if n_labels <= 256:
        return np.dtype(np.uint8)
    if n_labels <= 65536:
        return np.dtype(np.uint16)
    raise ValueError(f"n_labels={n_labels}: at most 65536 labels fit a label image")


def _index_labels(labels, n_labels, what):
    lab = np.asarray(labels)
    if not (np.issubdtype(lab.dtype, np.integer) or lab.dtype == bool):
        raise TypeError(f"{what} must be integer labels; got dtype {lab.dtype}")
    lo, hi = (int(lab.min()), int(lab.max())) if lab.size else (0, 0)
    n = hi + 1 if n_labels is None else int(n_labels)
    if lo < 0 or hi >= n:
        raise ValueError(f"{what} must hold values 0..{n - 1}; got {lo}..{hi}")
    return lab.astype(label_dtype(n))


def save_label_png(path, labels, n_labels=None):
    """Write a 2D label map as a PNG of index values 0 to K-1 (atomic write).

    ``uint8`` (mode ``L``) for up to 256 labels, ``uint16`` (mode ``I;16``) above: napari,
    ITK-SNAP or Fiji read the pixel values as the labels. For a coloured view see
    :func:`save_preview_png`.

    Parameters
    ----------
    path : str or Path
    labels : array_like of int, shape (H, W)
    n_labels : int, optional
        K (default ``labels.max() + 1``); chooses uint8 or uint16.

    Returns
    -------
    Path
    """
    from PIL import Image

    lab = _index_labels(labels, n_labels, "labels")
    if lab.ndim != 2:
        raise ValueError(f"a label PNG needs 2-D labels; got shape {lab.shape}")
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(lab).save(tmp, format="PNG")
    return path


def save_preview_png(path, labels):
    """Write a coloured view of a label map (the middle slice of a volume) as an RGB PNG.

    Colours from :func:`skimage.color.label2rgb` (label 0 included); for viewing only, the
    values are not the labels (use :func:`save_label_png` for that).

    Parameters
    ----------
    path : str or Path
    labels : array_like of int, shape (H, W) or (Z, Y, X)

    Returns
    -------
    Path
    """
    from PIL import Image
    from skimage.color import label2rgb

    lab = np.asarray(labels)
    if lab.ndim == 3:
        lab = lab[lab.shape[0] // 2]
    rgb = (label2rgb(lab, bg_label=-1) * 255).round().astype(np.uint8)
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(rgb).save(tmp, format="PNG")
    return path


def save_label_nifti(path, labels, meta=None, n_labels=None):
    """Write a ``(z, y, x)`` label volume as NIfTI (``.nii.gz`` or ``.nii``; atomic write).

    The array is transposed back to NIfTI's ``(x, y, z)`` order and stored as uint8 (uint16
    when K > 256) with values ``0 .. K-1`` and no intensity scaling. With ``meta`` from a
    NIfTI file its affine and header are kept (so the labels overlay the input in any
    viewer); from MetaImage / NRRD / DICOM the affine built by :func:`sitk_affine` is
    written as sform and qform (code 1, scanner); without ``meta`` the identity.

    Parameters
    ----------
    path : str or Path
    labels : array_like of int, shape (Z, Y, X)
    meta : ImageMeta, optional
    n_labels : int, optional

    Returns
    -------
    Path
    """
    nib = require_nibabel()
    lab = _index_labels(labels, n_labels, "labels")
    if lab.ndim not in (2, 3):
        raise ValueError(f"a label NIfTI needs 2-D or 3-D labels; got shape {lab.shape}")
    affine = np.eye(4) if meta is None or meta.affine is None else meta.affine
    header = meta.header.copy() if meta is not None and meta.source_format == "nifti" else None
    img = nib.Nifti1Image(np.asfortranarray(lab.T), affine, header)
    img.set_data_dtype(lab.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    img.header["cal_min"], img.header["cal_max"] = 0, int(lab.max()) if lab.size else 0
    img.header["descrip"] = b"varseg labels"
    if header is None:
        img.set_sform(affine, code=1)
        img.set_qform(affine, code=1)
    data = img.to_bytes()
    path = Path(path)
    if path.name.lower().endswith(".gz"):
        data = gzip.compress(data, compresslevel=6, mtime=0)
    atomic_write_bytes(path, data)
    return path


def read_ground_truth(path):
    """Read a ground truth file: a label-map ``.png``/``.tif``/``.npy``, or a BSDS ``.mat``.

    A palette / gray PNG gives its indices; an RGB(A) PNG is converted to one label per
    distinct colour. A BSDS500 ``.mat`` gives the list of human segmentations.

    Returns
    -------
    ndarray of int64, or list of ndarray

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Unreadable file, or not an integer label map (one line naming the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ground truth file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        return [np.asarray(g, dtype=np.int64) for g in load_bsds_ground_truth(path)]
    try:
        if suffix == ".npy":
            arr = np.asarray(np.load(path, allow_pickle=False))
        else:
            from PIL import Image

            with Image.open(path) as im:
                arr = np.array(im)
    except (OSError, ValueError, SyntaxError) as err:
        raise ValueError(f"cannot read ground truth {path}: {err}") from None
    return _as_label_map(arr, path)


def _as_label_map(arr, path):
    if arr.ndim == 3:  # colour-coded label map: one label per distinct colour
        _, inv = np.unique(arr.reshape(-1, arr.shape[-1]), axis=0, return_inverse=True)
        arr = inv.reshape(arr.shape[:2])
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        if not (
            np.issubdtype(arr.dtype, np.floating)
            and np.all(np.isfinite(arr))
            and np.all(np.mod(arr, 1) == 0)
        ):
            raise ValueError(f"ground truth {path} is not an integer label map (dtype {arr.dtype})")
    return arr.astype(np.int64)


@contextmanager
def reading(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Turn a reader's failure on a damaged file into one ValueError naming the file.

    Truncated JPEG, ``.mat``, ``.nii.gz`` or ``.mha`` files fail deep inside PIL, SciPy,
    nibabel or SimpleITK (``EOFError``, ``OSError``, ``zlib.error``, ``RuntimeError``,
    ...), usually without the file name. A missing file (``FileNotFoundError``), a
    missing optional package (``ImportError``) and errors that already name the file
    pass through unchanged.
    """
    try:
        yield
    except (FileNotFoundError, ImportError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - any reader failure is a damaged file
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if isinstance(err, (ValueError, TypeError)) and str(Path(path)) in text:
            raise
        raise ValueError(f"could not read {what} {path}: {text}") from None


def check_positive_labels(labels: np.ndarray, path: str | os.PathLike, what: str) -> None:
    """Raise ValueError naming ``path`` unless ``labels`` are integers ``>= 1``.

    BSDS500 human segmentations number their regions from 1 (Arbeláez et al., TPAMI
    2011); a 0 or a negative label means a corrupt or foreign file.
    """
    arr = np.asarray(labels)
    if arr.size == 0:
        return
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not np.array_equal(arr, np.round(arr)):
            raise ValueError(f"{what} {path} has non-integer labels: expected integers >= 1")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} {path} has labels of dtype {arr.dtype}: expected integers >= 1")
    low = arr.min()
    if low < 1:
        bad = np.unique(arr[arr < 1])[:5].tolist()
        raise ValueError(
            f"{what} {path} has labels {bad} below 1: expected region labels numbered from 1"
        )


def load_bsds_ground_truth(
    mat_path: str | os.PathLike, field: str = "Segmentation"
) -> list[np.ndarray]:
    """Read the human segmentations of one BSDS500 image.

    ``loadmat(f)['groundTruth']`` is a (1, K) object array (a MATLAB cell); element
    ``[0, k]`` is a (1, 1) struct whose ``['Segmentation'][0, 0]`` is a uint16 H × W label
    map with labels starting at 1, and ``['Boundaries'][0, 0]`` a uint8 boundary map
    (Arbeláez et al., TPAMI 2011; the benchmark of Kim & Ye, IEEE TIP 2019, Sec. V-C3).

    Parameters
    ----------
    mat_path : path
        ``data/groundTruth/<split>/<id>.mat``.
    field : {"Segmentation", "Boundaries"}
        Which map to return.

    Returns
    -------
    list of numpy.ndarray
        One (H, W) array per human annotator (K is usually 4-9), dtype as stored
        (uint16 for segmentations).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        Naming the file: damaged, no ``groundTruth`` cell, the field missing, or (for
        ``"Segmentation"``) a label below 1 or not an integer.
    """
    from scipy.io import loadmat

    path = Path(mat_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"BSDS500 ground truth {path} does not exist: expected "
            "data/groundTruth/<split>/<id>.mat"
        )
    with reading(path, "BSDS500 ground truth"):
        mat = loadmat(str(path))
    if "groundTruth" not in mat:
        raise ValueError(
            f"BSDS500 ground truth {path} has no 'groundTruth' cell (keys: "
            f"{sorted(k for k in mat if not k.startswith('__'))})"
        )
    cell = np.asarray(mat["groundTruth"]).reshape(-1)
    out = [_annotation(entry, field, path, k) for k, entry in enumerate(cell)]
    if not out:
        raise ValueError(f"BSDS500 ground truth {path} holds no human segmentation")
    return out


def _annotation(entry, field: str, path: Path, k: int) -> np.ndarray:
    """Map ``field`` of the ``k``-th struct of a ``groundTruth`` cell, checked."""
    names = getattr(getattr(entry, "dtype", None), "names", None) or ()
    if field not in names:
        raise ValueError(
            f"BSDS500 ground truth {path}: segmentation {k} has fields {names}, expected {field!r}"
        )
    arr = np.asarray(entry[field].reshape(-1)[0]) if entry.size else None
    if arr is None or arr.ndim != 2:
        raise ValueError(f"BSDS500 ground truth {path}: {field} {k} is not a 2-D map")
    if field == "Segmentation":
        check_positive_labels(arr, path, f"BSDS500 ground truth (segmentation {k})")
    return arr
