# A2B-IS with a Swin-T backbone (paper Table VI) on CoNSeP 256: mmdet's SwinTransformer, brought to
# stride 2 by A2BUpsampleNeck (128 channels). Trained from scratch; with ImageNet weights add
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./a2bis-t_a2b_50e_consep-256.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        embed_dims=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        init_cfg=None),
    neck=dict(_delete_=True, type='A2BUpsampleNeck', in_channels=[96, 192, 384, 768],
              out_channels=128))
