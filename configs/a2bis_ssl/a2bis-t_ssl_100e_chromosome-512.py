# SSL-IS (docs/ssl.md) with A2BNet-T on chromosome_pairs (labelled) + the real metaphase folder
# (unlabeled), 1 + 1 per batch, 512 input, JET fed unnormalised (docs/model.md, D9), 100 epochs.
_base_ = ['../_base_/sslis_a2bnet-t.py', '../_base_/datasets/chromosome-512_ssl.py']

jet_input = dict(mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False)
model = dict(
    detector=dict(data_preprocessor=jet_input, mask_head=dict(num_classes=_base_.num_classes)),
    data_preprocessor=dict(data_preprocessor=jet_input))

# An epoch of the reference = len(labelled train) / labelled per batch = 37 steps; 100 epochs.
epoch_iters = 37
max_iters = 100 * epoch_iters
train_cfg = dict(max_iters=max_iters, val_interval=10 * epoch_iters)
param_scheduler = [
    dict(type='StepLR', by_epoch=False, step_size=epoch_iters, gamma=0.97, end=max_iters)
]
default_hooks = dict(checkpoint=dict(interval=10 * epoch_iters))
