# chromosome_pairs: real DAPI chromosomes composed into crossing pairs, 211x210 grey, LabelMe JSON
# (label 'chromosome', one class). Images are resized to 512 as the reference resizes metaphases;
# grey -> JET colour map before packing (docs/model.md, D9). Not ChromSeg-SSL: see chromseg-ssl-512.py.
# Point elsewhere with --cfg-options train_dataloader.dataset.data_root=... (and val_dataloader).
_base_ = './default_loaders.py'

dataset_type = 'LabelMeDataset'
data_root = '../shared/data/chromosome_pairs/'
classes = ('chromosome', )
metainfo = dict(classes=classes)
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),  # grey -> 3 channels
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='JetColormap'),
    dict(type='PackA2BInputs'),
]
test_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='Resize', scale=(512, 512), keep_ratio=True),
    # after Resize: the ground truth stays at the original scale (mmdet convention)
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='JetColormap'),
    dict(type='PackA2BInputs', meta_keys=_base_.test_meta_keys),
]

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

val_evaluator = [
    # crossing chromosomes overlap: PQ between instance masks, not painted maps (docs/metrics.md)
    dict(type='PanopticQualityMetric', overlap_aware=True),
    dict(type='InstanceAP50Metric'),
    dict(type='InstanceErrorMetric'),
]
test_evaluator = val_evaluator
