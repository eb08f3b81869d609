# PanNuke (official fold files, 256x256 H&E, 5 classes, 19 tissues), as in the paper: folds 1+2
# train, fold 3 test. Nothing is decoded at start-up: LoadMicroscopyImage and
# LoadPanNukeAnnotations read each sample from the memory-mapped images.npy / masks.npy. The
# tissue type travels in the metainfo ('tissue') for tissue-averaged PQ. Not in ../shared/data:
# see docs/datasets.md to get it. Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
dataset_type = 'PanNukeDataset'
data_root = 'data/pannuke/'
classes = ('neoplastic', 'inflammatory', 'connective', 'dead', 'epithelial')
metainfo = dict(classes=classes)
num_classes = len(classes)
backend_args = None

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=backend_args),  # float RGB rows
    dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', num_classes=num_classes, stride=2),
    dict(type='PackA2BInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                    'flip_direction', 'homography_matrix', 'tissue')),
]
test_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=backend_args),
    dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackA2BInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'tissue')),
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
        folds=['Fold 1', 'Fold 2'],
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
        folds=['Fold 3'],
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='PanopticQualityMetric'),
    dict(type='InstanceAP50Metric'),
]
test_evaluator = val_evaluator
