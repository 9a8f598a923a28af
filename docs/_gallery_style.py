"""Figure style of the rendered tutorials (sphinx-gallery's ``reset_modules`` hook).

Panels stay readable at the page width: 150 dpi, 11 pt text, 12 pt titles.
"""

import matplotlib as mpl

STYLE = {
    "figure.dpi": 150,
    "savefig.dpi": 150,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 10,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
}


def reset_matplotlib(gallery_conf, fname):
    """Apply `STYLE` before each tutorial runs (after sphinx-gallery's matplotlib reset)."""
    mpl.rcParams.update(STYLE)
