# The embedded synthetic smoke-test set (a2bis_mm/datasets/synthetic.py): NOT a benchmark.
# Generate it with `python tools/dataset_converters/make_synthetic.py` (the demo script does).
_base_ = './default_loaders.py'

dataset_type = 'CocoDataset'
data_root = 'data/synthetic/'
classes = ('bright_nucleus', 'dark_nucleus', 'rod')
metainfo = dict(classes=classes)
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='PackA2BInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackA2BInputs', meta_keys=_base_.test_meta_keys),
]

# small images: no worker processes
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='train.json',
        data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='val.json',
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
