r"""Figures for segmentations, energies, bias fields and level-set evolutions (matplotlib).

Every function creates its figure with :func:`matplotlib.pyplot.figure` (so that notebooks,
``plt.show()`` and Sphinx-gallery see it) and returns the :class:`~matplotlib.figure.Figure`;
save it with ``fig.savefig(path)`` and release it with ``plt.close(fig)`` in long loops. No
function calls ``plt.show()`` or changes the backend: they run with Agg (headless, worker
processes) as with any interactive backend. Pass ``ax=`` to draw into your own axes where
offered. Inside ``with offscreen():`` (what the report writers use) the figures are plain
Agg figures outside pyplot instead: nothing to close, and pyplot is never imported.

3D inputs are shown through their middle slice (axis 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import PurePath

import numpy as np

__all__ = [
    "overlay_image",
    "plot_comparison",
    "plot_energy",
    "plot_bias_field",
    "plot_evolution",
    "save_evolution_gif",
    "render_evolution_frames",
    "label_colors",
    "offscreen",
    "save_figure",
]

_OFFSCREEN = ContextVar("varseg_plot_offscreen", default=False)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------
def _inner_boundaries(labels):
    r"""Pixels of a non-zero label with a 4-neighbour (6 in 3D) of another label.

    Equal to ``skimage.segmentation.find_boundaries(labels, mode="inner")`` (tested): a
    pixel :math:`p` is a boundary pixel when :math:`\max_{q \in N(p)} u_q \ne \min_{q \in
    N(p)} u_q` over its cross-shaped neighbourhood :math:`N(p)` (itself included, nothing
    outside the image) and :math:`u_p \ne 0`, computed with one comparison per axis instead
    of a grey dilation and erosion (and without importing scikit-image's morphology).
    """
    lab = np.asarray(labels)
    out = np.zeros(lab.shape, dtype=bool)
    for ax in range(lab.ndim):
        lo = [slice(None)] * lab.ndim
        hi = [slice(None)] * lab.ndim
        lo[ax], hi[ax] = slice(None, -1), slice(1, None)
        diff = lab[tuple(lo)] != lab[tuple(hi)]
        out[tuple(lo)] |= diff
        out[tuple(hi)] |= diff
    return out & (lab != 0)


def overlay_image(image, labels, color=(1.0, 0.2, 0.1)):
    """RGB float image in [0, 1] with the region boundaries of ``labels`` drawn in ``color``.

    3D inputs use their middle slice. The boundaries are those of
    :func:`skimage.segmentation.find_boundaries` with ``mode="inner"``.
    """
    img = np.asarray(image, dtype=np.float64)
    lab = np.asarray(labels)
    if lab.ndim == 3:  # volume: middle slice
        mid = lab.shape[0] // 2
        lab = lab[mid]
        img = img[mid] if img.ndim == 3 and img.shape[-1] not in (3, 4) else img
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    out = img[..., :3].copy()
    out[_inner_boundaries(lab)] = color
    return out


@contextmanager
def offscreen():
    """Draw the figures of this module on off-screen Agg canvases, outside pyplot.

    Within the block every plotting function returns a :class:`~matplotlib.figure.Figure`
    with its own :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`, not registered
    with pyplot: ``fig.savefig`` works as usual, no ``plt.close`` is needed (the figure is
    freed with its last reference), and :mod:`matplotlib.pyplot` is not imported (about a
    second of start-up the report writers save). The figures' content is the same.

    Examples
    --------
    >>> import numpy as np
    >>> from varseg import baselines, plot
    >>> seg = baselines.otsu_segment(np.eye(8), 2)
    >>> with plot.offscreen():
    ...     fig = plot.plot_energy(seg)
    >>> fig.canvas.manager is None
    True
    """
    token = _OFFSCREEN.set(True)
    try:
        yield
    finally:
        _OFFSCREEN.reset(token)


def _format_of(target, format):
    """Return the format savefig writes: ``format``, else the file suffix, else the rc default."""
    import matplotlib

    if format is None and isinstance(target, (str, PurePath)):
        format = PurePath(target).suffix.lstrip(".") or None
    return str(format or matplotlib.rcParams["savefig.format"]).lower()


def save_figure(fig, target, *, dpi=150, format=None, compress_level=None):
    """Save ``fig`` with one rendering pass (same pixels as ``fig.savefig``).

    ``fig.savefig`` on a figure with a layout engine (constrained layout, as
    :func:`plot_evolution` uses) draws the figure twice: once, with drawing disabled, to run the
    layout, and once for real. Here the layout engine runs once at the saving resolution
    and is then switched off, so the figure is drawn once; the saved pixels are identical
    (tested). The figure keeps the computed layout and the saving ``dpi``, and has no layout
    engine afterwards.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    target : path or file-like
        Where to write (as :meth:`~matplotlib.figure.Figure.savefig`).
    dpi : float
        Resolution of the saved image.
    format : str, optional
        File format (default: from the file name, as ``savefig``).
    compress_level : int, optional
        zlib level 0-9 of a PNG (Pillow's default 6 when None; lower is faster and
        larger, the image is lossless at every level).

    Returns
    -------
    matplotlib.figure.Figure
        ``fig``.
    """
    engine = fig.get_layout_engine()
    if engine is not None:
        fig.set_dpi(dpi)  # the resolution savefig lays the figure out at
        if fig.axes:  # as Figure.draw: no layout without axes, a failed one is skipped
            try:
                engine.execute(fig)
            except ValueError:
                pass
        fig.set_layout_engine(None)
    kw = {}
    if compress_level is not None and _format_of(target, format) == "png":
        kw["pil_kwargs"] = {"compress_level": int(compress_level)}
    fig.savefig(target, dpi=dpi, format=format, **kw)
    return fig


def _new_figure(figsize, layout="constrained"):
    """Return a figure of ``figsize`` inches: off-screen Agg in :func:`offscreen`, else pyplot.

    ``layout=None`` for the figures that place their axes themselves (a fixed layout costs
    nothing at draw time; constrained layout measures every text of the figure).
    """
    if _OFFSCREEN.get():
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=figsize, layout=layout)
        FigureCanvasAgg(fig)
        return fig
    import matplotlib.pyplot as plt

    return plt.figure(figsize=figsize, layout=layout)


def _margins(fig, left, bottom, right, top, wspace=None):
    """Set fixed subplot margins given in inches (as ``fig.subplots_adjust`` fractions)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(
        left=left / w, bottom=bottom / h, right=1 - right / w, top=1 - top / h, wspace=wspace
    )


def _panel_grid(fig, nrows, ncols, panel, title_band, gap, top=0.0):
    """``nrows × ncols`` axes of ``panel = (w, h)`` inches, a title band above each row.

    A fixed layout (no layout engine): axis ``[i, j]`` spans ``panel`` inches with ``gap``
    inches between columns and ``title_band`` inches above it for its title, below a band
    of ``top`` inches (a figure title).
    """
    fw, fh = fig.get_size_inches()
    pw, ph = panel
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):
        bottom = fh - top - (i + 1) * (ph + title_band) - gap / 2
        for j in range(ncols):
            left = gap / 2 + j * (pw + gap)
            axes[i, j] = fig.add_axes((left / fw, bottom / fh, pw / fw, ph / fh))
    return axes


def _middle(a, spatial_ndim):
    """Middle slice of a 3D spatial array (works with a trailing channel axis)."""
    a = np.asarray(a)
    if spatial_ndim == 3:
        return a[a.shape[0] // 2]
    return a


def _display_image(image, channel_axis=None):
    """(H, W) gray or (H, W, 3) RGB float image in [0, 1] for imshow, middle slice of 3D."""
    x = np.asarray(image, dtype=np.float64)
    if channel_axis is not None:
        x = np.moveaxis(x, channel_axis, -1)
        spatial = x.ndim - 1
        x = _middle(x, spatial)
        if x.shape[-1] == 1:
            x = x[..., 0]
        elif x.shape[-1] == 2:
            x = np.concatenate([x, np.zeros_like(x[..., :1])], axis=-1)
        elif x.shape[-1] > 3:
            x = x[..., :3]
    else:
        if x.ndim == 3 and x.shape[-1] in (3, 4):  # looks like RGB(A) given without axis
            x = x[..., :3]
        else:
            x = _middle(x, x.ndim)
    lo, hi = float(np.min(x)), float(np.max(x))
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def _show(ax, img, title=None):
    if img.ndim == 2:
        ax.imshow(img, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def label_colors(n):
    """``n`` distinct RGB colours (tab10, then tab20) for label maps."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"] if n <= 10 else colormaps["tab20"]
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)])


def _label_rgb(labels, n_colors):
    lab = np.asarray(labels)
    lab = lab - lab.min() if lab.size and lab.min() < 0 else lab
    colours = label_colors(max(int(lab.max()) + 1 if lab.size else 1, n_colors))
    return colours[lab]


def _results_dict(results):
    """Accept a ComparisonTable, a dict name → Segmentation, or a list of Segmentations."""
    if hasattr(results, "results") and hasattr(results, "rows"):
        return dict(results.results)
    if isinstance(results, Mapping):
        return dict(results)
    if hasattr(results, "labels") and hasattr(results, "energy"):
        return {results.method: results}
    out = {}
    for r in results:
        name, k = r.method, 1
        while name in out:
            k += 1
            name = f"{r.method}#{k}"
        out[name] = r
    return out


def _best_assignment(overlap):
    """Rows → columns of the one-to-one assignment of largest total ``overlap``.

    Every injective assignment of the smaller side is tried (at most 720 for 6 × 6): the
    optimum of :func:`scipy.optimize.linear_sum_assignment` with ``maximize=True``, without
    importing ``scipy.optimize`` (about half a second of a report). Ties may pick another
    optimum.
    """
    from itertools import permutations

    n_p, n_t = overlap.shape
    if n_p <= n_t:
        best = max(permutations(range(n_t), n_p), key=lambda c: overlap[range(n_p), c].sum())
        return dict(zip(range(n_p), best, strict=True))
    best = max(permutations(range(n_p), n_t), key=lambda r: overlap[r, range(n_t)].sum())
    return dict(zip(best, range(n_t), strict=True))


def _match_colours(labels, target):
    """``labels`` relabelled to ``target`` as :func:`varseg.metrics.match_labels` does.

    Same mapping (up to ties between optimal assignments) for up to 6 labels on either
    side, by :func:`_best_assignment`; more labels go to ``match_labels`` itself.
    """
    clusters, p_idx = np.unique(labels, return_inverse=True)
    classes, t_idx = np.unique(target, return_inverse=True)
    n_p, n_t = clusters.size, classes.size
    if min(n_p, n_t) > 6 or max(n_p, n_t) > 9 or labels.shape != np.shape(target):
        from .metrics import match_labels

        return match_labels(labels, target)
    overlap = np.bincount(p_idx.ravel() * n_t + t_idx.ravel(), minlength=n_p * n_t)
    overlap = overlap.reshape(n_p, n_t)
    mapping = {r: int(classes[c]) for r, c in _best_assignment(overlap).items() if overlap[r, c]}
    next_id = int(classes.max()) + 1
    for r in range(n_p):  # left over: fresh labels, in cluster order
        if r not in mapping:
            mapping[r] = next_id
            next_id += 1
    lut = np.array([mapping[r] for r in range(n_p)], dtype=np.int64)
    return lut[p_idx.ravel()].reshape(np.shape(labels))


def _energy_of(table, name, res):
    if table is not None:
        try:
            return table.row(name)["energy"]
        except KeyError:
            pass
    return res.final_energy


# --------------------------------------------------------------------------------------
# comparison panels
# --------------------------------------------------------------------------------------
def plot_comparison(
    image,
    results,
    ground_truth=None,
    *,
    channel_axis=None,
    match=True,
    contour_color=(1.0, 0.15, 0.1),
    figsize=None,
    suptitle=None,
    panel_width=2.2,
):
    """Side-by-side panels: the image, and each method's labels and contour overlay.

    Layout: one column per method plus a first column; top row the image and each method's
    label map (colours matched across methods), bottom row the ground truth (if given) and
    each method's region boundaries drawn over the image. Titles give the method name and
    the energy (the table's shared energy when ``results`` is a
    :class:`~varseg.compare.ComparisonTable`, else the method's last recorded value).

    Parameters
    ----------
    image : array_like
        The segmented image (scikit-image conventions).
    results : ComparisonTable, dict of name → Segmentation, or list of Segmentation
    ground_truth : ndarray of int, or list of label maps, optional
        Class map or human segmentations (the first one is shown).
    channel_axis : int, optional
    match : bool
        Relabel each method's clusters to the ground truth (or to the first method) by the
        Hungarian algorithm (:func:`varseg.metrics.match_labels`) so that colours agree.
    contour_color : RGB tuple
    figsize : (float, float), optional
        Figure size in inches (default: from ``panel_width`` and the image's aspect ratio).
    suptitle : str, optional
    panel_width : float
        Width of one panel in inches when ``figsize`` is not given; ``W / dpi`` shows a
        ``W``-pixel-wide image at its own resolution when saved at ``dpi``.

    Returns
    -------
    matplotlib.figure.Figure
        ``2 M + 1`` axes for M methods (``2 M + 2`` with ground truth).
    """
    table = results if hasattr(results, "rows") and hasattr(results, "results") else None
    res = _results_dict(results)
    if not res:
        raise ValueError("plot_comparison: results is empty")
    m = len(res)
    gt = ground_truth
    if gt is not None and (
        isinstance(gt, (list, tuple))
        or np.asarray(gt).ndim == np.asarray(next(iter(res.values())).labels).ndim + 1
    ):
        gt = np.asarray(gt[0])
    ref = None if gt is None else np.asarray(gt)
    disp = _display_image(image, channel_axis)
    fig, axes = _comparison_grid(disp.shape[:2], m + 1, figsize, panel_width, suptitle)
    _show(axes[0, 0], disp, "image")
    n_colors = max(r.n_phases for r in res.values())
    if ref is not None:
        n_colors = max(n_colors, int(ref.max()) + 1 - min(int(ref.min()), 0))
        _show(axes[1, 0], _label_rgb(_middle(ref, ref.ndim), n_colors), "ground truth")
    else:
        fig.delaxes(axes[1, 0])
    target = ref  # labels are matched to the ground truth, else to the first method
    for j, (name, r) in enumerate(res.items(), start=1):
        lab = np.asarray(r.labels)
        if match and target is not None:
            lab = _match_colours(lab, target)
        if target is None:
            target = lab
        lab2 = _middle(lab, lab.ndim)
        e = _energy_of(table, name, r)
        _show(axes[0, j], _label_rgb(lab2, n_colors), f"{name}\nE = {e:.4g}")
        over = overlay_image(disp, lab2, color=contour_color)
        _show(axes[1, j], over, f"{name} contours")
    if suptitle:
        fig.suptitle(suptitle, y=1 - 0.06 / fig.get_size_inches()[1], va="top")
    return fig


#: inches above each row of :func:`plot_comparison` for a two-line title at 9 pt, and
#: between the panels
_TITLE_BAND, _GAP = 0.4, 0.1


def _comparison_grid(shape, ncols, figsize, panel_width, suptitle):
    """Return the figure and ``2 × ncols`` axes of :func:`plot_comparison` (fixed layout).

    Panels have the image's aspect ratio (``panel_width`` inches wide, at most 1.4 × as tall)
    or fill ``figsize`` when it is given.
    """
    h, w = shape
    top = 0.35 if suptitle else 0.0
    if figsize is None:
        pw = float(panel_width)
        ph = pw * min(h / w, 1.4)
        figsize = (ncols * (pw + _GAP), 2 * (ph + _TITLE_BAND) + _GAP + top)
    else:
        pw = figsize[0] / ncols - _GAP
        ph = (figsize[1] - _GAP - top) / 2 - _TITLE_BAND
    fig = _new_figure(figsize, layout=None)
    return fig, _panel_grid(fig, 2, ncols, (pw, ph), _TITLE_BAND, _GAP, top)


# --------------------------------------------------------------------------------------
# energy curves
# --------------------------------------------------------------------------------------
def _iterations_of(r):
    """X values for the energy history: iteration numbers, last = n_iter."""
    e = np.asarray(r.energy)
    offset = max(int(r.n_iter) - len(e) + 1, 0)
    return np.arange(len(e)) + offset


def _times_of(r):
    e = np.asarray(r.energy)
    if r.times is not None and len(r.times) == len(e):
        return np.asarray(r.times, dtype=np.float64)
    if len(e) == 1:
        return np.array([float(r.elapsed)])
    # no time stamps: spread the records evenly over the elapsed time
    return np.linspace(0.0, float(r.elapsed), len(e) + 1)[1:]


def plot_energy(results, x="iteration", *, ax=None, logy=False, title=None, figsize=(5.5, 3.8)):
    """Shared-energy curves of several methods on one axis (energy vs iteration or time).

    Each result's recorded history ``result.energy`` is drawn as it is: a line for iterative
    methods, a single marker for one-shot methods (k-means, Otsu: one record at their last
    iteration / elapsed time). The curves are comparable when the histories were recorded
    with the same λ on the same image, which :func:`varseg.compare.compare` arranges (it runs
    every method on the normalised image with the shared λ).

    Parameters
    ----------
    results : ComparisonTable, dict of name → Segmentation, list, or one Segmentation
    x : {"iteration", "time"}
        Horizontal axis: iteration number (``energy[k]`` at iteration ``n_iter - len + 1 +
        k``) or wall time in seconds (``result.times``; evenly spread over ``elapsed`` when
        absent).
    ax : matplotlib Axes, optional
        Draw into these axes (their figure is returned).
    logy : bool
        Logarithmic energy axis.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        One Line2D per method, labelled with its name; ``line.get_ydata()`` is its history.
    """
    if x not in ("iteration", "time"):
        raise ValueError(f"x must be 'iteration' or 'time'; got {x!r}")
    res = _results_dict(results)
    if ax is None:
        fig = _new_figure(figsize, layout=None)
        ax = fig.add_subplot()
        _margins(fig, left=0.8, bottom=0.5, right=0.12, top=0.35 if title else 0.15)
    else:
        fig = ax.figure
    for name, r in res.items():
        e = np.asarray(r.energy, dtype=np.float64)
        if e.size == 0:
            continue
        xs = _iterations_of(r) if x == "iteration" else _times_of(r)
        if e.size == 1:
            ax.plot(xs, e, marker="o", linestyle="none", label=name)
        else:
            ax.plot(xs, e, label=name, lw=1.5)
    ax.set_xlabel("iteration" if x == "iteration" else "wall time (s)")
    lam = None
    lams = {r.params.get("lam") for r in res.values() if isinstance(r.params, dict)}
    if len(lams) == 1:
        lam = lams.pop()
    ax.set_ylabel(
        "Mumford–Shah energy" + (f" (λ = {lam:g})" if isinstance(lam, (int, float)) else "")
    )
    if logy:
        ax.set_yscale("log")
    if x == "time" and any(len(r.energy) > 1 for r in res.values()):
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("symlog", linthresh=0.01)
        # plain "0.01, 0.1, 1, 10" labels: the default 10^k ones go through mathtext,
        # whose parser costs about 0.3 s to build on first use
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------
# bias field
# --------------------------------------------------------------------------------------
def _robust_scale(x, percentiles):
    """``x`` mapped to [0, 1] by its ``percentiles`` (e.g. 1 and 99 %), clipped."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.percentile(x[np.isfinite(x)], percentiles)
    return np.clip((x - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(x)


def _contours(ax, labels):
    """Draw the boundary of every class of ``labels`` (2D) over ``ax`` in its label colour."""
    ks = np.unique(labels)
    if ks.size < 2:
        return
    colors = label_colors(int(ks.max()) + 1)
    for k in ks:
        ax.contour((labels == k).astype(float), levels=[0.5], colors=[colors[k]], linewidths=0.9)


def plot_bias_field(result, image, *, channel_axis=None, figsize=(13, 3.6), percentiles=(1, 99)):
    """Plot Li's bias field (Kim & Ye Eq. 5): image, bias, corrected image, segmentation.

    The image and the corrected image are shown with robust contrast (their ``percentiles``,
    1 and 99 % by default, mapped to black and white), so that a few pixels where the bias is
    small (``image / bias`` large) do not darken the whole panel; the boundaries of the
    partition are drawn over both.

    Parameters
    ----------
    result : Segmentation
        With ``bias`` (e.g. :func:`varseg.bias_field_levelset`); the corrected image is
        ``result.extras["corrected"]`` when present, else ``image / bias``.
    image : array_like
        The segmented image.
    channel_axis : int, optional
    figsize : tuple of float
    percentiles : (float, float)
        Display range of the image and the corrected image.

    Returns
    -------
    matplotlib.figure.Figure
        Four panels (image with contours, bias field, corrected image with contours,
        segmentation colours) and the bias field's colour bar: 5 axes.
    """
    if result.bias is None:
        raise ValueError(f"result of method {result.method!r} has no bias field (bias is None)")
    bias = np.asarray(result.bias, dtype=np.float64)
    corrected = result.extras.get("corrected") if isinstance(result.extras, dict) else None
    if corrected is None:
        x = np.asarray(image, dtype=np.float64)
        b = bias if channel_axis is None else np.expand_dims(bias, channel_axis)
        corrected = x / np.where(b == 0, 1.0, b)
    corrected = np.asarray(corrected, dtype=np.float64)
    if (
        corrected.shape != np.asarray(image).shape
        and channel_axis is None
        and corrected.ndim == bias.ndim + 1
    ):
        corrected = corrected.mean(0) if corrected.shape[0] <= 4 else corrected.mean(-1)
    ca = channel_axis if corrected.shape == np.asarray(image).shape else None
    img_disp = _robust_scale(_display_image(image, channel_axis), percentiles)
    corr_disp = _robust_scale(_display_image(corrected, ca), percentiles)
    lab = _middle(np.asarray(result.labels), np.asarray(result.labels).ndim)
    fig = _new_figure(figsize, layout=None)
    axes = fig.subplots(1, 4)
    _margins(fig, left=0.08, bottom=0.08, right=0.08, top=0.35, wspace=0.12)
    lo, hi = percentiles
    _show(axes[0], img_disp, f"image x = b·t + noise ({lo:g}-{hi:g} %)")
    _contours(axes[0], lab)
    im = axes[1].imshow(_middle(bias, bias.ndim), cmap="magma", interpolation="nearest")
    axes[1].set_xticks([])
    axes[1].set_yticks([])
    axes[1].set_title("bias field b", fontsize=11)
    fig.colorbar(im, ax=axes[1], shrink=0.8)
    _show(axes[2], corr_disp, f"corrected x / b ({lo:g}-{hi:g} %)")
    _contours(axes[2], lab)
    _show(axes[3], overlay_image(corr_disp, lab), "segmentation")
    for ax in (axes[0], axes[2], axes[3]):
        ax.title.set_fontsize(11)
    return fig


# --------------------------------------------------------------------------------------
# level-set evolution
# --------------------------------------------------------------------------------------
def _snapshots(snapshots, iterations=None):
    """Normalise the input to (list of (m, H, W) float arrays, iteration labels)."""
    if hasattr(snapshots, "extras") and hasattr(snapshots, "labels"):
        ex = snapshots.extras
        if "snapshots" not in ex:
            raise ValueError(
                "the Segmentation has no extras['snapshots']: run chan_vese with "
                "return_history=True (or snapshot_every=N)"
            )
        if iterations is None:
            iterations = ex.get("snapshot_iters")
        snapshots = ex["snapshots"]
    frames = [np.asarray(s, dtype=np.float64) for s in snapshots]
    if not frames:
        raise ValueError("snapshots is empty")
    frames = [f[None] if f.ndim == 2 else f for f in frames]
    if any(f.ndim != 3 for f in frames):
        raise ValueError(
            "each snapshot must be a level set (H, W) or level sets (m, H, W) "
            "(3D: take a slice first)"
        )
    if iterations is None:
        iterations = list(range(len(frames)))
    iterations = [int(i) for i in np.asarray(iterations).ravel()]
    if len(iterations) != len(frames):
        raise ValueError(f"{len(iterations)} iteration numbers for {len(frames)} snapshots")
    return frames, iterations


_LS_COLORS = ("#ff3b1f", "#1fc3ff", "#ffd21f")


def _draw_snapshot(ax, background, phi, it, title_prefix="iteration"):
    _show(ax, background, f"{title_prefix} {it}")
    for j, p in enumerate(phi):
        if p.min() < 0 < p.max():
            ax.contour(p, levels=[0.0], colors=[_LS_COLORS[j % len(_LS_COLORS)]], linewidths=1.2)


def plot_evolution(
    snapshots, image=None, *, iterations=None, channel_axis=None, ncols=None, figsize=None
):
    """Snapshots of a level-set evolution: the zero level sets over the image.

    Parameters
    ----------
    snapshots : sequence of level sets, ndarray ``(n, m, H, W)`` or ``(n, H, W)``, or a
        Segmentation
        Level-set functions (``φ ≥ 0`` inside) at successive iterations; a
        :class:`~varseg.Segmentation` from ``chan_vese(..., return_history=True)`` supplies
        ``extras["snapshots"]`` and ``extras["snapshot_iters"]``.
    image : array_like, optional
        Background (default: the first level set, in gray).
    iterations : sequence of int, optional
        Iteration number of each snapshot (titles).
    channel_axis : int, optional
    ncols : int, optional
        Panels per row (default ``min(n, 5)``).

    Returns
    -------
    matplotlib.figure.Figure
        One axis per snapshot (``n`` axes).
    """
    frames, iters = _snapshots(snapshots, iterations)
    n = len(frames)
    ncols = min(n, 5) if ncols is None else max(1, int(ncols))
    nrows = -(-n // ncols)
    fig = _new_figure(figsize or (2.4 * ncols, 2.5 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    bg = _display_image(image, channel_axis) if image is not None else _display_image(frames[0][0])
    for ax, phi, it in zip(axes, frames, iters, strict=False):
        _draw_snapshot(ax, bg, phi, it)
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig


def render_evolution_frames(
    snapshots, image=None, *, iterations=None, channel_axis=None, size=(3.2, 3.4), dpi=80
):
    """Render each snapshot as an RGB uint8 array (the frames of :func:`save_evolution_gif`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    frames, iters = _snapshots(snapshots, iterations)
    bg = _display_image(image, channel_axis) if image is not None else _display_image(frames[0][0])
    from matplotlib.figure import Figure

    out = []
    for phi, it in zip(frames, iters, strict=True):
        fig = Figure(figsize=size, layout="constrained")  # off-screen, never in pyplot
        canvas = FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        _draw_snapshot(ax, bg, phi, it)
        fig.set_dpi(dpi)
        canvas.draw()
        out.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return out


def save_evolution_gif(
    snapshots, path, image=None, *, iterations=None, channel_axis=None, duration=200, loop=0, dpi=80
):
    """Write the level-set evolution as an animated GIF (Pillow), one frame per snapshot.

    Every frame is titled with its iteration number, so consecutive frames always differ
    (Pillow would merge identical ones).

    Parameters
    ----------
    snapshots, image, iterations, channel_axis
        As in :func:`plot_evolution`.
    path : path
        Output ``.gif`` file.
    duration : int
        Milliseconds per frame.
    loop : int
        Number of loops (0: forever).

    Returns
    -------
    pathlib.Path
    """
    from pathlib import Path

    from PIL import Image

    arrays = render_evolution_frames(
        snapshots, image, iterations=iterations, channel_axis=channel_axis, dpi=dpi
    )
    frames = [
        Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=255) for a in arrays
    ]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=int(duration),
        loop=int(loop),
        disposal=1,
        optimize=False,
    )
    return path
