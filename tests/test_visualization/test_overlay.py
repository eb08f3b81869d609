"""Overlays keep the image where it is and put the masks where the instances are (real tile)."""
import time

import cv2
import numpy as np
import pytest
import torch
from mmdet.registry import VISUALIZERS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.config import Config
from mmengine.structures import InstanceData

from a2bis_mm.apis import read_image
from a2bis_mm.apis.exporters import draw_overlay
from a2bis_mm.apis.tiling import CompactInstances, instances_from_label_map
from a2bis_mm.visualization import A2BISLocalVisualizer, box_corners, draw_instances, label_text

TILE = 'image01'  # 643x488, 351 nuclei: past the ~142 instances where mmrotate's chunked redraw broke


@pytest.fixture(scope='module')
def tile(shared_data):
    """The real H&E tile and its hand-drawn nuclei as instances (scores 1)."""
    img = read_image(shared_data / 'cpm15' / 'images' / f'{TILE}.png')
    labels = cv2.imread(str(shared_data / 'cpm15' / 'labels' / f'{TILE}.png'), cv2.IMREAD_UNCHANGED)
    insts = instances_from_label_map(labels.astype(np.int32))
    assert img.shape[:2] == labels.shape and len(insts) > 300
    return img, labels > 0, insts


def _white(img):
    return float((img.min(axis=2) >= 250).mean())


def test_overlay_keeps_background_and_fills_masks(tile):
    img, covered, insts = tile
    out = draw_overlay(img, insts, max_size=None)
    height, width = img.shape[:2]
    assert out.shape[1:] == img.shape[1:] and out.shape[0] > height  # the legend strip below
    picture = out[:height]
    # the background is the input image, pixel for pixel, at its own size and position
    assert np.array_equal(picture[~covered], img[~covered])
    assert _white(picture) <= _white(img) + 1e-3
    # every mask pixel is changed (fill or contour), towards the class colour (green)
    changed = (picture != img).any(axis=2)
    assert changed[covered].mean() > 0.99
    shift = picture[covered].astype(float).mean(axis=0) - img[covered].astype(float).mean(axis=0)
    assert shift[1] > 50 and shift[2] < 0


def test_overlay_downscaled_once(tile):
    img, covered, insts = tile
    out = draw_overlay(img, insts, max_size=320)
    small = cv2.resize(img, (320, 243), interpolation=cv2.INTER_AREA)
    fraction = cv2.resize(covered.astype(np.float32), (320, 243), interpolation=cv2.INTER_AREA)
    # a px of slack around the masks: the mask crops are resampled bilinearly, not by area
    far = ~cv2.dilate((fraction > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert np.array_equal(out[:243][far], small[far]) and far.mean() > 0.3
    inside = fraction > 0.75
    assert (out[:243][inside] != small[inside]).any(axis=1).mean() > 0.95


def test_boxes_crossing_the_edge_do_not_move_the_image(tile):
    """One rotated box far across the border used to shrink the picture in a white frame."""
    img, covered, insts = tile
    insts = insts.select(np.arange(len(insts)))
    insts.bboxes[0] = (5.0, 5.0, 400.0, 60.0, 0.7)
    out = draw_overlay(img, insts, max_size=None, show_bboxes=True)[:img.shape[0]]
    assert _white(out) <= _white(img) + 0.01
    # outside the masks only the box outlines (a few anti-aliased px wide) differ
    lines = np.zeros(img.shape[:2], np.uint8)
    corners = box_corners(insts.bboxes)
    cv2.polylines(lines, [np.round(c).astype(np.int32) for c in corners], True, 1, 5)
    assert (out == img).all(axis=2)[~covered & (lines == 0)].all()


def test_labels_and_scores_in_unit_range():
    assert label_text('rod', 0.4712) == 'rod: 0.47'
    assert label_text('nucleus') == 'nucleus'
    img = np.full((60, 120, 3), 128, np.uint8)
    crop = np.ones((10, 10), bool)
    out = draw_instances(img, np.array([[50, 30]]), [crop], np.array([0]), ['rod'], [(0, 255, 0)],
                         scores=np.array([0.47]))
    # the label is written (a dark box with white text) above the instance
    above = out[:30, 50:]
    assert (above.max(axis=2) < 40).any() and (above.min(axis=2) > 200).any()


def test_many_instances_fast(tile):
    """2,000+ instances in well under a second on an idle core (was 28 s with mmrotate's
    matplotlib drawing); the bound leaves room for a loaded machine."""
    img, _, insts = tile
    many = CompactInstances.concatenate([insts] * 6, insts.img_shape)
    many.classes, many.palette = insts.classes, insts.palette
    start = time.perf_counter()
    draw_overlay(img, many, max_size=None)
    assert time.perf_counter() - start < 5


def test_visualizer_config_entry_and_add_datasample(repo_root, tile):
    cfg = Config.fromfile(str(repo_root / 'configs/_base_/default_runtime.py'))
    assert cfg.visualizer.type == 'A2BISLocalVisualizer'
    # no labels: the pixels outside the masks must then be the image's own
    vis = VISUALIZERS.build(dict(type='A2BISLocalVisualizer', name='test_overlay_vis', max_labels=0))
    assert isinstance(vis, A2BISLocalVisualizer)
    img, covered, insts = tile
    height, width = img.shape[:2]
    masks = np.stack([insts.dense_mask(i) for i in range(40)])
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        masks=BitmapMasks(masks, height, width), labels=torch.zeros(40, dtype=torch.long),
        bboxes=torch.from_numpy(insts.bboxes[:40]).float())
    sample.pred_instances = InstanceData(
        masks=torch.from_numpy(masks), labels=torch.zeros(40, dtype=torch.long),
        scores=torch.linspace(0.1, 0.9, 40), bboxes=torch.from_numpy(insts.bboxes[:40]).float())
    vis.dataset_meta = dict(classes=('nucleus', ), palette=[(220, 20, 60)])
    rgb = np.ascontiguousarray(img[..., ::-1])
    vis.add_datasample('x', rgb, sample, pred_score_thr=0.3)
    drawn = vis.get_image()
    assert drawn.shape[1] == 2 * width and drawn.shape[0] > height  # GT | prediction, legend
    gt_cov = masks.any(axis=0)
    assert np.array_equal(drawn[:height, :width][~gt_cov], rgb[~gt_cov])
    assert np.array_equal(drawn[:height, width:][~gt_cov], rgb[~gt_cov])
