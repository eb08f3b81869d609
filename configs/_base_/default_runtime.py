# Runtime shared by every a2bis-mm config (A2B-IS and baselines), in mmdet's form.
default_scope = 'mmdet'
# Registers A2B-IS modules, mmrotate's RotatedBoxes and the torch>=2.6 checkpoint loader.
custom_imports = dict(imports=['a2bis_mm', 'mmrotate.models'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=10),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # max_keep_ckpts bounds disk use; save_last makes `--resume` pick up the newest state.
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_last=True),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)

vis_backends = [dict(type='LocalVisBackend')]
# The overlays of tools/infer.py (docs/inference.md): masks with contours at the image's own size, a legend;
# show_bboxes=True adds the (rotated) boxes.
visualizer = dict(type='A2BISLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=10, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0)
