# Mean-Teacher comparison of the paper's Fig. 12 (docs/ssl.md): the EMA teacher and the student
# see the same unperturbed view, and the masked MSE is applied to the labelled images as well.
_base_ = './a2bis-t_ssl_100e_chromosome-512.py'

unsup_view = [dict(type='JetColormap'), dict(type='PackA2BInputs')]
unsup_pipeline = _base_.unsup_pipeline
unsup_pipeline[-1] = dict(type='MultiBranch', branch_field=_base_.branch_field,
                          unsup_teacher=unsup_view, unsup_student=unsup_view)
unlabeled_dataset = _base_.unlabeled_dataset
unlabeled_dataset.pipeline = unsup_pipeline
train_dataloader = dict(dataset=dict(datasets=[_base_.labeled_dataset, unlabeled_dataset]))

model = dict(semi_train_cfg=dict(variant='meanteacher'))
