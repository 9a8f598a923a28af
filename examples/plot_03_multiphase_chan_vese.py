"""
Multiphase Chan–Vese: two and three level sets, gray and colour
===============================================================

One level set separates two phases. Vese & Chan (2002) observed that :math:`m` level sets
separate up to :math:`2^m` phases — every pattern of signs is a phase — so four phases need
only two level sets and eight phases three, with no vacuum and no overlap by construction.
This tutorial segments a gray image into 4 phases and a colour image into 4 and 8 phases with
:func:`varseg.levelset.chan_vese`.
"""

# %%
# The vector Heaviside
# --------------------
# With level sets :math:`\phi_1, \phi_2` and :math:`H_j = H(\phi_j)` (Eq. 7), the four
# characteristic functions are the products
#
# .. math::
#
#    \chi_{11} = H_1 H_2,\quad \chi_{10} = H_1 (1 - H_2),\quad
#    \chi_{01} = (1 - H_1) H_2,\quad \chi_{00} = (1 - H_1)(1 - H_2),
#
# which sum to 1 everywhere. The energy is the Mumford–Shah energy of these four regions,
# and each level set follows its own gradient flow (Eq. 8-9), e.g.
#
# .. math::
#
#    \frac{\partial\phi_1}{\partial t} = \delta_\varepsilon(\phi_1)\Big\{\mu\,
#      \mathrm{div}\frac{\nabla\phi_1}{|\nabla\phi_1|}
#      - \big[(x - c_{11})^2 - (x - c_{01})^2\big] H_2
#      - \big[(x - c_{10})^2 - (x - c_{00})^2\big](1 - H_2)\Big\}:
#
# :math:`\phi_1` trades pixels between the two phases that differ only in its own sign, the
# other level set deciding which pair. ``n_phases`` must be a power of two (2, 4, 8).
import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.transform import resize

from varseg.levelset import chan_vese
from varseg.plot import label_colors, plot_energy
from varseg.report import overlay_image

gray = resize(data.camera(), (128, 128), anti_aliasing=True)
res4 = chan_vese(
    gray, 4, mu=0.1, init="disk", max_iter=300, return_history=True, snapshot_every=25
)
print(res4.summary())
print("level sets:", res4.level_sets.shape, " memberships:", res4.memberships.shape)
print("phase means:", np.round(res4.means, 3))

# %%
# The two level sets and the four memberships
# -------------------------------------------
# The zero lines of :math:`\phi_1` (red) and :math:`\phi_2` (blue) cross; the four sign
# patterns are the four phases. The memberships returned are the regularised products
# :math:`H_\varepsilon(\phi_1) H_\varepsilon(\phi_2)`, …, which sum to one.
fig, axes = plt.subplots(2, 3, figsize=(9.6, 8))
axes = axes.ravel()
axes[0].imshow(gray, cmap="gray")
for phi, colour in zip(res4.level_sets, ("r", "b"), strict=True):
    axes[0].contour(phi, levels=[0], colors=colour, linewidths=1)
axes[0].set_title("zero level sets")
for k in range(4):
    axes[k + 1].imshow(res4.memberships[k], cmap="magma", vmin=0, vmax=1)
    axes[k + 1].set_title(f"membership {k}\nc = {res4.means[k]:.2f}")
axes[5].imshow(label_colors(4)[res4.labels])
axes[5].set_title("labels")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()
print("memberships sum to one:", np.allclose(res4.memberships.sum(0), 1, atol=1e-5))

# %%
# How the two level sets evolve together:
snaps = res4.extras["snapshots"]
iters = res4.extras["snapshot_iters"]
every = max(1, len(snaps) // 6)
fig, axes = plt.subplots(2, 3, figsize=(9.6, 8))
for ax in axes.flat:
    ax.set_axis_off()
for ax, s, it in zip(axes.flat, snaps[::every], iters[::every], strict=False):
    ax.imshow(gray, cmap="gray")
    for phi, colour in zip(s, ("r", "b"), strict=True):
        if phi.min() < 0 < phi.max():
            ax.contour(phi, levels=[0], colors=colour, linewidths=1)
    ax.set_title(f"iteration {it}")
fig.tight_layout()
plt.show()

# %%
# Local minima: the start matters more with several level sets
# -------------------------------------------------------------
# The energy is not convex, and with two level sets there is a typical trap: both zero lines
# settle on the *same* boundary, so two of the four phases stay (almost) empty, or pairs of
# phases share one mean. The default checkerboard start of two shifted checkerboards falls
# into it on this image; overlapping disks (``init="disk"``) do not.
trap = chan_vese(gray, 4, mu=0.1, init="checkerboard", max_iter=300)
for name, r in (("checkerboard", trap), ("disk", res4)):
    means = np.round(r.means, 2)
    print(f"init={name:<12}  E = {r.final_energy:7.1f}   means = {means}")
fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.8))
for ax, (name, r) in zip(axes, (("checkerboard", trap), ("disk", res4)), strict=True):
    ax.imshow(label_colors(4)[r.labels])
    ax.set_title(f"init = {name}\nE = {r.final_energy:.0f}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Two phases or four?
# -------------------
# With more phases the data term can only go down — each region gets its own mean — while
# the boundaries add length. The piecewise-constant approximations
# :math:`u = \sum_n c_n \chi_n` show what each model keeps of the image.
res2 = chan_vese(gray, 2, mu=0.1, init="disk", max_iter=300)
fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.8))
axes[0].imshow(gray, cmap="gray")
axes[0].set_title("image")
for ax, r in zip(axes[1:], (res2, res4), strict=True):
    ax.imshow(r.means[r.labels], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"K = {r.n_phases}: u = Σ c_n χ_n\nE = {r.final_energy:.1f}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Colour images
# -------------
# For a vector-valued image :math:`x(r) \in \mathbb{R}^C` (Chan, Sandberg & Vese 2000) the
# data term uses the squared Euclidean norm :math:`\|x - c_n\|^2` over the channels and the
# means :math:`c_n` are colours. Pass ``channel_axis=-1`` as in scikit-image. Three level
# sets give eight phases.
colour = resize(data.astronaut(), (128, 128), anti_aliasing=True)
c4 = chan_vese(colour, 4, mu=0.1, init="disk", channel_axis=-1, max_iter=200)
c8 = chan_vese(colour, 8, mu=0.1, init="disk", channel_axis=-1, max_iter=200)
print(c4.summary())
print(c8.summary(), "level sets:", c8.level_sets.shape)

fig, axes = plt.subplots(2, 3, figsize=(9.6, 8.2))
axes[0, 0].imshow(colour)
axes[0, 0].set_title("image")
for row, r in zip(axes, (c4, c8), strict=True):
    row[1].imshow(np.clip(r.means[r.labels], 0, 1))
    row[1].set_title(
        f"K = {r.n_phases} ({r.level_sets.shape[0]} level sets)\nmean colours"
    )
    row[2].imshow(overlay_image(colour, r.labels))
    row[2].set_title(f"boundaries\nE = {r.final_energy:.0f}")
for ax in axes.flat:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Starting from a clustering
# --------------------------
# ``init`` also accepts level sets. A k-means clustering of the colours
# (:func:`varseg.baselines.kmeans_segment`) is a cheap, good start: phase :math:`k` has the
# sign pattern of the bits of :math:`k` (:math:`\phi_j < 0` where bit :math:`j` is set), and
# Chan–Vese then adds what k-means ignores — the boundary length.
from varseg.baselines import kmeans_segment  # noqa: E402

km = kmeans_segment(colour, 8, channel_axis=-1, seed=0)
phi0 = np.stack([np.where((km.labels >> j) & 1, -1.0, 1.0) for j in range(3)])
c8km = chan_vese(colour, 8, mu=0.1, init=phi0, channel_axis=-1, max_iter=200)
print(
    f"K = 8: E = {c8.final_energy:.1f} from disks, {c8km.final_energy:.1f} from k-means"
)

# %%
# Energy curves of the colour runs (recorded with λ = μ/2 on the image scaled to [0, 1]):
fig = plot_energy(
    {"K = 4, disks": c4, "K = 8, disks": c8, "K = 8, from k-means": c8km},
    title="colour image, multiphase Chan–Vese",
)
plt.show()

# %%
# Take-aways
# ----------
# * :math:`m` level sets, :math:`2^m` phases, no vacuum or overlap (Eq. 7-9).
# * Each level set moves pixels between the two phases that differ in its sign.
# * The energy has local minima; several level sets make the start matter more (a
#   clustering is a good one).
# * Colour is a channel axis: the data term sums the squared differences over channels.
