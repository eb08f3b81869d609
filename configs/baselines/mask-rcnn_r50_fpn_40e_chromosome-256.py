# Mask R-CNN R50-FPN on the chromosome pairs resized to 256 (1 class), trained from scratch for 40 epochs:
# the equal-budget comparison with configs/a2bis/a2bis-t_a2b_40e_chromosome-256.py (docs/benchmarks.md).
# The model, 256x256 pipelines (same augmentation as A2B-IS) and runtime of the consep-256 baseline, with
# the chromosome data set and the chromosome evaluators (overlap-aware PQ: the two chromosomes of an image
# may share pixels).
_base_ = ['./mask-rcnn_r50_fpn_50e_consep-256.py']

data_root = '../shared/data/chromosome_pairs/'
classes = ('chromosome', )
metainfo = dict(classes=classes)
model = dict(
    roi_head=dict(bbox_head=dict(num_classes=len(classes)), mask_head=dict(num_classes=len(classes))))

__labelme = dict(_delete_=True, type='LabelMeDataset', data_root=data_root, metainfo=metainfo)
train_dataloader = dict(dataset=dict(
    **__labelme, data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=True),
    pipeline=_base_.train_pipeline))
val_dataloader = dict(dataset=dict(
    **__labelme, data_prefix=dict(img='val/'), test_mode=True, pipeline=_base_.test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='PanopticQualityMetric', overlap_aware=True),
    dict(type='InstanceAP50Metric'),
    dict(type='InstanceErrorMetric'),
]
test_evaluator = val_evaluator

# 40 epochs of 37 images (10 iterations of 4): mmdet's 1x shape (x0.1 at 2/3 and 11/12 of the run), with
# the linear warm-up over the first 100 images (25 iterations; mmdet's 500 would cover the whole run)
max_epochs = 40
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=25),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[27, 37], gamma=0.1),
]
default_hooks = dict(checkpoint=dict(interval=5))
