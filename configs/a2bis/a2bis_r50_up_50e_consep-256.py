# A2B-IS with a ResNet-50 backbone (paper Table VI) on CoNSeP 256: mmdet's ResNet, brought to
# stride 2 by A2BUpsampleNeck (128 channels, the A2BNet-T width the heads expect). Trained from
# scratch; with ImageNet weights add
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./a2bis-t_a2b_50e_consep-256.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(0, 1, 2, 3),
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=None),
    neck=dict(_delete_=True, type='A2BUpsampleNeck', in_channels=[256, 512, 1024, 2048],
              out_channels=128))
