"""Semi-supervised step: Eq. 16-17 of Kim & Ye (IEEE TIP 2019) on partly labelled batches."""

from __future__ import annotations

from .supervised import SupervisedStep

__all__ = ["SemiSupervisedStep"]


class SemiSupervisedStep(SupervisedStep):
    """Eq. 16-17: CE on the labelled images, ``λ L_MS`` on all of them.

    With ``semi_sampling="paired"`` the labelled and the unlabelled images of a batch go
    through the network in two separate passes (as AdvSemi does), each followed by its
    backward pass: batch-norm statistics of the labelled images then never depend on the
    unlabelled ones (a shared pass lets the network lower the labelled loss through the batch
    statistics, which does not carry over to evaluation). The summed gradient is that of
    Eq. 16 over the whole batch (the ``"mean"`` MS term of each pass is weighted by its share
    of the images). ``"mixed"`` batches take one pass, like the official implementation.
    """

    def groups(self, labeled):
        """Unlabelled then labelled samples (``"paired"``), or the whole batch."""
        if self.cfg.semi_sampling == "paired":
            return [g for g in (~labeled, labeled) if bool(g.any())]
        return [None]
