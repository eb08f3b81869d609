# The demo (tools/run_demo.sh): the tiny A2B-IS with three atrous branches per block (dilations
# 1-3: a wider receptive field for the rods' boxes) trained 1000 iterations on the synthetic set
# generated at 128x128 (`make_synthetic.py --size 128`: whole images fit the inherited 128x128
# crop, so no rod is cut). docs/model.md has its time and metrics; not a benchmark.
# The box loss is the symmetric (Jeffreys) divergence: the paper's KL(pred || target) makes the rods'
# boxes too short (docs/model.md, box loss).
_base_ = ['./a2bis-tiny_a2b_300i_synthetic.py']
model = dict(
    backbone=dict(arch=dict(num_asa=[3, 3, 3, 3])),
    mask_head=dict(loss_bbox=dict(divergence='jeffreys')))

max_iters = 1000
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[int(0.8 * max_iters)], gamma=0.1)
]
default_hooks = dict(logger=dict(interval=100), checkpoint=dict(interval=max_iters))
