"""Writing results to disk.

A segmentation's label PNG, boundary overlay PNG and ``.npz`` result, and the reports of
``varseg compare`` (single image or data set) as Markdown and as one self-contained HTML page
(figures inlined, no external URL).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import numpy as np

from ._atomic import atomic_path, atomic_write_text
from .plot import offscreen, overlay_image, save_figure

__all__ = [
    "save_segmentation_outputs",
    "write_comparison_report",
    "write_dataset_report",
    "html_page",
]

_ENERGY_NOTE = (
    "**energy** is the piecewise-constant Mumford–Shah energy (Eq. 1 of Kim & Ye 2019) of "
    "each method's final hard labels, `data + λ·length` with the same λ = {lam:g} for every "
    "method, evaluated on the image scaled to [0, 1] by its min and max "
    "(`varseg.compare.shared_energy`); *length* is Σₙ TV(χₙ) (each boundary counted twice); "
    "*time* is the wall time of the call in seconds, on the same clock for all methods."
)


def save_segmentation_outputs(image, result, out_dir, stem="segmentation"):
    """Write the label, preview and overlay PNGs and the ``.npz`` result into ``out_dir``.

    The files are ``<stem>_labels.png`` (index values 0..K-1, for napari / ITK-SNAP / Fiji),
    ``<stem>_preview.png`` (coloured), ``<stem>_overlay.png`` (boundaries on the image) and
    ``<stem>.npz`` (:meth:`varseg.Segmentation.save`).

    Returns
    -------
    list of Path
    """
    from PIL import Image

    from .io import save_label_png, save_preview_png

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lab = result.labels if result.labels.ndim == 2 else result.labels[result.labels.shape[0] // 2]
    p_lab = out / f"{stem}_labels.png"
    save_label_png(p_lab, lab)
    p_prev = out / f"{stem}_preview.png"
    save_preview_png(p_prev, lab)
    p_ov = out / f"{stem}_overlay.png"
    with atomic_path(p_ov) as tmp:
        Image.fromarray((overlay_image(image, result.labels) * 255).astype(np.uint8)).save(
            tmp, format="PNG"
        )
    p_npz = result.save(out / f"{stem}.npz")
    return [p_lab, p_prev, p_ov, p_npz]


def _safe_stem(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name)).strip("_") or "method"


# --------------------------------------------------------------------------------------
# figures and per-method files
# --------------------------------------------------------------------------------------
#: zlib level of the report's PNG figures: about half the encoding time of Pillow's default
#: level 6 for 5-8 % larger files (lossless at every level)
_PNG_COMPRESS_LEVEL = 3


class _FigureWriter:
    """Saves figures atomically into one folder and remembers (caption, file name).

    Each figure is rendered once (:func:`varseg.plot.save_figure`).
    """

    def __init__(self, out, dpi, written):
        self.out, self.dpi, self.written, self.figs = out, dpi, written, []

    def save(self, fig, key, fname, caption):
        path = self.out / fname
        with atomic_path(path) as tmp:
            save_figure(
                fig,
                tmp,
                dpi=self.dpi,
                format=path.suffix[1:],
                compress_level=_PNG_COMPRESS_LEVEL,
            )
        if fig.canvas.manager is not None:  # a pyplot figure (not drawn off-screen)
            import matplotlib.pyplot as plt

            plt.close(fig)
        self.written[key] = path
        self.figs.append((caption, fname))


def _result_figures(fw, name, res, image, channel_axis, evolution_gif):
    from . import plot

    stem = _safe_stem(name)
    if res.bias is not None:
        fw.save(
            plot.plot_bias_field(res, image, channel_axis=channel_axis),
            f"bias_field:{name}",
            f"bias_field_{stem}.png",
            f"Bias field ({name})",
        )
    snaps = res.extras.get("snapshots") if isinstance(res.extras, dict) else None
    if snaps is not None and np.asarray(snaps).ndim == 4:  # (n, m, H, W): 2D only
        fw.save(
            plot.plot_evolution(res, image, channel_axis=channel_axis),
            f"evolution:{name}",
            f"evolution_{stem}.png",
            f"Level-set evolution ({name})",
        )
        if evolution_gif:
            g = plot.save_evolution_gif(
                res, fw.out / f"evolution_{stem}.gif", image, channel_axis=channel_axis
            )
            fw.written[f"gif:{name}"] = g
            fw.figs.append((f"Level-set evolution, animated ({name})", g.name))


def _panel_width(image, channel_axis, dpi):
    """Panel width in inches that shows the image at its own resolution at ``dpi``.

    Clipped to 1.6-3.2 inches (titles stay legible, large images are shown smaller):
    a 256-pixel-wide image at 150 dpi is drawn pixel for pixel, without resampling.
    """
    shape = np.shape(image)
    if channel_axis is not None:
        shape = tuple(np.delete(np.array(shape), channel_axis % len(shape)))
    width = shape[-1] if len(shape) >= 2 else 256
    return float(np.clip(width / float(dpi), 1.6, 3.2))


def _comparison_figures(table, image, fw, ground_truth, channel_axis, evolution_gif):
    from . import plot

    fw.save(
        plot.plot_comparison(
            image,
            table,
            ground_truth,
            channel_axis=channel_axis,
            panel_width=_panel_width(image, channel_axis, fw.dpi),
        ),
        "comparison",
        "comparison.png",
        "Segmentations and boundaries",
    )
    for x, stem, caption in (
        ("iteration", "energy_iteration", "Energy vs iteration"),
        ("time", "energy_time", "Energy vs wall time"),
    ):
        fw.save(plot.plot_energy(table, x=x, title=caption), stem, f"{stem}.png", caption)
    for name, res in table.results.items():
        _result_figures(fw, name, res, image, channel_axis, evolution_gif)


def _method_files(table, image, out, channel_axis, written):
    disp = image if channel_axis is None else np.moveaxis(np.asarray(image), channel_axis, -1)
    files = {}
    for name, res in table.results.items():
        files[name] = save_segmentation_outputs(disp, res, out, stem=_safe_stem(name))
        for p in files[name]:
            written[f"{name}:{p.name}"] = p
    return files


# --------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------
def _header_lines(title, table, image, source, channel_axis, notes):
    lines = [f"# {title}", ""]
    if source:
        lines.append(
            f"Image: `{source}`, shape {tuple(np.shape(image))}"
            + (f", channel axis {channel_axis}" if channel_axis is not None else "")
            + "."
        )
    lines.append(f"Number of phases K = {table.meta.get('n_phases', '?')}.")
    return lines + [str(n) for n in notes]


def _summary_lines(table):
    lines = []
    if any(r.get("error") for r in table.rows):
        lines += [
            "",
            "Failed methods: "
            + "; ".join(f"{r['method']} ({r['error']})" for r in table.rows if r.get("error"))
            + ".",
        ]
    ok = [r for r in table.rows if not r.get("error")]
    if ok:
        lines += ["", f"Lowest energy: **{table.best('energy')}**."]
        if any("dice" in r for r in ok):
            lines.append(f"Best Dice: **{table.best('dice', minimize=False)}**.")
        if any("covering" in r for r in ok):
            lines.append(f"Best covering: **{table.best('covering', minimize=False)}**.")
    return lines


def _environment_lines(meta):
    env = meta.get("environment") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
    if not env:
        return []
    return [
        "",
        "## Environment",
        "",
        f"- {versions}",
        f"- threads: {env.get('threads')}, CPUs: {env.get('cpu_count')}, load average: "
        f"{env.get('load_average')}",
    ]


def _parameter_lines(meta):
    params = meta.get("parameters") or {}
    if not params:
        return []
    lines = ["", "## Parameters", ""]
    for name, kw in params.items():
        lines.append(
            f"- **{name}**: " + (", ".join(f"`{k}={v!r}`" for k, v in kw.items()) or "defaults")
        )
    return lines


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------
_CSS = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;padding:0 1em;"
    "line-height:1.45}table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #bbb;padding:.25em .6em}td.num{text-align:right}"
    "th{background:#eee}img{max-width:100%}code{background:#f4f4f4}"
)


def _inline_image(path):
    mime = {".png": "image/png", ".gif": "image/gif"}.get(Path(path).suffix, "image/png")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(Path(path).name)}" src="data:{mime};base64,{data}">'


def _params_html(meta):
    params = meta.get("parameters") or {}
    blocks = []
    for name, kw in params.items():
        rows = (
            "".join(
                f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(repr(v))}</td></tr>"
                for k, v in kw.items()
            )
            or "<tr><td colspan=2>defaults</td></tr>"
        )
        blocks.append(
            f"<h3>{html.escape(name)}</h3><table><tr><th>parameter</th>"
            f"<th>value</th></tr>{rows}</table>"
        )
    return "".join(blocks)


def _environment_html(meta):
    env = meta.get("environment") or {}
    if not env:
        return ""
    rows = [(k, v) for k, v in (env.get("versions") or {}).items()]
    rows += [
        ("python", env.get("python")),
        ("threads", env.get("threads")),
        ("CPUs", env.get("cpu_count")),
        ("load average", env.get("load_average")),
    ]
    body = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>" for k, v in rows
    )
    return f"<table>{body}</table>"


def html_page(title, sections):
    """One self-contained HTML page: ``sections`` is a list of ``(heading, html)`` pairs.

    No script, stylesheet or image is loaded from elsewhere (figures are inlined as
    ``data:`` URIs by the report writers), so the page renders offline.
    """
    body = "".join(
        f"<h2>{html.escape(h)}</h2>{content}" if h else content for h, content in sections
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def _plain(text):
    """Markdown text as plain text for HTML: without backticks and emphasis stars."""
    return text.replace("**", "").replace("`", "").replace("*", "")


def _comparison_html(title, table, header_lines, out, figs):
    intro = "".join(f"<p>{html.escape(_plain(line))}</p>" for line in header_lines[2:] if line)
    note = html.escape(_plain(_ENERGY_NOTE.format(lam=table.lam)))
    sections = [("", intro), ("Results", table.to_html() + f"<p>{note}</p>")]
    if figs:
        sections.append(
            (
                "Figures",
                "".join(f"<h3>{html.escape(c)}</h3>{_inline_image(out / f)}" for c, f in figs),
            )
        )
    sections += [
        ("Parameters", _params_html(table.meta)),
        ("Environment", _environment_html(table.meta)),
    ]
    return html_page(title, sections)


# --------------------------------------------------------------------------------------
# the writers
# --------------------------------------------------------------------------------------
def write_comparison_report(
    table,
    image,
    out_dir,
    *,
    ground_truth=None,
    channel_axis=None,
    title="varseg comparison",
    source=None,
    notes=(),
    figures=True,
    per_method_files=True,
    evolution_gif=False,
    dpi=150,
):
    """Write the outputs of a single-image comparison into ``out_dir``.

    Files: ``report.md`` and ``report.html`` (the table, the shared-energy conventions, each
    method's parameters, the software versions, threads and load average; the HTML page
    has the figures inlined and loads nothing from elsewhere), ``results.csv`` and
    ``results.json`` (:class:`varseg.compare.ComparisonTable`), the figures
    ``comparison.png`` (:func:`varseg.plot.plot_comparison`), ``energy_iteration.png`` and
    ``energy_time.png`` (:func:`varseg.plot.plot_energy`), ``bias_field_<m>.png`` for each
    result with a bias field, ``evolution_<m>.png`` / ``.gif`` for a result with level-set
    snapshots, and per method ``<method>.npz``, ``<method>_labels.png``,
    ``<method>_overlay.png`` (:func:`save_segmentation_outputs`). Every file is written
    atomically.

    Parameters
    ----------
    table : varseg.compare.ComparisonTable
        From :func:`varseg.compare.compare` (with its ``results``).
    image : array_like
        The compared image.
    out_dir : path
        Output folder (created).
    ground_truth : optional
        Shown in the comparison figure.
    channel_axis : int, optional
        Channel axis of a colour image.
    title : str
        Title of the reports.
    source : str, optional
        Where the image came from (written in the report).
    notes : sequence of str
        Extra lines for the report (e.g. "downscaled from 512×512").
    figures : bool
        Draw the figures (matplotlib).
    per_method_files : bool
        Write each method's ``.npz`` and PNGs.
    evolution_gif : bool
        Also write ``evolution_<m>.gif`` when a result has level-set snapshots.
    dpi : int
        Resolution of the PNG figures.

    Returns
    -------
    dict
        Name → Path of every file written (``"report"``, ``"html"``, ``"csv"``, ``"json"``,
        ``"comparison"``, ``"energy_iteration"``, ``"energy_time"``, ``"bias_field:<m>"``,
        ``"<method>:<file name>"`` …).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {
        "csv": table.to_csv(out / "results.csv"),
        "json": table.to_json(out / "results.json"),
    }
    fw = _FigureWriter(out, dpi, written)
    if figures and table.results:
        with offscreen():  # Agg figures outside pyplot: pyplot is never imported
            _comparison_figures(table, image, fw, ground_truth, channel_axis, evolution_gif)
    files = _method_files(table, image, out, channel_axis, written) if per_method_files else {}
    header = _header_lines(title, table, image, source, channel_axis, notes)
    lines = (
        header
        + ["", "## Results", "", table.to_markdown(), "", _ENERGY_NOTE.format(lam=table.lam)]
        + _summary_lines(table)
    )
    if fw.figs:
        lines += ["", "## Figures", ""]
        for caption, fname in fw.figs:
            lines += [f"### {caption}", "", f"![{caption}]({fname})", ""]
    lines += _parameter_lines(table.meta) + _environment_lines(table.meta)
    lines += [
        "",
        "## Files",
        "",
        "- [report.html](report.html), [results.csv](results.csv), [results.json](results.json)",
    ]
    lines += [
        f"- {n}: " + ", ".join(f"[{p.name}]({p.name})" for p in ps) for n, ps in files.items()
    ]
    written["html"] = atomic_write_text(
        out / "report.html", _comparison_html(title, table, header, out, fw.figs)
    )
    written["report"] = atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return written


def write_dataset_report(
    table, out_dir, *, title="varseg comparison (data set)", source=None, notes=()
):
    """Write the report files of a :func:`varseg.compare.compare_dataset` table.

    The files are ``report.md``, ``report.html``, ``results.csv`` (aggregated),
    ``per_image.csv`` and ``results.json``.

    Returns
    -------
    dict
        Name → Path of the files written.
    """
    out = Path(out_dir)
    written = {
        "csv": table.to_csv(out / "results.csv"),
        "json": table.to_json(out / "results.json"),
    }
    if table.per_image is not None:
        written["per_image"] = table.per_image.to_csv(out / "per_image.csv")
    head = []
    if source:
        head.append(f"Images: `{source}` ({table.meta.get('n_images', '?')} images).")
    head.append(
        f"Number of phases K = {table.meta.get('n_phases', '?')}; shared "
        f"λ = {table.lam:g} on images scaled to [0, 1] by their min and max."
    )
    head += [str(n) for n in notes]
    mean_note = (
        "Means over the images; covering is pooled (Σ numerators / Σ denominators, "
        "as the BSDS benchmark); *converged* is the fraction of images."
    )
    lines = [
        f"# {title}",
        "",
        *head,
        "",
        "## Mean over images",
        "",
        mean_note,
        "",
        table.to_markdown(),
        "",
    ]
    sections = [
        ("", "".join(f"<p>{html.escape(_plain(h))}</p>" for h in head)),
        ("Mean over images", f"<p>{html.escape(_plain(mean_note))}</p>" + table.to_html()),
    ]
    if table.per_image is not None:
        lines += ["## Per image", "", table.per_image.to_markdown(), ""]
        sections.append(("Per image", table.per_image.to_html()))
    lines += _environment_lines(table.meta)
    sections.append(("Environment", _environment_html(table.meta)))
    written["html"] = atomic_write_text(out / "report.html", html_page(title, sections))
    written["report"] = atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return written
