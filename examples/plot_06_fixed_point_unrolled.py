"""
The fixed-point iteration of Eq. 15 and its unrolled network
============================================================

Setting the derivative of the Mumford–Shah loss to zero gives an equation for the
memberships; iterating it is a segmentation algorithm that works on softmax logits — a
bridge between level sets and networks. Kim & Ye unroll a fixed number of these iterations
into a network whose step sizes and filters are learned (LISTA-style). This tutorial runs
the fixed point (:func:`varseg.unrolled.ms_fixed_point`), checks its kinship with Chan–Vese,
and trains a small :class:`varseg.unrolled.UnrolledMumfordShah` without labels.
"""

# %%
# From the Euler–Lagrange equation to an iteration
# ------------------------------------------------
# Stationarity of :math:`L_{MS}` (Eq. 12) under :math:`\sum_n y_n = 1` (Eq. 14):
#
# .. math::
#
#    (x - c_n)^2 - \lambda\, \mathrm{div}\frac{\nabla y_n}{|\nabla y_n|} + \mu(r) = 0 .
#
# The paper turns it into a fixed-point iteration on the logits (Eq. 15):
#
# .. math::
#
#    z_n^{(k+1)} = z_n^{(k)} - \eta\, w_n^{(k)}, \qquad y^{(k+1)} = \mathrm{softmax}(z^{(k+1)}),
#    \qquad c_n^{(k+1)} = \frac{\int x\, y_n^{(k+1)}}{\int y_n^{(k+1)}},
#
# with the force :math:`g_n = (x - c_n)^2 - \lambda\,\kappa_n`,
# :math:`\kappa_n = \mathrm{div}(\nabla y_n / |\nabla y_n|)`, weighted either as written in
# the paper, :math:`w_n = \delta_\varepsilon(z_n)\, g_n` (``update="paper"``), or by the exact
# gradient of the loss through the softmax, :math:`w_n = y_n (g_n - \sum_m y_m g_m)`
# (``update="softmax-gradient"``, the default: every step is then a gradient step on
# :math:`L_{MS}`).
import matplotlib.pyplot as plt
import numpy as np
import torch
from skimage import data
from skimage.transform import resize

from varseg.data import SyntheticShapes
from varseg.energy import energy_from_labels
from varseg.levelset import chan_vese
from varseg.losses import mumford_shah_loss
from varseg.metrics import match_labels
from varseg.plot import plot_energy
from varseg.report import overlay_image
from varseg.unrolled import UnrolledMumfordShah, ms_fixed_point

image = resize(data.camera(), (96, 96), anti_aliasing=True)
lam = 0.125
runs = {
    "softmax-gradient": ms_fixed_point(image, 2, lam=lam, update="softmax-gradient"),
    "paper (δ(z) weighting)": ms_fixed_point(image, 2, lam=lam, update="paper"),
}
for name, r in runs.items():
    print(f"{name:<24} {r.summary()}")
fig = plot_energy(runs, title="Eq. 15 fixed point: shared energy of the argmax")

# %%
# Both weightings decrease the energy; the exact gradient keeps going down, while the
# :math:`\delta(z)` weighting stops moving pixels whose logits have grown large (the Dirac
# vanishes there) and settles earlier.
#
# Two classes: the fixed point *is* Chan–Vese
# --------------------------------------------
# For :math:`K = 2` write :math:`\phi = z_1 - z_2`. Then :math:`y_1 = \sigma(\phi)` and the
# softmax-gradient update of :math:`\phi` is
#
# .. math::
#
#    \partial_t \phi = y_1 y_2 \Big[2\lambda\, \mathrm{div}\frac{\nabla\phi}{|\nabla\phi|}
#      - (x - c_1)^2 + (x - c_2)^2\Big],
#
# the Chan–Vese flow with :math:`\mu = 2\lambda` and the smooth Dirac
# :math:`\delta(\phi) = y_1 y_2 = \sigma(\phi)(1 - \sigma(\phi))`. Same energy, same flow,
# different discretisation — so the two partitions nearly coincide:
cv = chan_vese(image, 2, mu=2 * lam, max_iter=300)
fp = runs["softmax-gradient"]
# phase names are arbitrary: match them before counting agreement
agree = np.mean(match_labels(fp.labels, cv.labels) == cv.labels)
print(
    f"Chan–Vese E = {cv.final_energy:.2f}, fixed point E = {fp.final_energy:.2f}, "
    f"same label on {100 * agree:.1f}% of the pixels"
)
fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.8))
for ax, (name, r) in zip(
    axes, (("Chan–Vese, μ = 2λ", cv), ("Eq. 15 fixed point", fp)), strict=True
):
    ax.imshow(overlay_image(image, r.labels))
    ax.set_title(f"{name}\nE = {r.final_energy:.1f}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Unrolling: a network made of iterations
# ---------------------------------------
# Run a fixed number :math:`T` of iterations of Eq. 15 and call it a network:
# :class:`~varseg.unrolled.UnrolledMumfordShah` starts from a soft nearest-prototype guess
# :math:`z^{(0)}_n = -\beta\|x - p_n\|^2` (learnable prototypes :math:`p_n`), then applies
# :math:`T` steps with **learnable step sizes** :math:`\eta_t` and, with
# ``learn_kernels=True``, a learnable 3×3 filter per step in place of the curvature operator.
# Untrained, it is just :math:`T` iterations of the fixed point; trained, it learns to reach
# a low energy in those :math:`T` steps. Training needs no labels: the loss is
# :math:`L_{MS}` itself.
train = SyntheticShapes(32, image_size=48, n_classes=3, noise=0.15, seed=0)
test = SyntheticShapes(8, image_size=48, n_classes=3, noise=0.15, seed=0, split="test")


def batch(ds, idx):
    x = torch.stack([ds[i]["image"] for i in idx])
    lo = x.amin((1, 2, 3), keepdim=True)
    hi = x.amax((1, 2, 3), keepdim=True)
    return (x - lo) / (hi - lo)  # each image scaled to [0, 1], as the solvers do


def mean_hard_energy(net, x):
    with torch.no_grad():
        labels = net(x).argmax(1).numpy()
    xn = x.double().numpy()
    return np.mean(
        [
            energy_from_labels(xn[i, 0], labels[i], lam, n_phases=3).total
            for i in range(len(xn))
        ]
    )


torch.manual_seed(0)
T = 10
net = UnrolledMumfordShah(
    3, in_channels=1, n_iter=T, lam=lam, step=2.0, learn_kernels=True
)
x_test = batch(test, range(len(test)))
before = mean_hard_energy(net, x_test)
opt = torch.optim.Adam(net.parameters(), lr=0.01)
rng = np.random.default_rng(0)
history = []
for _ in range(100):
    x = batch(train, rng.choice(len(train), 8, replace=False))
    loss = mumford_shah_loss(net(x), x, lam)  # per-pixel mean (Eq. 12)
    opt.zero_grad()
    loss.backward()
    opt.step()
    history.append(loss.item())
after = mean_hard_energy(net, x_test)
plain = np.mean(
    [
        ms_fixed_point(x_test[i, 0].numpy(), 3, lam=lam, max_iter=300).final_energy
        for i in range(len(x_test))
    ]
)
print(
    f"held-out images, mean energy of the argmax after T = {T} steps: "
    f"{before:.1f} untrained -> {after:.1f} trained "
    f"(the plain fixed point after up to 300 iterations: {plain:.1f})"
)
print("learned step sizes η_t:", np.round(net.steps.detach().numpy(), 2))

# %%
fig, ax = plt.subplots(figsize=(6.4, 4))
ax.plot(history)
ax.set_xlabel("training step")
ax.set_ylabel("L_MS (per pixel)")
ax.set_title("unsupervised training of the unrolled network")
plt.show()

# %%
# The learned 3×3 filters, one per unrolled step (each initialised to the Laplacian):
k = net.kernels.detach().numpy()
fig, ax = plt.subplots(figsize=(9.6, 1.9))
ax.imshow(np.concatenate(list(k), axis=1), cmap="RdBu")
ax.set_title("learned filters, steps 1 to T")
ax.set_axis_off()
plt.show()

# %%
# The learned steps reach, in :math:`T` iterations, an energy that the plain iteration
# with a fixed step does not reach in hundreds: that is the point of unrolling (LISTA).
# What the trained network does on a held-out image, every other step (argmax labels):
with torch.no_grad():
    zs = net(x_test[:1], return_all=True)[::2]
ncols = 4
nrows = -(-(len(zs) + 1) // ncols)
fig, axes = plt.subplots(nrows, ncols, figsize=(9.6, 2.7 * nrows))
axes = axes.ravel()
axes[0].imshow(x_test[0, 0], cmap="gray")
axes[0].set_title("image")
for t, (ax, z) in enumerate(zip(axes[1:], zs, strict=False)):
    ax.imshow(z[0].argmax(0).numpy(), cmap="viridis", vmin=0, vmax=2)
    ax.set_title(f"step {2 * t}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Take-aways
# ----------
# * Eq. 15 iterates the Euler–Lagrange equation of the MS loss on logits; with the exact
#   softmax gradient it is gradient descent on :math:`L_{MS}`.
# * For two classes it is the Chan–Vese flow with :math:`\mu = 2\lambda` and
#   :math:`\delta = y_1 y_2`.
# * Unrolled for :math:`T` steps with learned steps and filters, it becomes a small network
#   trained by the MS loss alone — no labels.
