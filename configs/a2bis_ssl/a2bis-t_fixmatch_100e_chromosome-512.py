# FixMatch comparison of the paper's Fig. 12 (docs/ssl.md): one model (shared weights, no EMA);
# its prediction on the weak (unperturbed) view gives pseudo-labels for the strong (perturbed)
# view: CE on seg where the weak max probability > 0.5 (>= 100 px) + masked MSE on [S, deltas]
# (reference_channels=True: [S, dx], what the reference computed).
_base_ = './a2bis-t_ssl_100e_chromosome-512.py'

weak_view = [dict(type='JetColormap'), dict(type='PackA2BInputs')]
unsup_pipeline = _base_.unsup_pipeline
unsup_pipeline[-1] = dict(type='MultiBranch', branch_field=_base_.branch_field,
                          unsup_teacher=weak_view, unsup_student=_base_.unsup_view)
unlabeled_dataset = _base_.unlabeled_dataset
unlabeled_dataset.pipeline = unsup_pipeline
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))

model = dict(semi_train_cfg=dict(variant='fixmatch', fixmatch_conf_thr=0.5))
custom_hooks = []  # no teacher to average
val_cfg = dict(type='ValLoop')  # teacher and student are the same model
