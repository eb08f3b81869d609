"""Tiled / rescaled inference on a real cpm15 tile, and tools/infer.py's exports."""
import importlib.util
import json

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import shapely
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint
from pycocotools.coco import COCO

from a2bis_mm.apis import inference_a2bis, init_a2bis_model, read_image
from a2bis_mm.apis.exporters import crop_to_rle

TINY_CONFIG = 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py'


def _config(repo_root) -> Config:
    """The tiny A2B-IS with one class; the per-image caps (``nms_pre``, ``max_per_img``) are off
    so that a whole image and its tiles keep the same candidates, and weak candidates are dropped
    before the NMS so that suppression chains stay short."""
    cfg = Config.fromfile(str(repo_root / TINY_CONFIG))
    cfg.model.mask_head.num_classes = 1
    cfg.model.test_cfg.update(nms_pre=0, max_per_img=0, score_thr=0.3)
    cfg.test_dataloader.dataset.metainfo = dict(classes=('nucleus', ))
    return cfg


@pytest.fixture(scope='module')
def model(repo_root):
    """A deterministic untrained model that finds instances.

    The last convs start at zero (P = 1/C everywhere, argmax background: no instance), so the
    skeleton and class convs get seeded random weights; boxes stay the 3x3 anchors (+2 px).
    """
    torch.manual_seed(0)
    model = init_a2bis_model(_config(repo_root), None, device='cpu')
    for branch in (model.mask_head.skeleton_branch, model.mask_head.seg_branch):
        torch.nn.init.normal_(branch.conv_out.weight, std=0.3)
    return model


@pytest.fixture(scope='module')
def image(shared_data):
    return read_image(shared_data / 'cpm15' / 'images' / 'image02.png')


def _rles(insts):
    return [crop_to_rle(c, o, *insts.img_shape) for o, c in zip(insts.offsets, insts.crops)]


def test_tiled_equals_untiled_on_real_tile(model, image):
    """Same instances with and without tiling, no duplicates at tile borders.

    The A2B blocks' spatial softmax runs over the whole input, so a tile's features are not
    exactly those of the same pixels in the whole image: a few tiny (3-50 px) masks of this
    untrained model differ by a pixel or two; everything else must match one to one.
    """
    whole = inference_a2bis(model, image, score_thr=0.3)
    tiled = inference_a2bis(model, image, tile_size=256, overlap=96, score_thr=0.3)
    assert image.shape[:2] == (490, 488) and len(whole) > 100
    iou = mask_utils.iou(_rles(whole), _rles(tiled), [0] * len(tiled))
    assert abs(len(tiled) - len(whole)) <= 0.02 * len(whole)
    # >= 97% of the instances of each run have an IoU > 0.9 partner in the other
    assert (iou.max(axis=1) > 0.9).mean() >= 0.97 and (iou.max(axis=0) > 0.9).mean() >= 0.97

    def overlapping_pairs(insts):
        rles = _rles(insts)
        return int((np.triu(mask_utils.iou(rles, rles, [0] * len(rles)), k=1) > 0.5).sum())

    # no border duplicates: the tiled run has no more overlapping pairs than the model itself
    assert overlapping_pairs(tiled) <= overlapping_pairs(whole)


def test_pixel_size_maps_back_to_level0(model, image):
    """A 2x pixel-replicated image at 0.25 µm/px for a 0.5 µm/px model is the original image
    after the INTER_AREA downscale; results must be the original ones scaled by 2."""
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    ref = inference_a2bis(model, image, score_thr=0.3)
    out = inference_a2bis(model, big, pixel_size=0.25, model_pixel_size=0.5, score_thr=0.3)
    assert out.img_shape == big.shape[:2] and len(out) == len(ref)
    order = np.argsort(-out.scores, kind='stable')
    np.testing.assert_allclose(out.bboxes[order, :4], ref.bboxes[:, :4] * 2, atol=1e-3)
    for i, j in enumerate(order):
        expected = np.repeat(np.repeat(ref.dense_mask(i), 2, axis=0), 2, axis=1)
        assert (out.dense_mask(j) == expected).all()
    with pytest.raises(ValueError, match='go together'):
        inference_a2bis(model, image, pixel_size=0.25)


def _load_tool(repo_root):
    spec = importlib.util.spec_from_file_location('infer_tool', repo_root / 'tools' / 'infer.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_infer_tool_exports_and_skips_unreadable(model, repo_root, shared_data, tmp_path, capsys):
    src = tmp_path / 'in'
    src.mkdir()
    (src / 'image02.png').write_bytes((shared_data / 'cpm15/images/image02.png').read_bytes())
    (src / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    cfg_path, ckpt = tmp_path / 'model.py', tmp_path / 'model.pth'
    _config(repo_root).dump(str(cfg_path))
    save_checkpoint(model.state_dict(), str(ckpt))
    out = tmp_path / 'out'
    summary = _load_tool(repo_root).main([
        str(src), '--config', str(cfg_path), '--checkpoint', str(ckpt), '--out-dir', str(out),
        '--tile-size', '256', '--overlap', '64', '--score-thr', '0.3'])
    assert summary['done'] == 1 and summary['skipped'] == 1 and summary['instances'] > 50
    printed = capsys.readouterr().out
    assert 'skipped: cannot read image' in printed
    # an mmengine-style bar for each long step: tiles, the exports, the overlay
    for step in ('tiles', 'merge', 'coco', 'geojson', 'overlay'):
        assert any(line.startswith(step) and '/' in line for line in printed.split('\r')), step
    assert sorted(p.name for p in out.iterdir()) == [
        'image02.coco.json', 'image02.geojson', 'image02.overlay.png']

    coco = COCO(str(out / 'image02.coco.json'))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == summary['instances']
    assert coco.loadImgs(1)[0]['height'] == 490 and coco.cats[1]['name'] == 'nucleus'
    for ann in anns:
        mask = coco.annToMask(ann)
        assert mask.shape == (490, 488) and mask.sum() == ann['area'] > 0
        ys, xs = np.nonzero(mask)
        assert ann['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1,
                               ys.max() - ys.min() + 1]

    with open(out / 'image02.geojson') as f:
        geo = json.load(f)
    assert geo['type'] == 'FeatureCollection' and len(geo['features']) == len(anns)
    # the features are written in the order of the annotations (ids 1..n)
    for feat, ann in zip(geo['features'], sorted(anns, key=lambda a: a['id'])):
        shape = shapely.geometry.shape(feat['geometry'])
        props = feat['properties']
        assert feat['geometry']['type'] in ('Polygon', 'MultiPolygon') and shape.is_valid
        assert props['objectType'] == 'detection' and props['isLocked'] is False
        assert props['classification']['name'] == 'nucleus'
        assert len(props['classification']['color']) == 3
        area = ann['area']
        assert props['measurements']['score'] == ann['score']
        assert abs(shape.area - area) <= 0.02 * area
        assert shape.bounds[2] <= 488 and shape.bounds[3] <= 490

    overlay = cv2.imread(str(out / 'image02.overlay.png'))
    original = read_image(src / 'image02.png')
    # the image at its own size in the top rows, the legend strip below
    assert overlay.shape[1:] == original.shape[1:] and overlay.shape[0] > original.shape[0]
    assert not np.array_equal(overlay[:490], original)


def test_infer_tool_one_line_errors(repo_root, tmp_path):
    tool = _load_tool(repo_root)
    with pytest.raises(tool.ToolInputError, match='does not exist'):
        tool.main([str(tmp_path / 'missing.png'), '--config', 'c.py', '--checkpoint', 'k.pth',
                   '--out-dir', str(tmp_path)])
    with pytest.raises(tool.ToolInputError, match='go together'):
        tool.main([str(tmp_path), '--config', 'c.py', '--checkpoint', 'k.pth', '--out-dir',
                   str(tmp_path), '--pixel-size', '0.25'])
