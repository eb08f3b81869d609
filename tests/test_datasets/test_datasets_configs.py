"""Every dataset config base builds its datasets and runs its full pipelines on real data."""
import copy

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from test_datasets_pannuke import fake_fold  # noqa: F401  (fixture)

import a2bis_mm  # noqa: F401
from a2bis_mm.structures.a2b_targets import OVERLAP_SENTINEL

init_default_scope('mmdet')
CONFIGS = {  # config -> (train images, val images, num_classes, packed train input size)
    'cpm15-256': (9, 3, 1, (256, 256)),
    'consep-256': (411, 160, 4, (256, 256)),  # 21 of 432 train patches have no nucleus
    'gbm40-256': (30, 5, 1, (256, 256)),
    'chromosome-512': (37, 9, 1, (510, 512)),
}


def _build(cfg, loader, data_root):
    ds_cfg = copy.deepcopy(cfg[loader]['dataset'])
    ds_cfg['data_root'] = str(data_root)
    return DATASETS.build(ds_cfg)


def _check_packed(sample, num_classes, size):
    inputs, ds = sample['inputs'], sample['data_samples']
    h, w = inputs.shape[1:]
    assert inputs.dtype == torch.uint8 and inputs.shape[0] == 3
    assert sorted((h, w)) == sorted(size)  # RandomRot90 may transpose
    n = len(ds.gt_instances)
    assert n == ds.gt_instances.masks.masks.shape[0] > 0
    assert int(ds.gt_instances.labels.max()) < num_classes
    sem = ds.gt_sem_seg.sem_seg.numpy()
    assert sem.shape[-2:] == (h // 2, w // 2)
    assert np.all((sem <= num_classes) | (sem == OVERLAP_SENTINEL))
    assert np.isclose(ds.gt_skeleton.heatmap.numpy().max(), 1.0)


@pytest.mark.parametrize('name', list(CONFIGS))
def test_config_pipelines_on_real_data(name, repo_root, shared_data):
    cfg = Config.fromfile(repo_root / 'configs' / '_base_' / 'datasets' / f'{name}.py')
    n_train, n_val, num_classes, size = CONFIGS[name]
    folder = cfg.data_root.rstrip('/').split('/')[-1]
    assert cfg.data_root == f'../shared/data/{folder}/'
    assert [e['type'] for e in cfg.val_evaluator] == ['PanopticQualityMetric',
                                                      'InstanceAP50Metric', 'InstanceErrorMetric']
    train = _build(cfg, 'train_dataloader', shared_data / folder)
    val = _build(cfg, 'val_dataloader', shared_data / folder)
    assert (len(train), len(val)) == (n_train, n_val)
    np.random.seed(0)
    _check_packed(train[0], num_classes, size)
    sample = val[0]
    meta = sample['data_samples'].metainfo
    ori = meta['ori_shape']
    masks = sample['data_samples'].gt_instances.masks
    assert len(masks) > 0 and (masks.height, masks.width) == ori  # GT at the original scale
    if name == 'chromosome-512':
        assert meta['scale_factor'][0] == pytest.approx(512 / 211, rel=1e-2)
        assert tuple(sample['inputs'].shape[1:]) == (510, 512)


def test_pannuke_config_on_fake_fold(repo_root, fake_fold):  # noqa: F811
    root = fake_fold[0]
    cfg = Config.fromfile(repo_root / 'configs' / '_base_' / 'datasets' / 'pannuke-256.py')
    cfg.train_dataloader.dataset.folds = ['Fold 1']
    train = _build(cfg, 'train_dataloader', root)
    cfg.val_dataloader.dataset.folds = ['fold2']
    val = _build(cfg, 'val_dataloader', root)
    _check_packed(train[0], 5, (256, 256))
    assert train[1]['data_samples'].tissue == 'Breast'
    assert val[2]['data_samples'].metainfo['tissue'] == 'Colon'


def test_chromseg_ssl_variant_maps_24_classes(repo_root):
    cfg = Config.fromfile(repo_root / 'configs' / '_base_' / 'datasets' / 'chromseg-ssl-512.py')
    ds = cfg.train_dataloader.dataset
    assert len(ds.metainfo['classes']) == 24 and ds.data_prefix.img == 'train_labelme/'
    assert ds.label_map['22'] == 21 and ds.label_map['24'] == 'Y'
    assert cfg.num_classes == 24  # what a model config sets as mask_head.num_classes
    targets = [t for t in ds.pipeline if t['type'] == 'GenerateA2BTargets']
    assert len(targets) == 1 and 'num_classes' not in targets[0]  # the model owns it
    assert cfg.val_dataloader.dataset.pipeline[2]['type'] == 'LoadAnnotations'  # after Resize
