# PanNuke (official fold files, 256x256 H&E, 5 classes, 19 tissues), as in the paper: folds 1+2
# train, fold 3 test. Nothing is decoded at start-up: LoadMicroscopyImage and
# LoadPanNukeAnnotations read each sample from the memory-mapped images.npy / masks.npy. The
# tissue type travels in the metainfo ('tissue') for tissue-averaged PQ. Not in ../shared/data:
# see docs/datasets.md to get it. Point elsewhere with
#   --cfg-options train_dataloader.dataset.data_root=... val_dataloader.dataset.data_root=...
_base_ = './default_loaders.py'

dataset_type = 'PanNukeDataset'
data_root = 'data/pannuke/'
classes = ('neoplastic', 'inflammatory', 'connective', 'dead', 'epithelial')
metainfo = dict(classes=classes)
num_classes = len(classes)
# PackA2BInputs' default meta keys + the tissue (train) / the test meta keys + the tissue (test)
train_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'homography_matrix', 'tissue')
test_meta_keys = _base_.test_meta_keys + ('tissue', )

train_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),  # float RGB rows
    dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='PackA2BInputs', meta_keys=train_meta_keys),
]
test_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackA2BInputs', meta_keys=test_meta_keys),
]

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        folds=['Fold 1', 'Fold 2'],
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        folds=['Fold 3'],
        pipeline=test_pipeline))
test_dataloader = val_dataloader
