"""The decoders (``A2BDecoder``: vote and paper) on ideal maps of real images and on hand-made maps.

The real-data checks run ``tools/analysis_tools/decode_ceiling.py`` itself on a few images and
assert the ceilings docs/decoder.md reports (with some margin), so a decoder change that loses
instances fails here.
"""
import importlib.util
import math

import numpy as np
import pytest
import torch
from mmengine.registry import init_default_scope

from a2bis_mm.models.task_modules import A2BPaperDecoder, A2BVoteDecoder, build_decoder, ideal_maps, prob_iou

CONSEP = 'configs/a2bis/a2bis-t_a2b_50e_consep-256.py'
CHROMOSOME = 'configs/a2bis/a2bis-t_a2b_100e_chromosome-512.py'


@pytest.fixture(scope='module')
def ceiling(repo_root):
    """``decode_ceiling.main`` (run from the repository root, where the configs' data paths work)."""
    spec = importlib.util.spec_from_file_location(
        'decode_ceiling', repo_root / 'tools' / 'analysis_tools' / 'decode_ceiling.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def run(config, *args, tmp_path):
        init_default_scope('mmdet')
        return module.main([str(repo_root / config), '--out', str(tmp_path / 'res.json'), *args])

    return run


@pytest.fixture
def in_repo(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)


def test_consep_ceiling_with_full_resolution_maps(shared_data, ceiling, in_repo, tmp_path):
    res = ceiling(CONSEP, '--limit', '4', '--fullres', 'on', tmp_path=tmp_path)
    assert res['pq/bPQ'] > 0.93  # 0.969 on the first 40 val patches
    paper = ceiling(CONSEP, '--limit', '4', '--cfg-options', 'model.test_cfg.decoder=paper',
                    tmp_path=tmp_path)
    assert paper['pq/bPQ'] < 0.75  # the paper decoder's masks leak into neighbours (0.654)
    stride = ceiling(CONSEP, '--limit', '4', '--fullres', 'off', tmp_path=tmp_path)
    assert 0.75 < stride['pq/bPQ'] < res['pq/bPQ']  # stride-2 masks cap near 0.82


def test_chromosome_pairs_every_chromosome_recovered(shared_data, ceiling, in_repo, tmp_path):
    res = ceiling(CHROMOSOME, '--fullres', 'on', tmp_path=tmp_path)
    assert res['ceiling/images_all_recovered'] == res['ceiling/images_with_gt'] == 9
    assert res['ceiling/recovered'] == res['ceiling/gt_instances'] == 18
    assert res['pq/bPQ'] >= 0.95  # overlap-aware PQ (the chromosome configs' evaluator)
    assert (res['err/fn'], res['err/images_all_found']) == (0, 9)  # the error metric agrees
    # crossing pixels end in both chromosomes' masks
    assert res['ceiling/overlap_px_kept'] >= 0.99 * res['ceiling/overlap_px_total'] > 0
    # the paper decoder's NMS at IoU 0.25 merges one crossing pair of the val split
    paper = ceiling(CHROMOSOME, '--cfg-options', 'model.test_cfg.decoder=paper',
                    tmp_path=tmp_path)
    assert paper['ceiling/images_all_recovered'] == 8


# ------------------------------------------------------------------ hand-made maps
def crossing_rods(size=96, stride=2):
    """Two thin rods crossing at 90 degrees, and a separate blob."""
    masks = np.zeros((3, size, size), bool)
    masks[0, 44:52, 8:88] = True
    masks[1, 8:88, 44:52] = True
    yy, xx = np.mgrid[:size, :size]
    masks[2] = (yy - 80)**2 + (xx - 15)**2 <= 36
    return masks, np.array([0, 0, 1])


def meta(size):
    return dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0),
                img_path='rods.png')


@pytest.mark.parametrize('fullres', [False, True])
def test_vote_decoder_separates_crossing_rods(fullres):
    masks, labels = crossing_rods()
    maps = ideal_maps(masks, labels, num_classes=2)
    keys = ('skeleton', 'seg', 'rboxes') + (('fg', 'overlap') if fullres else ())
    out = build_decoder(dict(decoder='vote'), num_classes=2).decode(
        {k: maps[k] for k in keys}, meta(96))
    assert len(out) == 3
    assert sorted(out.labels.tolist()) == [0, 0, 1]
    pred = out.masks.numpy()
    for gt in masks:
        iou = (pred & gt).sum((1, 2)) / (pred | gt).sum((1, 2))
        assert iou.max() > (0.97 if fullres else 0.8)
    # the crossing square is in both rods
    rods = pred[out.labels.numpy() == 0]
    assert rods[:, 46:50, 46:50].all()


def test_paper_decoder_is_selectable_and_merges_close_boxes():
    masks, labels = crossing_rods()
    maps = ideal_maps(masks, labels, num_classes=2)
    dec = build_decoder(dict(decoder='paper', nms_pre=2000,
                             paper=dict(nms=dict(type='nms_rotated', iou_threshold=0.25))),
                        num_classes=2)
    assert isinstance(dec.impl, A2BPaperDecoder)
    assert dec.impl.cfg.nms.iou_threshold == 0.25 and dec.impl.cfg.nms_pre == 2000
    out = dec.decode({k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta(96))
    assert len(out) == 3  # these rods' boxes overlap 0.1 only: NMS keeps both


def test_build_decoder_settings_and_errors():
    dec = build_decoder(dict(decoder='vote', score_thr=0.2, vote=dict(merge_thr=0.9),
                             paper=dict(box_grow=5.0)), stride=2, num_classes=3)
    assert isinstance(dec.impl, A2BVoteDecoder)
    assert dec.impl.cfg.score_thr == 0.2 and dec.impl.cfg.merge_thr == 0.9
    with pytest.raises(ValueError, match='test_cfg.decoder must be one of'):
        build_decoder(dict(decoder='mask'))
    with pytest.raises(ValueError, match='num_classes \\+ 2'):
        dec.decode(dict(skeleton=torch.zeros(1, 4, 4), seg=torch.zeros(4, 4, 4),
                        rboxes=torch.zeros(4, 4, 5)), meta(8))
    with pytest.raises(ValueError, match='mask_source'):
        build_decoder(dict(vote=dict(mask_source='full')))


def _spy(decode, seen):
    """``decode`` that records the torch thread count it runs with."""

    def wrapped(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return decode(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize('decoder', ['vote', 'paper'])
def test_decoding_threads_change_nothing_but_the_speed(decoder):
    """The decoder runs at ``num_threads`` torch threads, gives the same instances, and restores
    the caller's thread count (docs/decoder.md, "Speed")."""
    masks, labels = crossing_rods()
    maps = ideal_maps(masks, labels, num_classes=2)
    maps = {k: maps[k] for k in ('skeleton', 'seg', 'rboxes', 'fg', 'overlap')}
    seen = []
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        outs = []
        for threads in (1, None):
            dec = build_decoder(dict(decoder=decoder, num_threads=threads), num_classes=2)
            assert dec.num_threads == threads
            dec.impl.decode = _spy(dec.impl.decode, seen)
            outs.append(dec.decode(maps, meta(96)))
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)
    assert seen == [1, 2]
    one, default = outs
    assert len(one) == len(default) > 0
    assert torch.equal(one.masks, default.masks) and torch.equal(one.labels, default.labels)
    torch.testing.assert_close(one.bboxes.tensor, default.bboxes.tensor, rtol=0, atol=0)
    torch.testing.assert_close(one.scores, default.scores, rtol=0, atol=0)


def test_masks_without_resampling_equal_the_window_path():
    """The direct pixel path of ``_paste_all`` sets what one window per instance sets."""
    from a2bis_mm.models.task_modules.vote_decoder import _paste, _paste_all
    rng = np.random.default_rng(0)
    n, shape = 5, (40, 30)
    inst = rng.integers(0, n - 1, 300)  # instance n - 1 stays empty
    ys, xs = rng.integers(0, 42, 300), rng.integers(0, 30, 300)  # rows 40, 41 lie outside
    fast = _paste_all(inst, ys, xs, n, (42, 30), shape, (1.0, 1.0), 0.5)
    slow = np.zeros((n, *shape), bool)
    for i in range(n):
        y, x = ys[inst == i], xs[inst == i]
        if y.size:
            win = np.zeros((y.max() - y.min() + 1, x.max() - x.min() + 1), np.float32)
            win[y - y.min(), x - x.min()] = 1
            _paste(slow[i], win, y.min(), x.min(), (42, 30), (1.0, 1.0), 0.5)
    assert fast.any() and not fast[n - 1].any()
    np.testing.assert_array_equal(fast, slow)


def test_cap_cut_is_reported_once_per_image(mm_caplog):
    masks, labels = crossing_rods()
    maps = ideal_maps(masks, labels, num_classes=2)
    dec = build_decoder(dict(max_per_img=2, cap_area=None), num_classes=2)
    out = dec.decode({k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta(96))
    assert len(out) == 2
    warnings = [r.getMessage() for r in mm_caplog.records if 'max_per_img' in r.getMessage()]
    assert len(warnings) == 1 and 'rods.png' in warnings[0] and 'cut 1 instances' in warnings[0]
    # caps scale with the image area: the same cap per 48x48 px allows 8 instances here
    dec = build_decoder(dict(max_per_img=2, vote=dict(cap_area=48 * 48)), num_classes=2)
    assert len(dec.decode({k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta(96))) == 3


def test_duplicate_seeds_of_one_rod_are_merged():
    """Noisy per-pixel angles leave two NMS seeds on one long rod; the refined boxes merge them."""
    masks = np.zeros((1, 96, 96), bool)
    masks[0, 46:52, 4:92] = True
    maps = ideal_maps(masks, np.array([0]), num_classes=1)
    rboxes = maps['rboxes'].clone()
    on = maps['seg'][1] > 0.5
    gen = torch.Generator().manual_seed(0)
    # every pixel's angle off by up to +-8 degrees: rotated IoUs between them drop below 0.5
    rboxes[..., 4][on] += (torch.rand(int(on.sum()), generator=gen) - 0.5) * math.radians(16)
    maps['rboxes'] = rboxes
    dec = build_decoder(dict(vote=dict(refine_iters=0)), num_classes=1)
    raw = dec.decode({k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta(96))
    assert len(raw) > 1  # NMS alone leaves duplicates
    out = build_decoder(dict(), num_classes=1).decode(
        {k: maps[k] for k in ('skeleton', 'seg', 'rboxes')}, meta(96))
    assert len(out) == 1


def test_prob_iou_properties():
    box = torch.tensor([[10., 20., 30., 6., 0.3]])
    assert prob_iou(box, box).item() == pytest.approx(1.0, abs=1e-4)
    # invariant to the (w, h, t) / (h, w, t + pi/2) ambiguity
    swapped = torch.tensor([[10., 20., 6., 30., 0.3 + math.pi / 2]])
    assert prob_iou(box, swapped).item() == pytest.approx(1.0, abs=1e-4)
    far = torch.tensor([[100., 20., 30., 6., 0.3]])
    assert prob_iou(box, far).item() < 1e-3
