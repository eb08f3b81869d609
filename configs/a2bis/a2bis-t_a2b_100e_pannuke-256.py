# A2B-IS-T on PanNuke 256 (folds 1+2 train, fold 3 test), the paper's setting: 100 epochs of
# Adam 1e-4 with lr x0.97 per epoch, H&E mean/std input (docs/model.md D9), predictions at 128x128.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/pannuke-256.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
model = dict(
    mask_head=dict(num_classes=_base_.num_classes))
train_cfg = dict(max_epochs=100, val_interval=10)
