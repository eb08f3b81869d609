"""The full-resolution branch of A2BISHead: targets, losses, padding, learning, and the paper model."""
import numpy as np
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures.mask import BitmapMasks
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401  registers the modules
from a2bis_mm.datasets.transforms import GenerateA2BTargets, PackA2BInputs


@pytest.fixture(scope='module', autouse=True)
def _scope():
    init_default_scope('mmdet')


def crossing_sample(size=48, img_size=None):
    """Two crossing bars and a blob, packed with the A2B-IS targets."""
    masks = np.zeros((3, size, size), bool)
    masks[0, 20:26, 4:44] = True
    masks[1, 4:44, 20:26] = True
    masks[2, 36:44, 36:44] = True
    rng = np.random.default_rng(0)
    img = rng.integers(150, 200, (size, size, 3), dtype=np.uint8)
    img[masks.any(0)] = 60
    res = dict(img=img, img_shape=(size, size), ori_shape=(size, size), img_id=0,
               img_path='x.png', scale_factor=(1., 1.), gt_masks=BitmapMasks(masks, size, size),
               gt_bboxes_labels=np.array([0, 0, 1]), gt_ignore_flags=np.zeros(3, bool))
    res = GenerateA2BTargets(stride=2)(res)
    return res, PackA2BInputs(meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                         'scale_factor'))(res)


def head(paper=False):
    fullres = None if paper else dict(feat_channels=8, img_channels=4)
    return MODELS.build(dict(type='A2BISHead', num_classes=2, in_channels=8, feat_channels=8,
                             fullres=fullres))


def test_targets_count_instances_per_input_pixel():
    res, packed = crossing_sample()
    cover = res['gt_fullres']
    assert cover.shape == (48, 48) and cover.dtype == np.uint8
    assert set(np.unique(cover)) == {0, 1, 2}
    assert (cover[20:26, 20:26] == 2).all() and (cover == 2).sum() == 36  # the crossing only
    assert (cover[36:44, 36:44] == 1).all()
    assert packed['data_samples'].gt_fullres.sem_seg.shape == (1, 48, 48)
    no_full = GenerateA2BTargets(stride=2, fullres=False)(dict(
        gt_masks=res['gt_masks'], gt_bboxes_labels=res['gt_bboxes_labels']))
    assert 'gt_fullres' not in no_full


def test_branch_shapes_losses_and_padding():
    _, packed = crossing_sample()
    h = head()
    feat = torch.randn(1, 8, 24, 24)
    img = torch.randn(1, 3, 48, 48)
    outs = h((feat, img))
    assert len(outs) == 4 and outs[3].shape == (1, 2, 48, 48)
    sample = packed['data_samples']
    kwargs = dict(batch_gt_instances=[sample.gt_instances], batch_gt_sem_seg=[sample.gt_sem_seg],
                  batch_gt_skeleton=[sample.gt_skeleton], batch_img_metas=[sample.metainfo],
                  batch_gt_fullres=[sample.gt_fullres])
    losses = h.loss_by_feat(*outs, **kwargs)
    assert losses['loss_fullres_bce'].item() == pytest.approx(2.0 * np.log(2), rel=1e-5)
    assert losses['loss_fullres_dice'].item() > 0
    # a padded batch (the image is the top-left 48x48 of 52x52): padding is ignored
    padded = h((torch.randn(1, 8, 26, 26), torch.randn(1, 3, 52, 52)))
    pad_losses = h.loss_by_feat(*padded, **kwargs)
    assert pad_losses['loss_fullres_bce'].item() == pytest.approx(2.0 * np.log(2), rel=1e-5)
    with pytest.raises(ValueError, match='4th output'):
        h.loss_by_feat(*outs[:3], **kwargs)


def test_paper_architecture_without_branch():
    h = head(paper=True)
    assert h.fullres_branch is None
    assert len(h((torch.randn(1, 8, 24, 24), torch.randn(1, 3, 48, 48)))) == 3
    assert not any('fullres' in name for name, _ in h.named_parameters())


def test_branch_learns_the_crossing():
    """A few steps on one image: the branch reproduces foreground and overlap at input pixels."""
    torch.manual_seed(0)
    _, packed = crossing_sample()
    cfg = dict(type='A2BIS', backbone=dict(type='A2BNet', arch=dict(
        channels=[8, 8, 8, 8], num_asa=[1, 1, 1, 1])),
        data_preprocessor=dict(type='DetDataPreprocessor', mean=[128.] * 3, std=[50.] * 3,
                               pad_size_divisor=2, boxtype2tensor=False),
        mask_head=dict(type='A2BISHead', num_classes=2, in_channels=8, feat_channels=16,
                       fullres=dict(feat_channels=16, img_channels=8)),
        test_cfg=dict(decoder='vote'))
    model = MODELS.build(cfg)
    model.init_weights()
    data = model.data_preprocessor(pseudo_collate([packed]), True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        losses = model(**data, mode='loss')
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
    with torch.no_grad():
        maps = model.forward_maps(data['inputs'])
    target = packed['data_samples'].gt_fullres.sem_seg[0].numpy()
    fg = maps['fg'][0, 0].numpy() >= 0.5
    assert (fg == (target >= 1)).mean() > 0.97
    overlap = maps['overlap'][0, 0].numpy() >= 0.5
    assert overlap[21:25, 21:25].mean() > 0.8 and overlap[target < 2].mean() < 0.02
