# A2B-IS with A2BNet-T (docs/model.md): one A2BISHead at stride 2 on the 128-channel backbone map.
# S/B/L configs override backbone.arch and mask_head.in_channels (C4 = 256 / 512 / 768). The class
# count has no default: every config sets mask_head.num_classes once, from its data set's classes.
model = dict(
    type='A2BIS',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # H&E default (docs/model.md, D9); the chromosome configs feed JET colours in 0-255
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        # a multiple of mask_head.stride: the targets of every image then line up with the
        # padded feature map (checked by A2BIS)
        pad_size_divisor=2,
        pad_mask=False,
        pad_seg=False,
        # keep RotatedBoxes (mmdet would turn them into plain tensors)
        boxtype2tensor=False),
    backbone=dict(type='A2BNet', arch='T'),
    neck=None,
    mask_head=dict(
        type='A2BISHead',
        num_classes=None,  # set by each config: len(classes) of its data set
        in_channels=128,
        feat_channels=256,
        stride=2,
        anchor_size=3.0,
        bbox_coder=dict(
            type='mmrotate.DeltaXYWHTRBBoxCoder', angle_version='oc', use_box_type=False),
        loss_skeleton=dict(type='GaussianFocalLoss', alpha=2.0, gamma=4.0, loss_weight=1.0),
        loss_ce=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0),
        loss_dice=dict(
            type='DiceLoss', use_sigmoid=False, activate=False, naive_dice=True, eps=1e-5,
            loss_weight=4.0),
        loss_bbox=dict(type='A2BKLDLoss', tau=1.0, loss_weight=2.0),
        ce_pixel_skeleton_weight=False,
        dice_log_cosh=False,
        # full-resolution foreground / overlap branch (docs/decoder.md): masks at input
        # resolution; mask_head.fullres=None is the paper's architecture (three branches)
        fullres=dict(feat_channels=32, img_channels=16, bce_weight=2.0)),
    train_cfg=dict(anchor_thr=0.2, assign_mode='max_iou', use_anchor_weight=True),
    # decoders (docs/decoder.md): flat keys for both, then the sub-dict of the chosen one;
    # decoder='paper' gives the reference code's post-processing (docs/model.md, D7)
    test_cfg=dict(
        decoder='vote',
        score_thr=0.01,
        nms_pre=2000,
        max_per_img=300,
        mask_thr=0.5,
        vote=dict(nms=dict(type='nms_rotated', iou_threshold=0.5), cap_area=256 * 256),
        paper=dict(
            nms=dict(type='nms_rotated', iou_threshold=0.25),
            box_grow=2.0,
            mask_postprocess=True,
            skeleton_gate=None)))
