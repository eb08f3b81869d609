# What every SSL-IS config shares (docs/ssl.md): the A2B-IS-T detector wrapped in A2BISSemi (an EMA
# teacher, decay 0.99, copied from the student when training starts; masked MSE on the unlabeled
# images), validation of both teacher and student (TeacherStudentValLoop; `predict_on` picks the one
# tools/test.py uses) and an iteration-counted schedule: the multi-source sampler never ends an
# epoch. A config adds an SSL data base (datasets/*_ssl.py) and the numbers that depend on its epoch
# length (`epoch_iters` labelled batches): train_cfg.max_iters / val_interval, the lr steps
# (param_scheduler, x0.97 per epoch as the reference) and the checkpoint interval.
_base_ = ['./models/a2bis_a2bnet-t.py', './schedules/adam_exp_50e.py', './default_runtime.py']

model = dict(
    _delete_=True,
    type='A2BISSemi',
    detector=_base_.model,
    data_preprocessor=dict(
        type='MultiBranchDataPreprocessor', data_preprocessor=_base_.model.data_preprocessor),
    semi_train_cfg=dict(
        variant='sslis', sup_weight=1.0, unsup_weight=1.0, thr=0.05, min_pixels=100,
        reference_channels=False),
    semi_test_cfg=dict(predict_on='teacher'))

train_cfg = dict(_delete_=True, type='IterBasedTrainLoop')
val_cfg = dict(_delete_=True, type='TeacherStudentValLoop')
custom_hooks = [dict(type='MeanTeacherHook', momentum=0.01, interval=1)]
default_hooks = dict(checkpoint=dict(by_epoch=False, max_keep_ckpts=3))
log_processor = dict(by_epoch=False)
