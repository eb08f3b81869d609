# SSL-IS data for PanNuke (the paper's setting, docs/ssl.md): labelled folds 1 + 2 and a
# folder of unlabeled 256x256 H&E images, 2 labelled + 1 unlabeled per batch. The teacher and
# student views share the flips/rotation and draw their brightness/contrast independently.
# PanNuke is not in ../shared/data (docs/datasets.md); point the folder elsewhere with
#   --cfg-options train_dataloader.dataset.datasets.1.data_root=/path/to/images/
_base_ = './pannuke-256.py'

unlabeled_root = 'data/pannuke_unlabeled/'
branch_field = ['sup', 'unsup_teacher', 'unsup_student']
source_ratio = [2, 1]

sup_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='LoadPanNukeAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='MultiBranch', branch_field=branch_field,
         sup=[dict(type='PackA2BInputs', meta_keys=_base_.train_meta_keys)]),
]
unsup_view = [dict(type='A2BPhotometricPerturb'), dict(type='PackA2BInputs')]
unsup_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='MultiBranch', branch_field=branch_field, unsup_teacher=unsup_view,
         unsup_student=unsup_view),
]

labeled_dataset = dict(
    type=_base_.dataset_type,
    data_root=_base_.data_root,
    metainfo=_base_.metainfo,
    folds=['Fold 1', 'Fold 2'],
    pipeline=sup_pipeline)
unlabeled_dataset = dict(
    type='UnlabeledImageFolderDataset',
    data_root=unlabeled_root,
    metainfo=_base_.metainfo,
    pipeline=unsup_pipeline)

train_dataloader = dict(
    _delete_=True,
    batch_size=sum(source_ratio),
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='GroupMultiSourceSampler', batch_size=sum(source_ratio),
                 source_ratio=source_ratio),
    dataset=dict(type='ConcatDataset', datasets=[labeled_dataset, unlabeled_dataset]))
