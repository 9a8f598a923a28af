"""
The softmax as a relaxed characteristic function, and the Mumford–Shah loss
===========================================================================

A network cannot output the hard characteristic functions :math:`\\chi_n \\in \\{0, 1\\}` of
tutorial 1 — they have no useful gradient. Kim & Ye's observation is that the softmax output
of a segmentation network already *is* a relaxed characteristic function, so the
Mumford–Shah energy can be evaluated on it and used as a differentiable loss. This tutorial
makes the relaxation concrete, checks that the loss coincides with the energy, and minimises
it by plain gradient descent on per-pixel logits.
"""

# %%
# Softmax: memberships that sum to one
# ------------------------------------
# For logits :math:`z_n(r)` (Eq. 10-11)
#
# .. math::
#
#    y_n(r) = \frac{e^{z_n(r)}}{\sum_i e^{z_i(r)}}, \qquad \sum_n y_n(r) = 1,\quad
#    0 \le y_n(r) \le 1 ,
#
# exactly the constraints of Eq. 3 with :math:`\{0, 1\}` relaxed to :math:`[0, 1]`. Scaling
# the logits by a factor :math:`\beta` sharpens the memberships; as :math:`\beta \to \infty`
# the softmax becomes the one-hot argmax — the hard partition.
import matplotlib.pyplot as plt
import numpy as np
import torch

from varseg.energy import energy_from_labels, mumford_shah_energy
from varseg.losses import mumford_shah_loss

r = np.linspace(-3, 3, 301)
z = np.stack([np.zeros_like(r), r])  # two classes, logit difference r
fig, ax = plt.subplots(figsize=(6.4, 4))
for beta in (0.5, 1, 3, 30):
    y = np.exp(beta * z) / np.exp(beta * z).sum(0)
    ax.plot(r, y[1], label=f"β = {beta}")
ax.set_xlabel("logit difference z₂ − z₁")
ax.set_ylabel("membership y₂")
ax.set_title("softmax → Heaviside as β grows")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The Mumford–Shah loss is the energy on soft memberships
# -------------------------------------------------------
# Eq. 12-13 replace :math:`\chi_n` by :math:`y_n` everywhere — in the data term, in the
# length term and in the means:
#
# .. math::
#
#    L_{MS} = \sum_n \int |x - c_n|^2 y_n + \lambda \sum_n \int |\nabla y_n|, \qquad
#    c_n = \frac{\int x\, y_n}{\int y_n}.
#
# :func:`varseg.losses.mumford_shah_loss` takes batched tensors ``(B, K, H, W)`` of logits and
# ``(B, C, H, W)`` images; with ``reduction="sum"`` it is the very function
# :func:`varseg.energy.mumford_shah_energy` of tutorial 1. For sharp logits it converges to
# the energy of the hard partition.
rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:64, 0:64]
truth = (((yy - 32) ** 2 + (xx - 28) ** 2) < 20**2).astype(int)  # a disk (label 1) …
truth[:, 52:] = 2  # … and a bright strip (label 2) on a dark background (label 0)
levels = np.array([0.15, 0.55, 0.9])
image = levels[truth] + 0.1 * rng.standard_normal(truth.shape)
lam = 0.125

x = torch.tensor(image)[None, None]  # (1, 1, H, W), float64
onehot = (
    torch.nn.functional.one_hot(torch.tensor(truth), 3).permute(2, 0, 1)[None].double()
)
E_hard = energy_from_labels(image, truth, lam).total
for beta in (1.0, 5.0, 20.0, 100.0):
    logits = beta * (2 * onehot - 1)
    L = mumford_shah_loss(logits, x, lam, reduction="sum").item()
    E_soft = mumford_shah_energy(image, torch.softmax(logits, 1)[0].numpy(), lam)
    print(
        f"β = {beta:5.1f}: L_MS = {L:9.4f} = energy of the softmax {E_soft:9.4f};"
        f"  hard energy {E_hard:.4f}"
    )

# %%
# Why the means need no special treatment
# ---------------------------------------
# :math:`c_n` depends on the memberships, so the loss could be differentiated through it.
# But Eq. 13 is exactly the minimiser of the data term over :math:`c_n`, so
# :math:`\partial L / \partial c_n = 0` there and the gradient is the same whether or not the
# means are detached from the graph (checked below) — the envelope theorem. The exact
# gradient with respect to the logits is
# :math:`\partial L / \partial z_m = y_m (g_m - \sum_n y_n g_n)` with
# :math:`g_n = |x - c_n|^2 - \lambda\,\mathrm{div}(\nabla y_n / |\nabla y_n|)`, the
# force of the fixed-point iteration of tutorial 6.
z = torch.randn(1, 3, 64, 64, dtype=torch.float64, requires_grad=True)
mumford_shah_loss(z, x, lam, reduction="sum").backward()
g_full = z.grad.clone()

z.grad = None
y = torch.softmax(z, 1)
c = ((x * y).sum((2, 3)) / y.sum((2, 3))).detach()  # means, detached
data = ((x - c[..., None, None]) ** 2 * y).sum()
length = mumford_shah_loss(z, x, lam, reduction="sum") - mumford_shah_loss(
    z, x, 0.0, reduction="sum"
)
(data + length).backward()
print(
    "max |grad with means detached - grad through means| =",
    float((z.grad - g_full).abs().max()),
)

# %%
# Minimising the loss directly
# ----------------------------
# Before any network, optimise the logits of every pixel with Adam. The loss is smooth in
# :math:`z`, so gradient descent works, and the *hard* energy of the argmax — the shared
# ruler — goes down with it. We start from large random logits, i.e. a random partition of
# the pixels into three phases (and, for contrast, from nearly zero logits — see below).
x32 = x.float()  # single precision is plenty for the optimisation


def descend(scale, steps=401, lam=lam, record=(), seed=1, z0=None):
    torch.manual_seed(seed)
    z = (
        scale * torch.randn(1, 3, 64, 64) if z0 is None else z0.clone()
    ).requires_grad_()
    opt = torch.optim.Adam([z], lr=0.1)
    soft, hard, snaps = [], [], {}
    for it in range(steps):
        opt.zero_grad()
        loss = mumford_shah_loss(z, x32, lam, reduction="sum")
        loss.backward()
        opt.step()
        soft.append(loss.item())
        hard.append(
            energy_from_labels(image, z[0].argmax(0).numpy(), lam, n_phases=3).total
        )
        if it in record:
            snaps[it] = torch.softmax(z, 1)[0].detach().numpy()
    return soft, hard, snaps


soft, hard, snaps = descend(3.0, record=(0, 20, 100, 400))
soft0, hard0, _ = descend(0.01)
print(
    f"random start: L_MS = {soft[-1]:.2f}, hard energy = {hard[-1]:.2f} "
    f"(truth: {E_hard:.2f})"
)
print(f"start at z ~ 0: L_MS = {soft0[-1]:.2f}, hard energy = {hard0[-1]:.2f}")

fig, axes = plt.subplots(2, 3, figsize=(9.6, 8))
axes = axes.ravel()
axes[0].imshow(image, cmap="gray")
axes[0].set_title("image")
for ax, (it, y) in zip(axes[1:], snaps.items(), strict=False):
    ax.imshow(np.moveaxis(y, 0, -1))  # memberships as RGB: pure colours = hard
    ax.set_title(f"softmax memberships\nstep {it}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# The relaxed loss and the hard energy of its argmax along the descent, from both starts:
fig, ax = plt.subplots(figsize=(7.2, 4.4))
ax.plot(soft, "C0", label="L_MS, random start")
ax.plot(hard, "C0--", label="hard energy of its argmax")
ax.plot(soft0, "C1", label="L_MS, start at z ≈ 0")
ax.plot(hard0, "C1--", label="hard energy of its argmax")
ax.axhline(E_hard, color="k", ls=":", label="energy of the truth")
ax.set_yscale("log")
ax.set_xlabel("Adam step")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# From the random start the memberships sharpen into the three regions and the hard
# energy comes down to that of the true partition: the minimisers of the relaxed problem
# are (nearly) hard, and the loss and the hard energy meet. The relaxed problem is not
# convex, though: with other random starts (``seed``) or fewer steps the descent can stop
# in a local minimum where, say, two regions share one phase and a third phase splits the
# background — try it.
#
# The orange curves show a trap of the relaxation. *Uniform* memberships
# :math:`y_n = 1/K` have no gradient in space, hence a zero length term, and all the means
# are equal: a flat, symmetric point of the loss. Started next to it, the memberships stay
# blurred (the length term keeps them flat), the loss sits on a plateau for hundreds of
# steps while the argmax of nearly equal memberships is noise, and when it finally escapes
# it is still far from a good partition. This is one reason the per-image solvers start
# from an informed guess (the fixed point of tutorial 6 starts from intensity quantiles)
# and why the initial symmetry of a network matters.
#
# The role of λ
# -------------
# As in tutorial 1, λ prices the boundaries, here of the soft memberships. To isolate its
# effect, start every run from the same informed guess — soft nearest-level memberships
# :math:`z_n = -20 (x - q_n)^2` around the three intensity levels :math:`q_n` the image was
# drawn with: a small λ keeps isolated noisy pixels, a moderate one cleans them, and a
# large one makes boundaries so expensive that the partition gives up fidelity to shorten
# them — the disk reaches out to the strip, which thins.
q = levels
z_start = torch.tensor(
    -20.0 * (image[None] - q[:, None, None]) ** 2, dtype=torch.float32
)[None]
fig, axes = plt.subplots(2, 2, figsize=(7.2, 7.6))
axes = axes.ravel()
axes[0].imshow(z_start[0].argmax(0), cmap="viridis", vmin=0, vmax=2)
axes[0].set_title("start: nearest level")
for ax, lam_k in zip(axes[1:], (0.01, 0.125, 10.0), strict=True):
    _, hard_k, snap = descend(0.0, steps=151, lam=lam_k, record=(150,), z0=z_start)
    ax.imshow(snap[150].argmax(0), cmap="viridis", vmin=0, vmax=2)
    ax.set_title(f"λ = {lam_k}")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# Take-aways
# ----------
# * Softmax outputs satisfy the constraints of characteristic functions relaxed to [0, 1].
# * The Mumford–Shah loss is the shared energy evaluated on them: one function for the
#   level-set world and the deep-learning world.
# * It is differentiable in the logits (the means need no gradient), so it can train a
#   network without labels — tutorials 6-8.
