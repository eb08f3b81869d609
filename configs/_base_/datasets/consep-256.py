# CoNSeP 256x256 patches (real H&E, 4 nucleus classes as HoVer-Net merges them), COCO JSON with
# RLE masks read by mmdet's CocoDataset (RLE needs poly2mask=True, LoadAnnotations' default).
# The same data loads from the label maps with InstanceMapDataset(inst_suffix='_inst.png',
# class_suffix='_class.png'). Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = './default_loaders.py'

dataset_type = 'CocoDataset'
data_root = '../shared/data/consep256/'
classes = ('other', 'inflammatory', 'epithelial', 'spindle-shaped')
metainfo = dict(classes=classes)
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),  # JPEG patches
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='PackA2BInputs'),
]
test_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackA2BInputs', meta_keys=_base_.test_meta_keys),
]

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='train.json', data_prefix=dict(img='images/'),
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        ann_file='val.json', data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
