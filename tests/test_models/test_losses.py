"""A2BKLDLoss against a float64 matrix KL divergence; mmdet losses against docs/model.md D2/D3."""
import math

import pytest
import torch
from mmdet.registry import MODELS

import a2bis_mm  # noqa: F401  registers A2BKLDLoss
from a2bis_mm.models.losses import kld_divergence


def _sigma(boxes: torch.Tensor) -> torch.Tensor:
    """(n, 2, 2) covariance R diag(w^2/4, h^2/4) R^T."""
    w, h, t = boxes[:, 2], boxes[:, 3], boxes[:, 4]
    rot = torch.stack([torch.cos(t), -torch.sin(t), torch.sin(t), torch.cos(t)], 1).view(-1, 2, 2)
    diag = torch.diag_embed(torch.stack([w.square() / 4, h.square() / 4], 1))
    return rot @ diag @ rot.transpose(1, 2)


def _matrix_kld(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Textbook KL(N_p || N_g) with explicit inverse and determinants, in float64."""
    pred, target = pred.double(), target.double()
    sp, sg = _sigma(pred), _sigma(target)
    sg_inv = torch.linalg.inv(sg)
    diff = (target[:, :2] - pred[:, :2]).unsqueeze(-1)
    trace = torch.diagonal(sg_inv @ sp, dim1=1, dim2=2).sum(-1)
    maha = (diff.transpose(1, 2) @ sg_inv @ diff).view(-1)
    logdet = torch.logdet(sg) - torch.logdet(sp)
    return 0.5 * (trace + maha + logdet - 2)


def _random_boxes(n: int, gen: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * 100
    wh = torch.exp(torch.rand(n, 2, generator=gen) * 4) + 1  # 2 .. 56 px
    t = (torch.rand(n, 1, generator=gen) - 0.5) * 2 * math.pi
    return torch.cat([xy, wh, t], 1)


def test_kld_matches_float64_matrix_form():
    gen = torch.Generator().manual_seed(0)
    target = _random_boxes(500, gen)
    pred = target + torch.randn(500, 5, generator=gen) * torch.tensor([3., 3., 2., 2., 0.3])
    pred[:, 2:4] = pred[:, 2:4].abs() + 0.5
    expected = _matrix_kld(pred, target)
    got = kld_divergence(pred, target)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected, rtol=1e-4, atol=1e-5)
    loss = MODELS.build(dict(type='A2BKLDLoss', tau=1.0, reduction='none'))(pred, target)
    expected_f = 1 - 1 / (1 + torch.log1p(expected.clamp(min=0)))
    torch.testing.assert_close(loss.double(), expected_f, rtol=1e-4, atol=1e-6)


def test_kld_zero_for_identical_boxes_and_symmetries():
    gen = torch.Generator().manual_seed(1)
    boxes = _random_boxes(100, gen)
    loss = MODELS.build(dict(type='A2BKLDLoss', reduction='none'))
    assert torch.equal(loss(boxes, boxes.clone()), torch.zeros(100))
    # same Gaussian: angle + pi, and w/h swapped with angle + pi/2
    flipped = boxes.clone()
    flipped[:, 4] += math.pi
    swapped = boxes[:, [0, 1, 3, 2, 4]].clone()
    swapped[:, 4] += math.pi / 2
    assert loss(flipped, boxes).max() < 1e-5
    assert loss(swapped, boxes).max() < 1e-4


def test_kld_finite_for_extreme_boxes():
    # w/h ratios up to 1e4, sides down to 1e-2, tiny and large angle/centre offsets
    sides = torch.tensor([1e-2, 1e-1, 1., 10., 100.])
    boxes = []
    for w in sides:
        for h in sides:
            for t in (0., 1e-4, 0.7, math.pi / 2):
                boxes.append([50., 50., float(w), float(h), t])
    boxes = torch.tensor(boxes)
    n = len(boxes)
    pred = boxes[torch.randperm(n, generator=torch.Generator().manual_seed(2))]
    pred = pred + torch.tensor([0.5, -0.3, 0., 0., 0.1])
    div = kld_divergence(pred, boxes)
    assert torch.isfinite(div).all()
    # still accurate there (D spans 1 .. 1e8): float32 closed form vs float64 matrices
    torch.testing.assert_close(div.double(), _matrix_kld(pred, boxes), rtol=1e-4, atol=0)
    loss = MODELS.build(dict(type='A2BKLDLoss', reduction='none'))(pred, boxes)
    assert torch.isfinite(loss).all() and (loss >= 0).all() and (loss < 1).all()
    # ratio 1e4 against its own slightly rotated copy stays finite and positive
    elong = torch.tensor([[0., 0., 100., 1e-2, 0.]])
    turned = elong + torch.tensor([[0., 0., 0., 0., 1e-3]])
    value = kld_divergence(turned, elong)
    assert torch.isfinite(value).all() and value.item() > 0


def test_kld_weighted_mean_and_gradient():
    pred = torch.tensor([[10., 10., 4., 2., 0.], [0., 0., 3., 3., 0.]], requires_grad=True)
    target = torch.tensor([[11., 10., 4., 2., 0.2], [0., 0., 3., 3., 0.]])
    weight = torch.tensor([3., 1.])
    loss_fn = MODELS.build(dict(type='A2BKLDLoss', tau=1.0, loss_weight=2.0))
    per_box = MODELS.build(dict(type='A2BKLDLoss', reduction='none'))(pred, target)
    loss = loss_fn(pred, target, weight)
    # docs/model.md, D4: mean_i(w_i f_i), times loss_weight
    assert loss.item() == pytest.approx(2.0 * (3 * per_box[0].item() + per_box[1].item()) / 2)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0].abs().sum() > 0
    with pytest.raises(ValueError, match='expects'):
        loss_fn(pred[:, :4], target[:, :4])


def test_gaussian_focal_loss_is_spec_centernet_form():
    """mmdet's GaussianFocalLoss == the reference's focal loss (docs/model.md, D2).

    Up to its log epsilon 1e-12 vs 1e-5.
    """
    gen = torch.Generator().manual_seed(3)
    p = torch.rand(2, 1, 8, 8, generator=gen) * 0.98 + 0.01
    y = torch.rand(2, 1, 8, 8, generator=gen) * 0.9
    y[0, 0, 2, 3:6] = 1.
    y[1, 0, 5, 5] = 1.
    pos = y == 1
    npos = pos.sum()
    spec = -(((1 - p) ** 2 * torch.log(p))[pos].sum()
             + ((1 - y) ** 4 * p ** 2 * torch.log(1 - p))[~pos].sum()) / npos
    loss = MODELS.build(dict(type='GaussianFocalLoss', alpha=2.0, gamma=4.0))
    assert loss(p, y, avg_factor=int(npos)).item() == pytest.approx(spec.item(), rel=1e-5)


def test_naive_dice_is_spec_dice():
    """mmdet's DiceLoss(naive_dice=True) == 1 - mean_c (2 sum gp + eps)/(sum g + sum p + eps)."""
    gen = torch.Generator().manual_seed(4)
    p = torch.rand(3, 50, generator=gen)
    g = (torch.rand(3, 50, generator=gen) > 0.6).float()
    g[2] = 0  # a class absent from the batch
    eps = 1e-5
    dice = (2 * (g * p).sum(1) + eps) / (g.sum(1) + p.sum(1) + eps)
    loss = MODELS.build(dict(type='DiceLoss', use_sigmoid=False, activate=False,
                             naive_dice=True, eps=eps))
    assert loss(p, g).item() == pytest.approx(1 - dice.mean().item(), rel=1e-6)


def _best_scale(divergence: str, spread: float = 0.5) -> float:
    """The length scale c minimising the mean loss of boxes whose log-length errs with ``spread``."""
    eps = torch.randn(2000, generator=torch.Generator().manual_seed(0))
    target = torch.tensor([50., 50., 100., 20., 0.3]).expand(2000, 5)
    loss_fn = MODELS.build(dict(type='A2BKLDLoss', divergence=divergence))
    scales = torch.linspace(0.5, 1.5, 101)
    losses = []
    for c in scales:
        pred = target.clone()
        pred[:, 2] = 100 * c * torch.exp(spread * eps)
        losses.append(loss_fn(pred, target).item())
    return scales[int(torch.tensor(losses).argmin())].item()


def test_kl_prefers_short_boxes_under_uncertainty_and_jeffreys_does_not():
    """KL(pred || target) charges a long box more than a short one (docs/model.md, box loss)."""
    assert _best_scale('kl') < 0.92
    assert _best_scale('jeffreys') == pytest.approx(1.0, abs=0.03)


def test_jeffreys_is_symmetric_and_zero_at_the_target():
    gen = torch.Generator().manual_seed(1)
    a, b = _random_boxes(64, gen), _random_boxes(64, gen)
    loss_fn = MODELS.build(dict(type='A2BKLDLoss', divergence='jeffreys', reduction='none'))
    torch.testing.assert_close(loss_fn(a, b), loss_fn(b, a))
    assert loss_fn(a, a).abs().max() < 1e-6
    with pytest.raises(ValueError, match='divergence'):
        MODELS.build(dict(type='A2BKLDLoss', divergence='wasserstein'))
