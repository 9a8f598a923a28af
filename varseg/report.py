"""Writing results to disk: a segmentation's label PNG, boundary overlay PNG and ``.npz``
result, and the Markdown reports of ``varseg compare`` (single image or data set)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["save_segmentation_outputs", "overlay_image", "write_comparison_report",
           "write_dataset_report"]


def overlay_image(image, labels, color=(1.0, 0.2, 0.1)):
    """RGB float image in [0, 1] with the region boundaries of ``labels`` drawn in ``color``.

    3D inputs use their middle slice. Uses :func:`skimage.segmentation.find_boundaries`.
    """
    from skimage.segmentation import find_boundaries

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
    out[find_boundaries(lab, mode="inner")] = color
    return out


def save_segmentation_outputs(image, result, out_dir, stem="segmentation"):
    """Write ``<stem>_labels.png``, ``<stem>_overlay.png`` and ``<stem>.npz`` into ``out_dir``.

    Returns
    -------
    list of Path
    """
    from PIL import Image

    from varseg.io import save_label_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = result.labels if result.labels.ndim == 2 else result.labels[result.labels.shape[0] // 2]
    p_lab = out / f"{stem}_labels.png"
    save_label_png(p_lab, lab)
    p_ov = out / f"{stem}_overlay.png"
    Image.fromarray((overlay_image(image, result.labels) * 255).astype(np.uint8)).save(p_ov)
    p_npz = result.save(out / f"{stem}.npz")
    return [p_lab, p_ov, p_npz]


# --------------------------------------------------------------------------------------
# comparison reports (``varseg compare``)
# --------------------------------------------------------------------------------------
def _safe_stem(name):
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "method"


def write_comparison_report(table, image, out_dir, *, ground_truth=None, channel_axis=None,
                            title="varseg comparison", source=None, notes=(), figures=True,
                            per_method_files=True, evolution_gif=False, dpi=110):
    """Write the outputs of a single-image comparison into ``out_dir``.

    Files: ``report.md`` (the table, the shared-energy conventions and links to the figures),
    ``results.csv`` and ``results.json`` (:class:`varseg.compare.ComparisonTable`), the
    figures ``comparison.png`` (:func:`varseg.plot.plot_comparison`), ``energy_iteration.png``
    and ``energy_time.png`` (:func:`varseg.plot.plot_energy`), ``bias_field.png`` for each
    result with a bias field (:func:`varseg.plot.plot_bias_field`), ``evolution.png`` /
    ``evolution.gif`` for a result with level-set snapshots, and per method
    ``<method>.npz``, ``<method>_labels.png``, ``<method>_overlay.png``
    (:func:`save_segmentation_outputs`).

    Parameters
    ----------
    table : varseg.compare.ComparisonTable
        From :func:`varseg.compare.compare` (with its ``results``).
    image : array_like
        The compared image.
    out_dir : path
    ground_truth : optional
        Shown in the comparison figure.
    channel_axis : int, optional
    title : str
    source : str, optional
        Where the image came from (written in the report).
    notes : sequence of str
        Extra lines for the report (e.g. "downscaled from 512×512").
    figures : bool
        Draw the figures (matplotlib).
    per_method_files : bool
        Write each method's ``.npz`` and PNGs.
    evolution_gif : bool
        Also write ``evolution.gif`` (Pillow) when a result has level-set snapshots.
    dpi : int
        Resolution of the PNG figures.

    Returns
    -------
    dict
        Name → Path of every file written (``"report"``, ``"csv"``, ``"json"``,
        ``"comparison"``, ``"energy_iteration"``, ``"energy_time"``, ``"bias_field:<m>"``,
        ``"<method>:<file name>"`` …).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": table.to_csv(out / "results.csv"),
               "json": table.to_json(out / "results.json")}
    figs = []
    if figures and table.results:
        import matplotlib.pyplot as plt

        from varseg import plot

        def save(fig, path):
            fig.savefig(path, dpi=dpi)
            plt.close(fig)

        fig = plot.plot_comparison(image, table, ground_truth, channel_axis=channel_axis)
        written["comparison"] = out / "comparison.png"
        save(fig, written["comparison"])
        figs.append(("Segmentations and boundaries", "comparison.png"))
        for x, stem, caption in (("iteration", "energy_iteration", "Energy vs iteration"),
                                 ("time", "energy_time", "Energy vs wall time")):
            fig = plot.plot_energy(table, x=x, title=caption)
            written[stem] = out / f"{stem}.png"
            save(fig, written[stem])
            figs.append((caption, f"{stem}.png"))
        for name, res in table.results.items():
            if res.bias is not None:
                fig = plot.plot_bias_field(res, image, channel_axis=channel_axis)
                p = out / f"bias_field_{_safe_stem(name)}.png"
                save(fig, p)
                written[f"bias_field:{name}"] = p
                figs.append((f"Bias field ({name})", p.name))
            snaps = res.extras.get("snapshots") if isinstance(res.extras, dict) else None
            if snaps is not None and np.asarray(snaps).ndim == 4:  # (n, m, H, W): 2D only
                fig = plot.plot_evolution(res, image, channel_axis=channel_axis)
                p = out / f"evolution_{_safe_stem(name)}.png"
                save(fig, p)
                written[f"evolution:{name}"] = p
                figs.append((f"Level-set evolution ({name})", p.name))
                if evolution_gif:
                    g = plot.save_evolution_gif(res, out / f"evolution_{_safe_stem(name)}.gif",
                                                image, channel_axis=channel_axis)
                    written[f"gif:{name}"] = g
                    figs.append((f"Level-set evolution, animated ({name})", g.name))
    method_files = {}
    if per_method_files:
        disp = image
        if channel_axis is not None:
            disp = np.moveaxis(np.asarray(image), channel_axis, -1)
        for name, res in table.results.items():
            paths = save_segmentation_outputs(disp, res, out, stem=_safe_stem(name))
            method_files[name] = paths
            for p in paths:
                written[f"{name}:{p.name}"] = p
    lines = [f"# {title}", ""]
    if source:
        lines.append(f"Image: `{source}`, shape {tuple(np.shape(image))}"
                     + (f", channel axis {channel_axis}" if channel_axis is not None else "")
                     + ".")
    lines.append(f"Number of phases K = {table.meta.get('n_phases', '?')}.")
    lines.extend(str(n) for n in notes)
    lines += [
        "",
        "## Results",
        "",
        table.to_markdown(),
        "",
        f"**energy** is the piecewise-constant Mumford–Shah energy (Eq. 1 of Kim & Ye 2019) "
        f"of each method's final hard labels, `data + λ·length` with the same "
        f"λ = {table.lam:g} for every method, evaluated on the image scaled to [0, 1] by its "
        "min and max (`varseg.compare.shared_energy`); *length* is Σₙ TV(χₙ) (each boundary "
        "counted twice); *time* is the wall time of the call in seconds, on the same clock "
        "for all methods.",
    ]
    if table.rows and any(r.get("error") for r in table.rows):
        lines += ["", "Failed methods: " + "; ".join(
            f"{r['method']} ({r['error']})" for r in table.rows if r.get("error")) + "."]
    ok = [r for r in table.rows if not r.get("error")]
    if ok:
        lines += ["", f"Lowest energy: **{table.best('energy')}**."]
        if any("dice" in r for r in ok):
            lines.append(f"Best Dice: **{table.best('dice', minimize=False)}**.")
        if any("covering" in r for r in ok):
            lines.append(f"Best covering: **{table.best('covering', minimize=False)}**.")
    if figs:
        lines += ["", "## Figures", ""]
        for caption, fname in figs:
            lines += [f"### {caption}", "", f"![{caption}]({fname})", ""]
    lines += ["", "## Files", "", "- [results.csv](results.csv), [results.json](results.json)"]
    for name, paths in method_files.items():
        lines.append(f"- {name}: " + ", ".join(f"[{p.name}]({p.name})" for p in paths))
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    written["report"] = report
    return written


def write_dataset_report(table, out_dir, *, title="varseg comparison (data set)", source=None,
                         notes=()):
    """Write ``report.md``, ``results.csv`` (aggregated), ``per_image.csv`` and
    ``results.json`` for a :func:`varseg.compare.compare_dataset` table.

    Returns
    -------
    dict
        Name → Path of the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"csv": table.to_csv(out / "results.csv"),
               "json": table.to_json(out / "results.json")}
    if table.per_image is not None:
        written["per_image"] = table.per_image.to_csv(out / "per_image.csv")
    lines = [f"# {title}", ""]
    if source:
        lines.append(f"Images: `{source}` ({table.meta.get('n_images', '?')} images).")
    lines.append(f"Number of phases K = {table.meta.get('n_phases', '?')}; shared "
                 f"λ = {table.lam:g} on images scaled to [0, 1] by their min and max.")
    lines.extend(str(n) for n in notes)
    lines += ["", "## Mean over images", "",
              "Means over the images; covering is pooled (Σ numerators / Σ denominators, as "
              "the BSDS benchmark); *converged* is the fraction of images.", "",
              table.to_markdown(), ""]
    if table.per_image is not None:
        lines += ["## Per image", "", table.per_image.to_markdown(), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    written["report"] = report
    return written
