# A2B-IS with a ConvNeXt-T backbone (paper Table VI) on CoNSeP 256, brought to stride 2 by
# A2BUpsampleNeck (128 channels). mmdet takes ConvNeXt from mmpretrain (installed by tools/install.sh,
# docs/install.md). Trained from scratch; with ImageNet weights add
#   --cfg-options model.backbone.init_cfg._delete_=True model.backbone.init_cfg.type=Pretrained \
#       model.backbone.init_cfg.checkpoint=PATH model.backbone.init_cfg.prefix=backbone.
_base_ = ['./a2bis-t_a2b_50e_consep-256.py']
custom_imports = dict(imports=['a2bis_mm', 'mmrotate.models', 'mmpretrain.models'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmpretrain.ConvNeXt',
        arch='tiny',
        out_indices=[0, 1, 2, 3],
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        gap_before_final_norm=False,
        init_cfg=None),
    neck=dict(_delete_=True, type='A2BUpsampleNeck', in_channels=[96, 192, 384, 768],
              out_channels=128))
