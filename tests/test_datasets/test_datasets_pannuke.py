"""PanNukeDataset on a fake 3-image fold built from real consep256 pixels, and pannuke2coco."""
import importlib.util

import numpy as np
import pytest
from conftest import CONSEP_TO_PANNUKE_CHANNEL as CONSEP_TO_CHANNEL
from conftest import PANNUKE_TISSUES as TISSUES
from conftest import write_pannuke_fold
from mmdet.registry import DATASETS
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401

init_default_scope('mmdet')

PIPELINE = [dict(type='LoadMicroscopyImage'),
            dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True)]


@pytest.fixture(scope='module')
def fake_fold(pannuke_arrays, tmp_path_factory):
    """A fold in the official nested layout; returns (root, images RGB, inst maps, class maps)."""
    root = tmp_path_factory.mktemp('pannuke')
    write_pannuke_fold(root / 'Fold 1', pannuke_arrays)
    write_pannuke_fold(root / 'fold2', pannuke_arrays, nested=False)  # the same fold, flat, as a second one
    return root, pannuke_arrays['images'], pannuke_arrays['inst'], pannuke_arrays['cls']


def test_fold_loads_lazily_with_tissue_and_classes(fake_fold):
    root, rgb, inst, cls = fake_fold
    ds = DATASETS.build(dict(type='PanNukeDataset', data_root=str(root),
                             folds=['Fold 1', 'fold2'], pipeline=PIPELINE))
    assert len(ds) == 6
    info = ds.get_data_info(4)
    assert info['tissue'] == 'Breast' and info['npy_index'] == 1 and info['img_id'] == 'fold2_1'
    assert 'instances' not in info  # annotations are read from the memory map per sample
    for i in range(3):
        sample = ds[i]
        np.testing.assert_array_equal(sample['img'], rgb[i][..., ::-1].astype(np.uint8))
        assert sample['tissue'] == TISSUES[i]
        ids = np.unique(inst[i])[1:]
        assert len(sample['gt_masks']) == len(ids)
        expected = sorted(CONSEP_TO_CHANNEL[np.bincount(cls[i][inst[i] == k]).argmax()]
                          for k in ids)
        assert sorted(sample['gt_bboxes_labels'].tolist()) == expected
        union = sample['gt_masks'].masks.sum(0)
        np.testing.assert_array_equal(union, inst[i] > 0)
    assert ds.metainfo['classes'][2] == 'connective'


def test_bad_folds_raise_clear_errors(fake_fold, tmp_path):
    root, rgb, *_ = fake_fold
    with pytest.raises(FileNotFoundError, match='Fold 9'):
        DATASETS.build(dict(type='PanNukeDataset', data_root=str(root), folds=['Fold 9']))
    np.save(tmp_path / 'images.npy', rgb)
    np.save(tmp_path / 'masks.npy', np.zeros((2, 256, 256, 6)))
    np.save(tmp_path / 'types.npy', np.array(TISSUES))
    with pytest.raises(ValueError, match=r'masks \(2, 256, 256, 6\)'):
        DATASETS.build(dict(type='PanNukeDataset', folds=[str(tmp_path)]))
    with pytest.raises(ValueError, match='non-empty list'):
        DATASETS.build(dict(type='PanNukeDataset', folds='Fold 1'))


def test_pannuke2coco_round_trip(fake_fold, repo_root, tmp_path):
    root, rgb, inst, _ = fake_fold
    spec = importlib.util.spec_from_file_location(
        'pannuke2coco', repo_root / 'tools' / 'dataset_converters' / 'pannuke2coco.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    coco = module.convert([str(root / 'Fold 1')], str(tmp_path), 'test')
    assert [im['tissue'] for im in coco['images']] == list(TISSUES)
    ds = DATASETS.build(dict(
        type='CocoDataset', data_root=str(tmp_path), ann_file='test.json',
        data_prefix=dict(img='images/'), metainfo=dict(classes=a2bis_mm.datasets.PANNUKE_CLASSES),
        test_mode=True,
        pipeline=[dict(type='LoadMicroscopyImage'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True)]))
    direct = DATASETS.build(dict(type='PanNukeDataset', data_root=str(root), folds=['Fold 1'],
                                 pipeline=PIPELINE))
    for i in range(3):
        a, b = ds[i], direct[i]
        np.testing.assert_array_equal(a['img'], b['img'])  # PNG is lossless
        assert a['gt_bboxes_labels'].tolist() == b['gt_bboxes_labels'].tolist()
        np.testing.assert_array_equal(a['gt_masks'].masks, b['gt_masks'].masks)
        np.testing.assert_allclose(a['gt_bboxes'].numpy(), b['gt_bboxes'].numpy())
    assert len(coco['annotations']) == sum(len(np.unique(m)) - 1 for m in inst)
