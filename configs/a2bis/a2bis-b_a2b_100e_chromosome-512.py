# A2B-IS-B on the chromosome pairs at 512: A2BNet-B (C4 = 512), otherwise as the T config.
_base_ = './a2bis-t_a2b_100e_chromosome-512.py'
model = dict(
    backbone=dict(arch='B'),
    mask_head=dict(in_channels=512))
