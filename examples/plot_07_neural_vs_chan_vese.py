"""
A network fitted to one image vs Chan–Vese, on the same energy and clock
========================================================================

The Mumford–Shah loss needs no labels, so a network can be fitted to a *single* image by
minimising the loss over its weights — a per-image optimiser that happens to be a
convolutional network. Is it a better minimiser of the energy than a level set? Faster?
:func:`varseg.compare.compare` answers both on one ruler: every method's final partition is
scored with the same energy (one λ) and timed on the same clock.
"""

# %%
# The contenders
# --------------
# * ``chan-vese`` — the level-set gradient flow (tutorial 2), :math:`\mu = 2\lambda`;
# * ``fixed-point`` — Eq. 15 on per-pixel logits (tutorial 6);
# * ``neural`` — :func:`varseg.neural.neural_segment`: a small fully convolutional network
#   (Kanezaki's architecture: 3×3 conv–ReLU–BN blocks and a 1×1 classifier) whose weights
#   :math:`\Theta` minimise :math:`L_{MS}(\Theta; x)` (Eq. 12) for this one image with Adam;
# * ``backprop`` — the same network trained instead with Kanezaki's self-training
#   cross-entropy against its own argmax (the "Backprop" baseline of the paper's Table VI),
#   no Mumford–Shah term;
# * ``kmeans`` — clustering of the intensities, no geometry.
#
# ``compare`` gives every method the same image (scaled to [0, 1]) and the same λ — ``lam``
# for the methods that take it, ``mu = 2 λ`` for Chan–Vese — and ``method_params`` tunes
# each one. A ``(name, registry name)`` pair runs a registered method under another name
# with its own parameters.
import matplotlib.pyplot as plt
from skimage import data
from skimage.transform import resize

from varseg.compare import compare
from varseg.plot import plot_comparison, plot_energy

image = resize(data.camera(), (96, 96), anti_aliasing=True)
table = compare(
    image,
    ["chan-vese", "fixed-point", "neural", ("backprop", "neural"), "kmeans"],
    n_phases=2,
    lam=0.125,
    seed=0,
    method_params={
        "chan-vese": {"max_iter": 300},
        "neural": {"max_iter": 200, "hidden_channels": 16, "lr": 0.05, "device": "cpu"},
        "backprop": {"kanezaki_ce": True, "ms_loss": False},
    },
)
print(table.to_markdown(floatfmt=".4g"))

# %%
# Reading the table: ``energy`` is :math:`D + \lambda L` of each final hard partition on the
# normalised image, ``data`` and ``length`` its two terms (``length`` counts every boundary
# twice), ``time`` the wall-clock seconds of the call. The Segmentation objects are kept in
# ``table.results``; ``table.to_csv(path)`` and ``table.to_dict()`` export the numbers.
best = table.best("energy")
print(f"lowest energy: {best}; fastest: {table.best('time')}")

# %%
# The partitions side by side (colours matched across methods):
fig = plot_comparison(image, table)

# %%
# Energy against iterations and against time
# -------------------------------------------
# Every iterative method records the shared energy of its argmax after each iteration, so
# the curves are directly comparable. Against *iterations* the network looks competitive;
# against *time* the picture changes: one Adam step through a network costs far more than
# one level-set step, which is a few stencil operations per pixel.
fig, axes = plt.subplots(2, 1, figsize=(8, 8.4))
plot_energy(table, x="iteration", ax=axes[0], title="energy vs iteration")
plot_energy(table, x="time", ax=axes[1], title="energy vs wall time")
for ax in axes:
    ax.set_yscale("log")
fig.tight_layout()
plt.show()

# %%
# What the comparison says
# ------------------------
# On one image, the network fitted with the MS loss reaches an energy close to the
# level-set methods — it *is* minimising the same functional, through a different
# parametrisation — while the cross-entropy self-training of ``backprop`` optimises
# something else and ends at a higher Mumford–Shah energy. Per image, the classical solvers
# win on time. The case for networks is **amortisation**: train once on many images (with
# the MS loss as the unsupervised or semi-supervised term, tutorial 8), then segment a new
# image in a single forward pass — the setting of the paper's Table VII, where the
# per-image cost falls to milliseconds.
#
# Changing λ changes all methods at once
# --------------------------------------
# The comparison is only fair with one λ. Here is the same table with a larger λ (longer
# boundaries are more expensive): every method returns shorter boundaries, and the ranking
# may change — the energy is not convex, each method stops in its own local minimum (or when
# its own stopping rule fires), and only a common ruler makes that visible.
table2 = compare(
    image,
    ["chan-vese", "fixed-point", "kmeans"],
    n_phases=2,
    lam=0.5,
    method_params={"chan-vese": {"max_iter": 300}},
)
columns = ["method", "energy", "data", "length", "n_iter", "time"]
print(table2.to_string(columns=columns))
fig = plot_comparison(image, table2, suptitle="λ = 0.5")

# %%
# Take-aways
# ----------
# * ``compare`` runs classical and neural methods with one λ and scores them with one
#   energy, one set of metrics and one clock.
# * A network fitted to one image with the MS loss is a legitimate minimiser of the energy,
#   but per image it is slower than a level set; its advantage is reuse across images.
