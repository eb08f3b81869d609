# SSL-IS data (docs/ssl.md): labelled chromosome_pairs + an unlabeled image folder (the real
# metaphases in ../shared/data/metaphase_unlabeled), mixed 1 + 1 per batch as the reference.
# One geometric augmentation per unlabeled image is applied before MultiBranch, so the teacher
# and student views share it; each view then gets its own photometric draw and the JET input.
# Point the unlabeled source at any image folder with
#   --cfg-options train_dataloader.dataset.datasets.1.data_root=/path/to/images/
_base_ = './chromosome-512.py'

unlabeled_root = '../shared/data/metaphase_unlabeled/'
input_size = 512
branch_field = ['sup', 'unsup_teacher', 'unsup_student']
# source_ratio = [labelled, unlabeled] images per batch (the paper: 1 + 1 for chromosomes)
source_ratio = [1, 1]

sup_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='GenerateA2BTargets', stride=2),
    dict(type='JetColormap'),
    dict(type='MultiBranch', branch_field=branch_field, sup=[dict(type='PackA2BInputs')]),
]
# each branch builds its own perturbation, so the two views draw independently
unsup_view = [
    dict(type='A2BPhotometricPerturb'),
    dict(type='JetColormap'),
    dict(type='PackA2BInputs'),
]
unsup_pipeline = [
    dict(type='LoadMicroscopyImage', backend_args=_base_.backend_args),
    dict(type='Resize', scale=(input_size, input_size), keep_ratio=True),
    dict(type='RandomFlip', prob=[0.25, 0.25], direction=['horizontal', 'vertical']),
    dict(type='RandomRot90', prob=0.75),
    dict(type='MultiBranch', branch_field=branch_field, unsup_teacher=unsup_view,
         unsup_student=unsup_view),
]

labeled_dataset = dict(
    type=_base_.dataset_type,
    data_root=_base_.data_root,
    metainfo=_base_.metainfo,
    data_prefix=dict(img='train/'),
    filter_cfg=dict(filter_empty_gt=True),
    pipeline=sup_pipeline)
unlabeled_dataset = dict(
    type='UnlabeledImageFolderDataset',
    data_root=unlabeled_root,
    metainfo=_base_.metainfo,  # ConcatDataset needs equal metainfo
    pipeline=unsup_pipeline)

train_dataloader = dict(
    _delete_=True,
    batch_size=sum(source_ratio),
    num_workers=2,
    persistent_workers=True,
    # groups images by aspect ratio (w < h vs w >= h): every group present in one source must
    # be present in the other, or it waits forever for that source (see docs/ssl.md)
    sampler=dict(type='GroupMultiSourceSampler', batch_size=sum(source_ratio),
                 source_ratio=source_ratio),
    dataset=dict(type='ConcatDataset', datasets=[labeled_dataset, unlabeled_dataset]))
