# A2B-IS-T on the chromosome pairs (real DAPI chromosomes, 1 class + overlap) resized to 512, as
# the reference trains on metaphases: grey -> JET colours fed raw in 0-255 (docs/model.md D9, no mean/std,
# BGR as cv2.applyColorMap returns it), 100 epochs of Adam 1e-4 with lr x0.97 per epoch.
_base_ = [
    '../_base_/models/a2bis_a2bnet-t.py', '../_base_/datasets/chromosome-512.py',
    '../_base_/schedules/adam_exp_50e.py', '../_base_/default_runtime.py'
]
model = dict(
    data_preprocessor=dict(mean=[0., 0., 0.], std=[1., 1., 1.], bgr_to_rgb=False),
    mask_head=dict(num_classes=_base_.num_classes))
train_cfg = dict(max_epochs=100, val_interval=10)
