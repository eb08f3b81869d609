"""Per-anchor KL-divergence loss between rotated boxes seen as 2-D Gaussians (docs/model.md, D4)."""
from typing import Optional

import torch
import torch.nn as nn
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor


def kld_divergence(pred: Tensor, target: Tensor) -> Tensor:
    """KL(pred || target) of the Gaussians N(mu, R diag(w^2/4, h^2/4) R^T) of rotated boxes.

    Closed form from (w, h, t) without matrix inverses or determinants (mmrotate's ``GDLoss``
    builds and inverts Sigma, which cancels to NaN in float32 for elongated boxes). With
    ``ra = (w_p/w_g)^2``, ``rb = (h_p/h_g)^2``, ``dt = t_p - t_g`` and the centre offset
    ``(u1, u2)`` in the target's frame::

        2 D = (ra - 1 - ln ra) + (rb - 1 - ln rb)
              + sin^2(dt) (a_p - b_p)(a_g - b_g) / (a_g b_g) + u1^2 / a_g + u2^2 / b_g

    where ``a = w^2/4`` and ``b = h^2/4``; ``x - 1 - ln x`` is evaluated as ``expm1(l) - l``
    with ``l = ln x`` so that it is exact near 0.

    Args:
        pred (Tensor): Predicted boxes (n, 5) as (cx, cy, w, h, t), t in radians.
        target (Tensor): Target boxes (n, 5), same convention.

    Returns:
        Tensor: The divergence D of each pair, shape (n,); mathematically >= 0.
    """
    xp, yp, wp, hp, tp = pred.unbind(-1)
    xg, yg, wg, hg, tg = target.unbind(-1)
    log_ra = 2 * (wp.log() - wg.log())
    log_rb = 2 * (hp.log() - hg.log())
    shape = (torch.expm1(log_ra) - log_ra) + (torch.expm1(log_rb) - log_rb)
    # (a_p - b_p)(a_g - b_g) / (a_g b_g) == (a_p - b_p) (1/b_g - 1/a_g)
    inv_ag = 4 / wg.square()
    inv_bg = 4 / hg.square()
    cross = (wp.square() - hp.square()) / 4 * (inv_bg - inv_ag) * torch.sin(tp - tg).square()
    dx, dy = xp - xg, yp - yg
    cos_g, sin_g = torch.cos(tg), torch.sin(tg)
    u1 = cos_g * dx + sin_g * dy
    u2 = -sin_g * dx + cos_g * dy
    maha = u1.square() * inv_ag + u2.square() * inv_bg
    return 0.5 * (shape + cross + maha)


@MODELS.register_module()
class A2BKLDLoss(nn.Module):
    """A2B-IS box loss ``f = 1 - 1 / (tau + ln(1 + max(D, 0)))`` with ``D = KL(pred || target)``.

    ``divergence`` picks D: ``'kl'`` is the paper's ``KL(pred || target)``; ``'jeffreys'`` is the
    symmetric ``(KL(pred || target) + KL(target || pred)) / 2``. Why the choice matters: in
    ``KL(pred || target)`` a box too long by a factor r costs ``(r^2 - 1 - ln r^2) / 2`` (grows
    like r^2) but a box too short by r only about ``ln r`` , so where a pixel cannot know the
    exact extent of its instance (the far end of a long rod or chromosome) the loss is lowest
    for boxes that are systematically too small: with a log-size error of spread s, by
    ``exp(-s^2)`` (docs/model.md, box loss). The symmetric divergence has no such bias.

    Written here rather than reusing mmrotate's ``GDLoss(loss_type='kld')`` because that one is
    NaN in float32 for elongated boxes (see ``kld_divergence``) and normalises centres by the box
    size differently from the reference. ``f`` is exactly 0 when ``pred == target`` and tau = 1.

    Args:
        tau (float): Offset of the ``1 - 1/(tau + .)`` transform. Defaults to 1.0.
        divergence (str): 'kl' (the paper's) or 'jeffreys'. Defaults to 'kl'.
        reduction (str): 'none', 'mean' or 'sum'. 'mean' with per-anchor weights gives
            ``mean_i(w_i f_i)`` (docs/model.md, D4). Defaults to 'mean'.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 tau: float = 1.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0,
                 divergence: str = 'kl') -> None:
        super().__init__()
        if reduction not in ('none', 'mean', 'sum'):
            raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
        if divergence not in ('kl', 'jeffreys'):
            raise ValueError(f"divergence must be 'kl' or 'jeffreys', got {divergence!r}")
        self.divergence = divergence
        self.tau = tau
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tensor,
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Decoded predicted boxes (n, 5), (cx, cy, w, h, t), t in radians.
            target (Tensor): GT boxes (n, 5), same convention and units.
            weight (Tensor, optional): Per-box weights (n,). Defaults to None.
            avg_factor (float, optional): Normaliser of the 'mean' reduction. Defaults to None.
            reduction_override (str, optional): Overrides ``self.reduction``. Defaults to None.

        Returns:
            Tensor: The reduced loss (scalar), or (n,) with reduction 'none'.
        """
        if pred.shape != target.shape or pred.shape[-1] != 5:
            raise ValueError(f'A2BKLDLoss expects (n, 5) pred and target, got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}')
        reduction = reduction_override if reduction_override else self.reduction
        div = kld_divergence(pred, target)
        if self.divergence == 'jeffreys':
            div = (div + kld_divergence(target, pred)) / 2
        div = div.clamp(min=0)
        loss = 1 - 1 / (self.tau + torch.log1p(div))
        return self.loss_weight * weight_reduce_loss(loss, weight, reduction, avg_factor)
