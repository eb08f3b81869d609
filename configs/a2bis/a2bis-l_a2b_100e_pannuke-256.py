# A2B-IS-L on PanNuke 256: A2BNet-L (C4 = 768), otherwise as the T config.
_base_ = './a2bis-t_a2b_100e_pannuke-256.py'
model = dict(
    backbone=dict(arch='L'),
    mask_head=dict(in_channels=768))
