"""Overfit A2B-IS on two real annotated images and report mask AP50 on those same images.

A model that cannot fit two images has a bug in its targets, losses or decoding; one that fits
them reaches mask AP50 close to 1. Trains on two LabelMe images of ``chromosome_pairs/train``
(crossing chromosomes, one class + overlap) at their native size, without augmentation, and
evaluates with ``InstanceAP50Metric`` (pycocotools segm AP at IoU 0.5).

Example:
    python tools/overfit_check.py --steps 300 --min-ap50 0.9
"""
import argparse
import os.path as osp
import sys
import time

import torch
from mmdet.registry import DATASETS, METRICS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401  registers the model, transforms and metrics

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_CONFIGS = {
    'tiny': 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py',
    'T': 'configs/a2bis/a2bis-t_a2b_100e_chromosome-512.py',
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--data-root', default=osp.join(REPO, '..', 'shared', 'data'),
                        help='folder holding chromosome_pairs/')
    parser.add_argument('--model', choices=sorted(MODEL_CONFIGS), default='tiny',
                        help='tiny (the synthetic demo model) or T (A2B-IS-T)')
    parser.add_argument('--images', type=int, nargs=2, default=[0, 1],
                        help='indices of the two images in chromosome_pairs/train (sorted)')
    parser.add_argument('--steps', type=int, default=300, help='training steps (batch = both)')
    parser.add_argument('--lr', type=float, default=2e-3, help='Adam learning rate')
    parser.add_argument('--eval-interval', type=int, default=100,
                        help='also report mask AP50 every this many steps')
    parser.add_argument('--min-ap50', type=float, default=None,
                        help='exit with status 1 when mask AP50 is below this value')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    return parser.parse_args()


def build_items(data_root: str, indices, test_mode: bool) -> list:
    """Pack the chosen images with the training targets or the test pipeline (no augmentation)."""
    folder = osp.join(data_root, 'chromosome_pairs')
    if not osp.isdir(osp.join(folder, 'train')):
        raise FileNotFoundError(f'{folder}/train does not exist (set --data-root)')
    # Resize by 1.0 keeps the native size and records scale_factor for predict(rescale=True)
    head = [dict(type='LoadMicroscopyImage'), dict(type='Resize', scale_factor=1.0),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=False)]
    if test_mode:
        tail = [dict(type='JetColormap'),
                dict(type='PackA2BInputs',
                     meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))]
    else:
        tail = [dict(type='GenerateA2BTargets', stride=2),
                dict(type='JetColormap'), dict(type='PackA2BInputs')]
    dataset = DATASETS.build(
        dict(type='LabelMeDataset', data_root=folder, data_prefix=dict(img='train/'),
             metainfo=dict(classes=('chromosome', )), test_mode=test_mode,
             pipeline=head + tail))
    for i in indices:
        if not 0 <= i < len(dataset):
            raise ValueError(f'--images index {i} is outside 0..{len(dataset) - 1} ({folder})')
    return [dataset[i] for i in indices]


def evaluate(model, test_items: list) -> dict:
    """Predict the packed test items and return ``InstanceAP50Metric``'s metrics."""
    model.eval()
    metric = METRICS.build(dict(type='InstanceAP50Metric'))
    metric.dataset_meta = dict(classes=('chromosome', ))
    with torch.no_grad():
        data = model.data_preprocessor(pseudo_collate(test_items), False)
        results = model(**data, mode='predict')
    metric.process(None, [r.to_dict() for r in results])
    return metric.compute_metrics(metric.results)


def main() -> int:
    args = parse_args()
    init_default_scope('mmdet')
    torch.manual_seed(args.seed)

    cfg = Config.fromfile(osp.join(REPO, MODEL_CONFIGS[args.model]))
    cfg.model.mask_head.num_classes = 1
    model = MODELS.build(cfg.model)
    model.init_weights()
    train_items = build_items(args.data_root, args.images, test_mode=False)
    test_items = build_items(args.data_root, args.images, test_mode=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, eps=1e-7)

    start = time.time()
    model.train()
    for step in range(1, args.steps + 1):
        data = model.data_preprocessor(pseudo_collate(train_items), True)
        losses = model(**data, mode='loss')
        loss = sum(losses.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step == 1 or step % 50 == 0 or step == args.steps:
            terms = ' '.join(f'{k}={v.item():.4f}' for k, v in losses.items())
            print(f'step {step}/{args.steps} loss={loss.item():.4f} {terms} '
                  f'({time.time() - start:.0f} s)', flush=True)
        if step % args.eval_interval == 0 and step < args.steps:
            scores = evaluate(model, test_items)
            print(f'step {step}: mask AP50={scores["mask_mAP50"]:.3f}', flush=True)
            model.train()

    scores = evaluate(model, test_items)
    print(f'model={args.model} steps={args.steps} images={args.images} '
          f'mask AP50={scores["mask_mAP50"]:.3f} rbox AP50={scores["rbox_mAP50"]:.3f} '
          f'time={time.time() - start:.0f} s')
    if args.min_ap50 is not None and not scores['mask_mAP50'] >= args.min_ap50:
        print(f'FAILED: mask AP50 {scores["mask_mAP50"]:.3f} < {args.min_ap50}')
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
