# CPM-15 (MICCAI 2015 nuclei): 12 real H&E tiles (RGBA PNG) + 16-bit instance maps, one class.
# Read straight from the label maps by InstanceMapDataset; image01-09 train (random 256 crops),
# image10-12 validation (whole tiles). Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = './default_loaders.py'

dataset_type = 'InstanceMapDataset'
data_root = '../shared/data/cpm15/'
classes = ('nucleus', )
metainfo = dict(classes=classes)
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),  # RGBA -> RGB
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),  # RLE from the label maps
    # mmdet's RandomCrop crops masks too; nuclei cut by the tile border are kept, boxes are
    # recomputed from the cropped masks, and FilterAnnotations drops remnants under 20 px.
    dict(type='RandomCrop', crop_size=(256, 256), recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_mask_area=20, by_box=False, by_mask=True,
         keep_empty=False),
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
        data_prefix=dict(img='images/', ann='labels/'),
        split=[f'image{i:02d}' for i in range(1, 10)],
        filter_cfg=dict(filter_empty_gt=True),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img='images/', ann='labels/'),
        split=['image10', 'image11', 'image12'],
        pipeline=test_pipeline))
test_dataloader = val_dataloader
