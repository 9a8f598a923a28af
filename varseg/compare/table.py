""":class:`ComparisonTable`: the rows of a comparison, and their exports (Markdown, text,
CSV, JSON, pandas, HTML for notebooks)."""

from __future__ import annotations

import csv
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._atomic import atomic_write_text
from .._json import to_builtin
from ..energy import DEFAULT_LAM

__all__ = ["ComparisonTable", "DISPLAY_COLUMNS"]

#: Columns shown by :meth:`ComparisonTable.to_markdown` (those present in the rows).
DISPLAY_COLUMNS = (
    "image",
    "method",
    "n_images",
    "energy",
    "data",
    "length",
    "dice",
    "iou",
    "pixel_accuracy",
    "covering",
    "PRI",
    "VI",
    "n_iter",
    "time",
    "device",
    "converged",
    "error",
)
_TEXT_COLUMNS = ("method", "image", "device", "error")


#: Columns shown with fewer digits than the table's float format (seconds).
_COLUMN_FORMATS = {"time": ".3g", "total_time": ".3g"}


def _fmt(v, floatfmt, column=None):
    floatfmt = _COLUMN_FORMATS.get(column, floatfmt)
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(v) else format(float(v), floatfmt)
    return str(v)


def _parse_csv_value(s):
    if s == "":
        return None
    if s in ("True", "False"):
        return s == "True"
    for cast in (int, float):
        try:
            return cast(s)
        except ValueError:
            pass
    return s


def _csv_cell(v):
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return to_builtin(v)


def _read_csv_rows(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or "method" not in header:
            raise ValueError(f"{path} is not a comparison table CSV (no 'method' column)")
        rows = []
        for n, line in enumerate(reader, start=2):
            if len(line) != len(header):
                raise ValueError(f"{path}, line {n}: {len(line)} cells for {len(header)} columns")
            rows.append(
                {
                    k: v
                    for k, v in zip(header, map(_parse_csv_value, line), strict=True)
                    if v is not None
                }
            )
    return rows


@dataclass
class ComparisonTable:
    """Rows of scores, one per method (or per method and image), in a plain structure.

    Attributes
    ----------
    rows : list of dict
        One dict per method with keys (those that apply): ``method``; ``energy``, ``data``,
        ``length`` — the shared energy (:mod:`varseg.compare.scoring`), its data term and its
        length term without λ; ``lam``; ``recorded_energy`` — the last value the method
        recorded itself; ``dice``, ``iou``, ``pixel_accuracy`` or ``covering``, ``PRI``,
        ``VI`` (with ``covering_num``, ``covering_den``) against ground truth; ``n_iter``;
        ``time`` (wall seconds); ``device``; ``converged``; ``n_phases``; ``error``
        (message, when the method failed). Data-set tables add ``image`` and ``index`` (per
        image) or ``n_images`` (aggregated).
    results : dict
        Method name → :class:`varseg.Segmentation` (single-image comparisons).
    lam : float
        The λ of the shared energy.
    meta : dict
        Normalisation, number of phases, image shape, method parameters, …
    per_image : ComparisonTable or None
        For :func:`varseg.compare.compare_dataset`: the per-image rows behind the
        aggregated ones.
    """

    rows: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    lam: float = DEFAULT_LAM
    meta: dict = field(default_factory=dict)
    per_image: ComparisonTable | None = None

    # -- access ----------------------------------------------------------------------
    @property
    def methods(self):
        """Method names in row order (unique)."""
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def columns(self):
        """All keys present in the rows, display columns first."""
        keys = list(dict.fromkeys(k for r in self.rows for k in r))
        first = [c for c in DISPLAY_COLUMNS if c in keys]
        return first + [k for k in keys if k not in first]

    @property
    def display_columns(self):
        """Columns shown by :meth:`to_markdown` (``error`` only when a method failed)."""
        cols = [c for c in DISPLAY_COLUMNS if any(c in r for r in self.rows)]
        if not any(r.get("error") for r in self.rows):
            cols = [c for c in cols if c != "error"]
        return cols

    @property
    def all_failed(self):
        """True when the table has rows and every one of them is a failure (for a data-set
        table: every method on every image)."""
        if self.per_image is not None:
            return self.per_image.all_failed
        return bool(self.rows) and all(r.get("error") for r in self.rows)

    def column(self, name):
        """Values of one column, in row order (None where absent)."""
        return [r.get(name) for r in self.rows]

    def row(self, method, image=None):
        """The row of ``method`` (and ``image`` for per-image tables)."""
        for r in self.rows:
            if r["method"] == method and (image is None or r.get("image") == image):
                return r
        raise KeyError(
            f"no row for method {method!r}" + (f" and image {image!r}" if image is not None else "")
        )

    def __getitem__(self, method):
        return self.row(method)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def best(self, column="energy", minimize=True):
        """Name of the method with the lowest (``minimize``) or highest value of ``column``."""
        vals = [
            (r[column], r["method"])
            for r in self.rows
            if isinstance(r.get(column), (int, float)) and not math.isnan(r[column])
        ]
        if not vals:
            raise ValueError(f"no numeric values in column {column!r}")
        return (min(vals) if minimize else max(vals))[1]

    # -- export ----------------------------------------------------------------------
    def to_dict(self):
        """A JSON-serialisable dict: ``rows``, ``lam``, ``meta`` (and ``per_image``)."""
        d = {"lam": self.lam, "meta": to_builtin(self.meta), "rows": to_builtin(self.rows)}
        if self.per_image is not None:
            d["per_image"] = self.per_image.to_dict()["rows"]
        return d

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict` (without the Segmentation objects)."""
        if not isinstance(d, dict) or not isinstance(d.get("rows", []), list):
            raise ValueError("a comparison table dict needs a list under 'rows'")
        if any(not isinstance(r, dict) or "method" not in r for r in d.get("rows", [])):
            raise ValueError("every row of a comparison table needs a 'method'")
        lam = float(d.get("lam", DEFAULT_LAM))
        per = d.get("per_image")
        per_t = None if per is None else cls(rows=list(per), lam=lam, meta=dict(d.get("meta", {})))
        return cls(
            rows=list(d.get("rows", [])), lam=lam, meta=dict(d.get("meta", {})), per_image=per_t
        )

    def to_json(self, path):
        """Write :meth:`to_dict` as JSON (atomically); returns the path."""
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1))

    @classmethod
    def from_json(cls, path):
        """Read a table written by :meth:`to_json`.

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            The file is not a comparison table (one line naming it).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"comparison table not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (UnicodeDecodeError, json.JSONDecodeError, ValueError, TypeError) as err:
            raise ValueError(f"{path} is not a comparison table JSON: {err}") from None

    def to_csv(self, path):
        """Write all columns of all rows as CSV (floats at full precision, atomically);
        returns the path. Read it back with :meth:`from_csv`."""
        buf = io.StringIO()
        w = csv.writer(buf)
        cols = self.columns
        w.writerow(cols)
        for r in self.rows:
            w.writerow([_csv_cell(r.get(c)) for c in cols])
        return atomic_write_text(path, buf.getvalue())

    @classmethod
    def from_csv(cls, path, lam=None):
        """Read a table written by :meth:`to_csv` (rows only; values are parsed as int,
        float, bool or str, an empty cell is None).

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            Not a comparison table CSV (one line naming the file and the problem).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"CSV table not found: {path}")
        try:
            rows = _read_csv_rows(path)
        except (UnicodeDecodeError, csv.Error) as err:
            raise ValueError(f"{path} is not a comparison table CSV: {err}") from None
        if lam is None:
            lams = {r.get("lam") for r in rows if r.get("lam") is not None}
            lam = lams.pop() if len(lams) == 1 else DEFAULT_LAM
        return cls(rows=rows, lam=lam)

    def to_pandas(self):
        """The rows as a :class:`pandas.DataFrame` (needs pandas), all columns."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "ComparisonTable.to_pandas needs pandas: pip install pandas"
            ) from None
        return pd.DataFrame([{c: r.get(c) for c in self.columns} for r in self.rows])

    def to_markdown(self, floatfmt=".6g", columns=None):
        """A GitHub-flavoured Markdown table of the display columns."""
        cols = list(columns) if columns is not None else self.display_columns
        lines = [
            "| " + " | ".join(cols) + " |",
            "|" + "|".join("---" if c in _TEXT_COLUMNS else "---:" for c in cols) + "|",
        ]
        for r in self.rows:
            lines.append(
                "| "
                + " | ".join(_fmt(r.get(c), floatfmt, c).replace("|", "\\|") for c in cols)
                + " |"
            )
        return "\n".join(lines)

    def to_html(self, floatfmt=".4g", columns=None):
        """An HTML ``<table>`` of the display columns (escaped; no styles, no scripts)."""
        cols = list(columns) if columns is not None else self.display_columns
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td class="{"text" if c in _TEXT_COLUMNS else "num"}">'
                f"{html.escape(_fmt(r.get(c), floatfmt, c))}</td>"
                for c in cols
            )
            + "</tr>"
            for r in self.rows
        )
        return (
            f'<table class="varseg-table"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table>"
        )

    def _repr_html_(self):
        return f"<p>ComparisonTable: λ = {self.lam:g}, {len(self.rows)} rows</p>" + self.to_html()

    def to_string(self, floatfmt=".5g", columns=None):
        """A plain-text, column-aligned rendering (used by ``repr``)."""
        cols = list(columns) if columns is not None else self.display_columns
        cells = [cols] + [[_fmt(r.get(c), floatfmt, c) for c in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
        out = []
        for j, row in enumerate(cells):
            out.append(
                "  ".join(
                    s.ljust(w) if cols[i] in _TEXT_COLUMNS else s.rjust(w)
                    for i, (s, w) in enumerate(zip(row, widths, strict=True))
                )
            )
            if j == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def __repr__(self):
        head = f"ComparisonTable(lam={self.lam:g}, rows={len(self.rows)}"
        if self.meta.get("n_images") is not None:
            head += f", images={self.meta['n_images']}"
        return head + ")\n" + self.to_string()

    def __str__(self):
        return self.to_string()
