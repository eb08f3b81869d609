# SSL-IS (spec D6, Part B §5) with A2BNet-T on PanNuke folds 1 + 2 (labelled) + a folder of
# unlabeled H&E tiles, 2 + 1 per batch, 256 input, mean/std normalised (D9), evaluated on fold 3.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/pannuke-256_ssl.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
detector = _base_.model
detector.mask_head.num_classes = {{_base_.num_classes}}

model = dict(
    _delete_=True,
    type='A2BISSemi',
    detector=detector,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor', data_preprocessor=detector.data_preprocessor),
    semi_train_cfg=dict(
        variant='sslis', sup_weight=1.0, unsup_weight=1.0, thr=0.05, min_pixels=100,
        reference_channels=False),
    semi_test_cfg=dict(predict_on='teacher'))

# 100 epochs of len(folds 1 + 2) / 2 labelled images per step (5,179 / 2 -> 2,590 steps);
# lr x0.97 per epoch, staircase (spec B §7).
epoch_iters = 2590
max_iters = 100 * epoch_iters
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=10 * epoch_iters)
val_cfg = dict(_delete_=True, type='TeacherStudentValLoop')
param_scheduler = [
    dict(type='StepLR', by_epoch=False, step_size=epoch_iters, gamma=0.97, end=max_iters)
]
custom_hooks = [dict(type='MeanTeacherHook', momentum=0.01, interval=1)]
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=10 * epoch_iters, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
