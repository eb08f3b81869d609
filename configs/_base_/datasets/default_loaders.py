# The dataloader and evaluator blocks every data set config shares (change the evaluators here, once).
# A data set config inherits this file and fills in its dataset (type, data_root, metainfo, files,
# pipeline) in train_dataloader / val_dataloader, then sets `test_dataloader = val_dataloader`.
backend_args = None

train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(test_mode=True, backend_args=backend_args))
test_dataloader = val_dataloader

# bPQ / mPQ / mPQ+ (PanNuke semantics), mask / rotated-box AP50 and where instances are lost
# (docs/metrics.md)
val_evaluator = [
    dict(type='PanopticQualityMetric'),
    dict(type='InstanceAP50Metric'),
    dict(type='InstanceErrorMetric'),
]
test_evaluator = val_evaluator

# PackA2BInputs' meta keys at test time (the default ones minus the flip / homography keys)
test_meta_keys = ('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')
