# A2B-IS-S on PanNuke 256: A2BNet-S (C4 = 256), otherwise as the T config.
_base_ = './a2bis-t_a2b_100e_pannuke-256.py'
model = dict(
    backbone=dict(arch='S'),
    mask_head=dict(in_channels=256))
