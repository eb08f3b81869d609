# Reference optimisation (docs/model.md): Adam(1e-4, eps 1e-7), no weight decay, no clipping,
# learning rate x0.97 after every epoch (staircase).
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=50, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

# bf16 autocast + channels_last (MixedPrecisionOptimWrapper, docs/benchmarks.md): ~3-4x faster
# steps on CPUs with native bf16 (avx512_bf16/AMX) at the same loss curve and metrics; AMP on CUDA;
# float32 with one log line on CPUs without native bf16. optim_wrapper.dtype='float32' turns it off.
optim_wrapper = dict(
    type='MixedPrecisionOptimWrapper',
    dtype='bfloat16',
    channels_last=True,
    optimizer=dict(type='Adam', lr=1e-4, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.))

param_scheduler = [dict(type='ExponentialLR', gamma=0.97, by_epoch=True)]

# base_batch_size documents the reference's batch; enable auto_scale_lr to rescale lr.
auto_scale_lr = dict(enable=False, base_batch_size=2)
