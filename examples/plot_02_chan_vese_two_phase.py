"""
Two-phase Chan–Vese and its parameters
======================================

Chan & Vese (2001) minimise the two-phase Mumford–Shah energy with a **level set**: a
function :math:`\\phi` whose sign tells the region, :math:`\\chi_1 = H(\\phi)`,
:math:`\\chi_2 = 1 - H(\\phi)`, :math:`H` the Heaviside step. This tutorial runs
:func:`varseg.levelset.chan_vese` on the camera image and varies its parameters one
at a time — ``mu``, ``dt``, ``eps`` and ``init`` — to show what each one does and why.
"""

# %%
# The model and the flow
# ----------------------
# Chan–Vese's functional is
#
# .. math::
#
#    F(c_1, c_2, \phi) = \mu \int \delta(\phi) |\nabla \phi|
#      + \lambda_1 \int |x - c_1|^2 H(\phi) + \lambda_2 \int |x - c_2|^2 (1 - H(\phi)),
#
# the energy of tutorial 1 written with a level set: :math:`\int \delta(\phi)|\nabla\phi|`
# is the boundary length :math:`|\Gamma|`, and because the shared energy counts each boundary
# twice, Chan–Vese with :math:`\lambda_1 = \lambda_2 = 1` equals it with
# :math:`\lambda = \mu / 2`. Its gradient flow (Eq. 8 with one level set) is
#
# .. math::
#
#    \frac{\partial \phi}{\partial t} = \delta_\varepsilon(\phi)\Big[\mu\,
#       \mathrm{div}\frac{\nabla\phi}{|\nabla\phi|} - \lambda_1 (x - c_1)^2
#       + \lambda_2 (x - c_2)^2\Big],
#
# alternated with the update of the means :math:`c_1, c_2` (Eq. 4). varseg discretises it
# with Getreuer's semi-implicit scheme, as scikit-image does, compiled with Numba. The image
# is first scaled to [0, 1], so ``mu`` has the same meaning on any image.
import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from skimage.transform import resize

from varseg.levelset import chan_vese
from varseg.plot import plot_energy, plot_evolution
from varseg.report import overlay_image

image = resize(data.camera(), (128, 128), anti_aliasing=True)


def show_results(results, titles, suptitle):
    """One figure: the overlays of ``results``, at most three per row."""
    ncols = 2 if len(results) == 4 else min(len(results), 3)
    nrows = -(-len(results) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 3.5 * nrows + 0.4))
    for ax, r, t in zip(axes.flat, results, titles, strict=True):
        ax.imshow(overlay_image(image, r.labels))
        ax.set_title(f"{t}\nE = {r.final_energy:.1f}, {r.n_iter} it")
        ax.set_axis_off()
    fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# %%
# A first run
# -----------
# The defaults are scikit-image's ``mu=0.25``, ``dt=0.5``, ``eps=1`` and checkerboard
# initialisation; the stopping rule is varseg's: every 10 iterations, stop when less than
# ``tol`` = 0.2 % of the interface moved per iteration (``stop="level-set"`` gives
# scikit-image's "RMS change of φ below ``tol``", which depends on the image size and stops
# 3D flows early). The result holds the
# labels, the soft memberships :math:`H_\varepsilon(\phi)`, the means, the final level set
# and the shared energy of the hard partition at every iteration (with
# :math:`\lambda = \mu/2`).
res = chan_vese(image, 2, mu=0.25, max_iter=300, return_history=True, snapshot_every=50)
print(res.summary())
print(
    "means c_n:",
    np.round(res.means, 3),
    " λ of the recorded energy:",
    res.params["lam"],
)
fig = plot_evolution(res, image, ncols=4)
fig.suptitle("zero level set during the evolution")
plt.show()

# %%
# The energy decreases quickly and then creeps: the first iterations move the boundary
# across the image, the last ones polish it.
fig = plot_energy(res, title="Chan–Vese energy (λ = μ/2)")
plt.show()

# %%
# ``mu``: the price of a boundary
# -------------------------------
# ``mu`` multiplies the length term. Small values keep every detail (and the noise); large
# values keep only large, smooth regions — the tripod legs and the buildings are the first to
# go, since for a thin structure the boundary cost exceeds the data gain. Note that the
# energies are each evaluated with their own :math:`\lambda = \mu/2`, so they are not
# comparable across panels — tutorial 7 compares methods with one λ. (A large ``mu`` also
# slows the flow down; the partition stopping rule waits for the boundary, whatever its
# speed.)
mus = [0.02, 0.25, 1.0, 4.0]
runs = [chan_vese(image, 2, mu=m, max_iter=300) for m in mus]
fig = show_results(runs, [f"mu = {m}" for m in mus], "effect of mu")
plt.show()

# %%
# ``dt``: the time step
# ---------------------
# The semi-implicit scheme is stable for large steps, so ``dt`` mostly changes the **speed**
# of the descent: with ``dt = 0.05`` the energy needs about a hundred iterations to drop,
# with ``dt = 2`` about twenty. Very large steps overshoot a little: the energy is no longer
# monotone near the end and settles slightly higher.
dts = [0.05, 0.5, 2.0, 10.0]
runs = {f"dt = {d}": chan_vese(image, 2, dt=d, max_iter=300) for d in dts}
fig = plot_energy(runs, title="energy vs iteration for several dt")
fig.axes[0].set_yscale("log")
plt.show()
for name, r in runs.items():
    print(
        f"{name:<9}: E after 20 it = {r.energy[20]:8.1f}, "
        f"final E = {r.final_energy:.1f}"
    )

# %%
# ``eps``: width of the regularised Dirac
# ---------------------------------------
# The flow is multiplied by :math:`\delta_\varepsilon(\phi) = \varepsilon / (\varepsilon^2
# + \phi^2)`. Its peak is :math:`1/\varepsilon`: a small ``eps`` moves the zero level set
# fast but acts only near it (a *local* method, sensitive to the initialisation); a large
# ``eps`` is slower at the front but spreads the force over level lines far from zero, so
# new regions can appear anywhere — more global, with blurrier memberships.
epss = [0.1, 1.0, 10.0]
runs = {f"eps = {e}": chan_vese(image, 2, eps=e, max_iter=300) for e in epss}
fig = show_results(list(runs.values()), list(runs), "effect of eps")
plt.show()

# %%
# The energy curves: a small ``eps`` descends fastest at first.
fig = plot_energy(runs, title="energy vs iteration for several eps")
fig.axes[0].set_yscale("log")
plt.show()

# %%
# The soft memberships :math:`H_\varepsilon(\phi)` returned in ``memberships`` show the
# same width: with a large ``eps`` the transition between the phases is gradual.
fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.6))
for ax, (name, r) in zip(axes, runs.items(), strict=True):
    ax.imshow(r.memberships[0], cmap="RdBu", vmin=0, vmax=1)
    ax.set_title(f"H_eps(φ), {name}")
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %%
# ``init``: where the level set starts
# ------------------------------------
# The energy is not convex: the result depends on the start. The checkerboard (many small
# contours everywhere) finds objects anywhere in the image; a single disk grows or shrinks
# from its position and can miss what it never touches, especially with a small ``eps``.
# (A disk starts as a signed distance with large values of :math:`|\phi|`, where
# :math:`\delta_\varepsilon` is tiny: scikit-image's RMS rule would stop at once, the
# partition rule waits while the boundary moves.)
inits = ["checkerboard", "disk", "small disk"]
runs = [chan_vese(image, 2, init=i, eps=0.5, max_iter=300) for i in inits]
fig = show_results(runs, inits, "effect of the initial level set (eps = 0.5)")
plt.show()

# %%
# Take-aways
# ----------
# * ``mu`` is the scale parameter (λ = μ/2 of the shared energy): the one to tune.
# * ``dt`` trades iterations for step size; the semi-implicit scheme tolerates large steps.
# * ``eps`` and ``init`` decide how *global* the search is — the energy has local minima.
