# SSL-IS (spec D6, Part B §5) with A2BNet-T on chromosome_pairs (labelled) + the real metaphase
# folder (unlabeled), 1 + 1 per batch, 512 input, JET fed unnormalised (D9). The teacher is the
# EMA (decay 0.99) of the student, copied from it when training starts; evaluation runs on both
# (TeacherStudentValLoop), `predict_on` picks the one tools/test.py uses.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/chromosome-512_ssl.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
num_classes = {{_base_.num_classes}}

detector = _base_.model
detector.data_preprocessor.update(mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False)
detector.mask_head.num_classes = num_classes

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

# An epoch of the reference = len(labelled train) / labelled per batch steps; the multi-source
# sampler is infinite, so the schedule counts iterations: 100 epochs of 37 steps, lr x0.97 per
# epoch (staircase, spec B §7).
epoch_iters = 37
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
