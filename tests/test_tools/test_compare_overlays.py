"""tools/analysis_tools/compare_overlays.py: panels side by side on a crop where instances touch."""
import importlib.util

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from a2bis_mm.apis import init_a2bis_model
from a2bis_mm.apis.tiling import CompactInstances


@pytest.fixture(scope='module')
def tool(repo_root):
    path = repo_root / 'tools' / 'analysis_tools' / 'compare_overlays.py'
    spec = importlib.util.spec_from_file_location('compare_overlays', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_contact_map_and_auto_crop(tool):
    a = np.ones((10, 10), bool)
    insts = CompactInstances((100, 200), offsets=np.array([[150, 40], [160, 40], [10, 10]]),
                             crops=[a, a, a], labels=np.zeros(3, np.int64), scores=np.ones(3),
                             bboxes=np.zeros((3, 5)))
    contact = tool.contact_map(insts)
    # the two squares side by side at x = 150..169 touch along x = 159 | 160; the third is alone
    assert contact[45, 159] and contact[45, 160] and not contact[15, 15] and not contact[45, 150]
    x, y, w, h = tool.auto_crop(insts, 32)
    assert (w, h) == (32, 32) and x <= 159 and x + w >= 161 and y <= 40 and y + h >= 50


def test_two_models_and_ground_truth_side_by_side(tool, repo_root, shared_data, tmp_path):
    # a 160 px crop of a real tile and its labels; the same untrained model twice keeps it short
    img = cv2.imread(str(shared_data / 'cpm15/images/image01.png'), cv2.IMREAD_COLOR)[:160, :160]
    labels = cv2.imread(str(shared_data / 'cpm15/labels/image01.png'), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(tmp_path / 'img.png'), img)
    cv2.imwrite(str(tmp_path / 'gt.png'), labels[:160, :160])
    cfg = Config.fromfile(str(repo_root / 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py'))
    cfg.model.mask_head.num_classes = 1
    cfg.test_dataloader.dataset.metainfo = dict(classes=('nucleus', ))
    torch.manual_seed(0)
    model = init_a2bis_model(cfg, None)
    torch.nn.init.normal_(model.mask_head.seg_branch.conv_out.weight, std=0.3)
    torch.nn.init.normal_(model.mask_head.skeleton_branch.conv_out.weight, std=0.3)
    cfg.dump(str(tmp_path / 'm.py'))
    save_checkpoint(model.state_dict(), str(tmp_path / 'm.pth'))
    model_args = ['--model', str(tmp_path / 'm.py'), str(tmp_path / 'm.pth')]
    out = tmp_path / 'cmp.png'
    picture = tool.main([str(tmp_path / 'img.png'), *model_args, *model_args, '--titles', 'one',
                         'two', '--gt', str(tmp_path / 'gt.png'), '--crop-size', '64',
                         '--scale', '2', '--score-thr', '0.3', '--out', str(out)])
    # input, ground truth and two model panels of 128 px, 3 gaps
    assert picture.shape[1] == 4 * 128 + 3 * tool.GAP
    assert np.array_equal(cv2.imread(str(out)), picture)
    with pytest.raises(tool.ToolInputError, match='outside'):
        tool.main([str(tmp_path / 'img.png'), *model_args, '--crop', '500,0,10,10'])


def test_labelme_ground_truth_keeps_crossing_chromosomes(tool, shared_data):
    """Both chromosomes of a real crossing pair become instances; their masks share the crossing."""
    path = str(shared_data / 'chromosome_pairs/val/grey0093810.json')
    img = cv2.imread(path[:-5] + '.png', cv2.IMREAD_UNCHANGED)
    polygons = tool.labelme_polygons(path)
    gt = tool.instances_from_polygons(polygons, img.shape[:2])
    assert len(gt) == len(polygons) == 2
    masks = np.zeros((2, *img.shape[:2]), bool)
    for mask, (x0, y0), crop in zip(masks, gt.offsets, gt.crops):
        mask[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    assert (masks[0] & masks[1]).sum() > 20  # the crossing pixels are in both
    assert all(crop.sum() > 300 for crop in gt.crops)
    with pytest.raises(tool.ToolInputError, match='LabelMe'):
        tool.labelme_polygons(path[:-5] + '.png')
