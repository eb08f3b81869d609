# A2B-IS-T on CoNSeP 256 patches (real H&E, 4 classes): the multi-class stand-in for PanNuke that
# lives in ../shared/data. 50 epochs of Adam 1e-4 with lr x0.97 per epoch, H&E mean/std input.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/consep-256.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
model = dict(
    mask_head=dict(num_classes=_base_.num_classes))
