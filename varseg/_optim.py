"""Adam and SGD with momentum in plain torch, for the per-image minimiser.

``torch.optim``'s optimisers import ``torch._dynamo`` when they are built and at their first
step (about 1.5 s idle and 3-5 s on a busy 2-core machine, once per process), which is most of
the cost of a short :func:`varseg.neural_segment` call such as the one ``varseg compare`` runs.
These two classes compute the same updates with the same operations in the same order
(``torch.optim.Adam`` and ``torch.optim.SGD`` with their CPU single-tensor defaults; equal
bit for bit, tested) and import nothing. Training (``varseg.train``) keeps ``torch.optim``: its
checkpoints store the optimiser's ``state_dict``.
"""

import torch

__all__ = ["Adam", "SGD"]


class _Optimizer:
    """Parameter groups ``[{"params": [...], "lr": ...}, ...]`` and ``zero_grad``."""

    def __init__(self, params, lr, **defaults):
        if not lr > 0:
            raise ValueError(f"lr must be positive; got {lr!r}")
        params = list(params)
        if params and not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = [
            {**defaults, "lr": lr, **g, "params": list(g["params"])} for g in params
        ]
        self.state = {}

    def zero_grad(self):
        """Drop every gradient (``torch.optim``'s default ``set_to_none=True``)."""
        for g in self.param_groups:
            for p in g["params"]:
                p.grad = None

    def _with_grad(self):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    yield g, p


class Adam(_Optimizer):
    r"""Adam (Kingma & Ba 2015), the update of ``torch.optim.Adam`` without weight decay.

    .. math::
        m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t,\quad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2,\quad
        \theta_t = \theta_{t-1} - \frac{\eta}{1-\beta_1^t}
        \frac{m_t}{\sqrt{v_t}/\sqrt{1-\beta_2^t} + \epsilon}

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or groups ``{"params": [...], "lr": ...}``.
    lr : float
        Learning rate :math:`\eta`.
    betas : (float, float)
        :math:`\beta_1, \beta_2`.
    eps : float
        :math:`\epsilon`.

    References
    ----------
    .. [1] D. P. Kingma and J. Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr, betas=tuple(betas), eps=eps)

    @torch.no_grad()
    def step(self):
        """One Adam step of every parameter that has a gradient."""
        for g, p in self._with_grad():
            beta1, beta2 = g["betas"]
            st = self.state.setdefault(p, {"step": 0})
            if st["step"] == 0:
                st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["step"] += 1
            t, m, v = st["step"], st["exp_avg"], st["exp_avg_sq"]
            m.lerp_(p.grad, 1 - beta1)
            v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            step_size = g["lr"] / (1 - beta1**t)
            denom = (v.sqrt() / (1 - beta2**t) ** 0.5).add_(g["eps"])
            p.addcdiv_(m, denom, value=-step_size)


class SGD(_Optimizer):
    r"""Stochastic gradient descent with heavy-ball momentum, as ``torch.optim.SGD``.

    .. math:: b_t = \mu b_{t-1} + g_t \ (b_1 = g_1),\qquad \theta_t = \theta_{t-1} - \eta b_t

    Parameters
    ----------
    params : iterable of Tensor or of dict
        Parameters, or groups ``{"params": [...], "lr": ...}``.
    lr : float
        Learning rate :math:`\eta`.
    momentum : float
        :math:`\mu`.

    References
    ----------
    .. [1] B. T. Polyak, "Some methods of speeding up the convergence of iteration methods",
       USSR Comput. Math. Math. Phys. 4(5), 1964.
    """

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr, momentum=momentum)

    @torch.no_grad()
    def step(self):
        """One step of every parameter that has a gradient."""
        for g, p in self._with_grad():
            d = p.grad
            if g["momentum"]:
                buf = self.state.get(p)
                if buf is None:
                    buf = self.state[p] = torch.clone(d).detach()
                else:
                    buf.mul_(g["momentum"]).add_(d)
                d = buf
            p.add_(d, alpha=-g["lr"])
