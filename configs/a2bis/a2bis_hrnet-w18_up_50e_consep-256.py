# A2B-IS with an HRNetV2-W18 backbone (paper Table VI) on CoNSeP 256: mmdet's HRNet (four branches
# at strides 4-32), fused and brought to stride 2 by A2BUpsampleNeck (128 channels). Trained from
# scratch; with ImageNet weights add
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=PATH
_base_ = ['./a2bis-t_a2b_50e_consep-256.py']
model = dict(
    backbone=dict(
        _delete_=True,
        type='HRNet',
        extra=dict(
            stage1=dict(num_modules=1, num_branches=1, block='BOTTLENECK', num_blocks=(4, ),
                        num_channels=(64, )),
            stage2=dict(num_modules=1, num_branches=2, block='BASIC', num_blocks=(4, 4),
                        num_channels=(18, 36)),
            stage3=dict(num_modules=4, num_branches=3, block='BASIC', num_blocks=(4, 4, 4),
                        num_channels=(18, 36, 72)),
            stage4=dict(num_modules=3, num_branches=4, block='BASIC', num_blocks=(4, 4, 4, 4),
                        num_channels=(18, 36, 72, 144))),
        init_cfg=None),
    neck=dict(_delete_=True, type='A2BUpsampleNeck', in_channels=[18, 36, 72, 144],
              out_channels=128))
