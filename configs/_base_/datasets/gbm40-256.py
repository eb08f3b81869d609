# GBM40: 35 real 512x512 H&E glioblastoma tiles (TCGA), nucleus polygons in COCO JSON, one class.
# mmdet CocoDataset loads the polygons (kept as PolygonMasks: poly2mask=False); random 256 crops for
# training, whole 512 tiles for validation. Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = './default_loaders.py'

dataset_type = 'CocoDataset'
data_root = '../shared/data/gbm40/'
classes = ('nucleus', )
metainfo = dict(classes=classes)
num_classes = len(classes)

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),  # 8-bit RGB TIFF
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    # mmdet's RandomCrop crops polygons too (shapely); nuclei cut by the tile border are kept,
    # boxes are recomputed from the cropped masks, and FilterAnnotations drops remnants under 20 px.
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
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
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
