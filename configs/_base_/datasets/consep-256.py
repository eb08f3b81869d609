# CoNSeP 256x256 patches (real H&E, 4 nucleus classes as HoVer-Net merges them), COCO JSON with
# RLE masks read by mmdet's CocoDataset (RLE needs poly2mask=True, LoadAnnotations' default).
# The same data loads from the label maps with InstanceMapDataset(inst_suffix='_inst.png',
# class_suffix='_class.png'). Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
dataset_type = 'CocoDataset'
data_root = '../shared/data/consep256/'
classes = ('other', 'inflammatory', 'epithelial', 'spindle-shaped')
metainfo = dict(classes=classes)
num_classes = len(classes)
backend_args = None

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=backend_args),  # JPEG patches
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', num_classes=num_classes, stride=2),
    dict(type='PackA2BInputs'),
]
test_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackA2BInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='train.json', data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='val.json', data_prefix=dict(img='images/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='PanopticQualityMetric'),
    dict(type='InstanceAP50Metric'),
]
test_evaluator = val_evaluator
