"""
The Mumford–Shah functional and its energy
==========================================

Every method in varseg — level sets, fixed-point iterations, neural networks — is judged by
the same number: the piecewise-constant Mumford–Shah energy of the partition it returns. This
first tutorial defines that energy, computes it **by hand with NumPy** on a small image, and
checks that :func:`varseg.energy.energy_from_labels` and
:func:`varseg.energy.mumford_shah_energy` give exactly the same value. It then shows how the
weight λ of the length term arbitrates between fidelity and regularity.
"""

# %%
# The functional
# --------------
# Split the image domain :math:`\Omega` into :math:`N` regions with characteristic functions
# :math:`\chi_n(r) \in \{0, 1\}`, :math:`\sum_n \chi_n(r) = 1` (Eq. 3 of Kim & Ye 2019), and
# approximate the image :math:`x` by a constant :math:`c_n` on each region. The
# piecewise-constant Mumford–Shah energy (Eq. 1) is
#
# .. math::
#
#    E(\chi, c) = \underbrace{\sum_n \int |x(r) - c_n|^2 \chi_n(r)\,dr}_{\text{data term } D}
#      + \lambda \underbrace{\sum_n \int |\nabla \chi_n(r)|\,dr}_{\text{length term } L}
#
# For fixed regions the best constants are the region means (Eq. 4),
# :math:`c_n = \int x \chi_n / \int \chi_n`. The data term rewards fidelity (each region should
# be homogeneous); the length term is the total variation of the characteristic functions,
# i.e. the perimeter of the regions, and rewards short, smooth boundaries. λ sets the
# exchange rate between the two, in units of squared intensity per pixel of boundary.
#
# A small test image: two regions, a disk on a background, with Gaussian noise.
import matplotlib.pyplot as plt
import numpy as np

from varseg.energy import (
    energy_from_labels,
    labels_to_memberships,
    mumford_shah_energy,
    mumford_shah_terms,
)

rng = np.random.default_rng(0)
yy, xx = np.mgrid[0:64, 0:64]
truth = ((yy - 30) ** 2 + (xx - 34) ** 2 < 18**2).astype(int)  # label 1 = the disk
image = np.where(truth == 1, 0.7, 0.25) + 0.12 * rng.standard_normal(truth.shape)

fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
axes[0].imshow(image, cmap="gray")
axes[0].set_title("image x")
axes[1].imshow(truth, cmap="viridis")
axes[1].set_title("partition χ (truth)")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %%
# The energy by hand
# ------------------
# The discretisation is the one of :mod:`varseg.energy`, documented once for every solver:
#
# * integrals are sums over pixels;
# * gradients are **forward differences** :math:`u(r + e_a) - u(r)` with a Neumann boundary
#   (the difference is 0 on the last row and column);
# * the length term is the **isotropic** total variation
#   :math:`\sum_r \sqrt{(\partial_y \chi_n)^2 + (\partial_x \chi_n)^2}`, summed over the
#   classes — so each boundary is counted twice, once from each side, as in the paper.
lam = 0.125


def forward_diff(u, axis):
    d = np.diff(u, axis=axis)
    pad = [(0, 0)] * u.ndim
    pad[axis] = (0, 1)  # Neumann: zero difference after the last pixel
    return np.pad(d, pad)


def energy_by_hand(x, labels, lam, n_phases):
    data = length = 0.0
    for n in range(n_phases):
        chi = (labels == n).astype(float)
        c_n = (x * chi).sum() / chi.sum()  # Eq. 4
        data += ((x - c_n) ** 2 * chi).sum()  # Eq. 2
        gy, gx = forward_diff(chi, 0), forward_diff(chi, 1)
        length += np.sqrt(gy**2 + gx**2).sum()  # TV(χ_n)
    return data + lam * length, data, length


E_hand, D_hand, L_hand = energy_by_hand(image, truth, lam, 2)
print(f"by hand:  E = {E_hand:.6f}  (D = {D_hand:.6f}, L = {L_hand:.3f})")

# %%
# The same with varseg
# --------------------
# :func:`~varseg.energy.energy_from_labels` evaluates a hard partition given as a label map
# with a compiled kernel (every iterative solver records it each iteration);
# :func:`~varseg.energy.mumford_shah_energy` takes memberships — here the one-hot
# :math:`\chi_n` from :func:`~varseg.energy.labels_to_memberships` — and is the very function
# the Mumford–Shah *loss* calls on softmax outputs (tutorial 5).
terms = energy_from_labels(image, truth, lam)
E_soft = mumford_shah_energy(image, labels_to_memberships(truth, 2), lam)
print(
    f"varseg:   E = {terms.total:.6f}  (D = {terms.data:.6f}, L = {terms.length:.3f})"
)
print(f"memberships path: E = {E_soft:.6f}")
print("region means c_n:", np.round(terms.means.ravel(), 4))
assert np.isclose(terms.total, E_hand, rtol=1e-12)
assert np.isclose(E_soft, E_hand, rtol=1e-12)

# %%
# The length term of a hard partition is (twice) the perimeter
# ------------------------------------------------------------
# For a two-phase partition :math:`\mathrm{TV}(\chi_1) = \mathrm{TV}(\chi_2)` = the length
# of the boundary :math:`|\Gamma|`, so :math:`L = 2|\Gamma|`. A square of side 20 aligned with
# the grid has perimeter 80; the anisotropic TV (:math:`|\partial_x| + |\partial_y|`, the form
# of the paper's official code) measures it exactly, the isotropic one slightly less at the
# corners (:math:`\sqrt 2` instead of 2 where both differences are non-zero).
square = np.zeros((40, 40), int)
square[10:30, 10:30] = 1
for tv in ("anisotropic", "isotropic"):
    L = energy_from_labels(square.astype(float), square, 1.0, tv=tv).length
    print(f"{tv:>11}: L = {L:.3f}  ->  perimeter {L / 2:.3f}")

# %%
# What λ does
# -----------
# Compare three partitions of the noisy image:
#
# * **threshold**: every pixel brighter than the midpoint — the lowest data term one can get
#   with two constants, but a ragged boundary around every noisy pixel;
# * **truth**: the disk;
# * **too smooth**: a smaller disk — a short boundary, poor fidelity.
#
# Their energies are straight lines in λ (:math:`E = D + \lambda L`); the partition with
# the lowest energy changes as λ grows: a small λ trusts the pixels, a large λ trusts the
# geometry. Choosing λ is choosing the scale of the details one keeps.
partitions = {
    "threshold": (image > 0.475).astype(int),
    "truth": truth,
    "too smooth": ((yy - 30) ** 2 + (xx - 34) ** 2 < 9**2).astype(int),
}
terms_of = {
    name: energy_from_labels(image, lab, lam) for name, lab in partitions.items()
}
fig, axes = plt.subplots(1, 3, figsize=(9, 3.6))
for ax, (name, lab) in zip(axes, partitions.items(), strict=True):
    t = terms_of[name]
    u = t.means.ravel()[lab]  # the piecewise-constant approximation u = Σ c_n χ_n
    ax.imshow(u, cmap="gray", vmin=0.2, vmax=0.75)
    ax.set_title(f"{name}\nD = {t.data:.1f}, L = {t.length:.0f}")
    ax.set_axis_off()
plt.show()

# %%
# The three energies as functions of λ:
lams = np.linspace(0, 1.0, 51)
fig, ax = plt.subplots(figsize=(6.4, 4))
for name, t in terms_of.items():
    ax.plot(lams, t.data + lams * t.length, label=name)
ax.set_xlabel("λ")
ax.set_ylabel("E = D + λ L")
ax.legend()
ax.set_title("energy of each partition vs λ")
plt.show()

# %%
# :func:`~varseg.energy.mumford_shah_terms` returns the same decomposition for soft
# memberships too; with colour images the squared norm :math:`|x - c_n|^2` sums over the
# channels. Here is the check on a 3-channel version of the image:
rgb = np.stack([image, 0.5 * image, 1 - image])  # channels first for the energy API
t_rgb = mumford_shah_terms(rgb, labels_to_memberships(truth, 2), lam)
by_channel = sum(energy_by_hand(rgb[c], truth, 0.0, 2)[1] for c in range(3))
print(f"colour data term {t_rgb.data:.6f} = sum over channels {by_channel:.6f}")

# %%
# Take-aways
# ----------
# * One function of the partition scores every method: :math:`E = D + \lambda L` with the
#   region means of Eq. 4, forward differences and an isotropic TV.
# * :func:`~varseg.energy.energy_from_labels` (label maps) and
#   :func:`~varseg.energy.mumford_shah_energy` (memberships) agree to machine precision with
#   the NumPy transcription above.
# * λ trades data fidelity against boundary length; the next tutorials minimise this energy
#   with level sets (2-4), softmax relaxations (5-6) and networks (7-8).
