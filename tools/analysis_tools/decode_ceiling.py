"""Decoder ceiling: decode the ideal maps of every test image and score them against its GT.

For each image of CONFIG's test data set, the ground truth at the network's input resolution
(the test pipeline with the annotations loaded before any ``Resize``) gives the maps a perfect
network would predict (:func:`a2bis_mm.models.task_modules.ideal_maps`: the stride-s targets of
``GenerateA2BTargets``, every covered feature pixel carrying its instance's box, and the
full-resolution foreground / overlap maps). The model's own decoder, built from CONFIG's
``model.test_cfg``, turns them into instances at the original image size, which are scored with
CONFIG's ``PanopticQualityMetric``, ``InstanceAP50Metric`` and ``InstanceErrorMetric`` (what the
decoder itself loses: merged, split, missed instances...) against the GT of the ordinary test
pipeline, and written as a COCO results JSON (``image_id``, ``file_name``, ``category_id``,
``score``, RLE ``segmentation`` at the original size, ``rbox`` (cx, cy, w, h, t radians)).

It also counts the GT instances recovered by a prediction of IoU > 0.5 with their own mask
(instance masks, overlaps included) and the images where every instance is recovered.

Example (docs/decoder.md has the table)::

    .venv/bin/python tools/analysis_tools/decode_ceiling.py \\
        configs/a2bis/a2bis-t_a2b_50e_consep-256.py --out /tmp/consep_ceiling.json
    .venv/bin/python tools/analysis_tools/decode_ceiling.py \\
        configs/a2bis/a2bis-t_a2b_50e_consep-256.py --cfg-options model.test_cfg.decoder=paper \\
        --out /tmp/consep_ceiling_paper.json
    # whole cpm15 tiles (validation tiles; --split train for the training tiles)
    .venv/bin/python tools/analysis_tools/decode_ceiling.py \\
        configs/a2bis/a2bis-t_a2b_50e_consep-256.py --data configs/_base_/datasets/cpm15-256.py \\
        --out /tmp/cpm15_ceiling.json
"""
import argparse
import copy
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from mmcv.transforms import Compose
from mmdet.registry import DATASETS, METRICS
from mmdet.structures.mask import BitmapMasks, PolygonMasks
from mmengine.config import DictAction
from mmengine.registry import init_default_scope
from pycocotools import mask as mask_util

import a2bis_mm  # noqa: F401  registers the modules
from a2bis_mm.apis.exporters import write_json_atomic
from a2bis_mm.evaluation.functional import FN_CAUSES, FP_CAUSES
from a2bis_mm.models.task_modules import build_decoder, ideal_maps
from a2bis_mm.utils.cli import ToolInputError, load_config

# transforms that only touch the image's colours or pack it: not needed for the ideal maps
_SKIP = ('LoadAnnotations', 'PackA2BInputs', 'PackDetInputs', 'JetColormap')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Decoder ceiling from ideal maps')
    parser.add_argument('config', help='model + data config (its test data set and test_cfg)')
    parser.add_argument('--out', required=True, help='COCO results JSON to write')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, e.g. model.test_cfg.decoder=paper')
    parser.add_argument('--data', help='take the data loaders and evaluators from this data set '
                        'config instead (e.g. configs/_base_/datasets/cpm15-256.py)')
    parser.add_argument('--split', choices=['test', 'val', 'train'], default='test',
                        help='which dataloader of the config to read (default: test)')
    parser.add_argument('--limit', type=int, default=0, help='first N images only (0: all)')
    parser.add_argument('--threads', type=int, default=1, help='torch / OpenCV threads')
    parser.add_argument('--metrics-out', help='also write the metrics as JSON here')
    parser.add_argument('--fullres', choices=['auto', 'on', 'off'], default='auto',
                        help='give the decoder the full-resolution foreground / overlap maps '
                        '(auto: when the model has the full-resolution branch, '
                        'model.mask_head.fullres, as the model would)')
    return parser.parse_args(argv)


def target_pipeline(test_pipeline: List[dict]) -> List[dict]:
    """The test pipeline with the annotations loaded right after the image, before any Resize.

    mmdet's test pipelines load annotations after ``Resize`` so that the GT stays at the original
    size; the ideal maps need the GT at the network's input size instead.
    """
    load_ann = [t for t in test_pipeline if t['type'] == 'LoadAnnotations']
    if not load_ann:
        raise ToolInputError('the test pipeline has no LoadAnnotations: the ceiling needs GT masks')
    steps = [copy.deepcopy(t) for t in test_pipeline if t['type'] not in _SKIP]
    steps.insert(1, copy.deepcopy(load_ann[0]))
    return steps


def as_array(masks, height: int, width: int) -> np.ndarray:
    """(n, H, W) bool array of mmdet masks."""
    if isinstance(masks, (BitmapMasks, PolygonMasks)):
        return masks.to_ndarray().astype(bool).reshape(-1, height, width)
    return np.asarray(masks, dtype=bool).reshape(-1, height, width)


def recovered(gt: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Per GT instance: whether some prediction has IoU > 0.5 with its own mask."""
    if len(gt) == 0:
        return np.zeros(0, bool)
    if len(pred) == 0:
        return np.zeros(len(gt), bool)
    g = gt.reshape(len(gt), -1).astype(np.float32)
    p = pred.reshape(len(pred), -1).astype(np.float32)
    inter = g @ p.T
    union = g.sum(1)[:, None] + p.sum(1)[None] - inter
    return (inter / np.maximum(union, 1) > 0.5).any(axis=1)


def overlap_kept(gt: np.ndarray, pred: np.ndarray) -> Tuple[int, int]:
    """GT overlap pixels kept by the matched prediction of each of their instances.

    Returns:
        tuple[int, int]: (kept, total) over (GT instance, pixel shared with another GT instance)
        pairs; an instance without a prediction of IoU > 0.5 keeps none of them.
    """
    shared = gt.sum(axis=0) >= 2
    if not shared.any():
        return 0, 0
    g = gt.reshape(len(gt), -1).astype(np.float32)
    p = pred.reshape(len(pred), -1).astype(np.float32)
    total = int((gt & shared).sum())
    if len(pred) == 0:
        return 0, total
    inter = g @ p.T
    iou = inter / np.maximum(g.sum(1)[:, None] + p.sum(1)[None] - inter, 1)
    kept = 0
    for i in range(len(gt)):
        j = int(iou[i].argmax())
        if iou[i, j] > 0.5:
            kept += int((gt[i] & shared & pred[j]).sum())
    return kept, total


def build_metrics(cfg, dataset_meta: dict) -> list:
    """The config's PQ, AP50 and error metrics (defaults where it has none)."""
    evaluator = cfg.get('test_evaluator', cfg.get('val_evaluator', []))
    if isinstance(evaluator, dict):
        evaluator = evaluator.get('metrics', [evaluator])
    wanted = {'PanopticQualityMetric', 'InstanceAP50Metric', 'InstanceErrorMetric'}
    metric_cfgs = [copy.deepcopy(m) for m in evaluator if m.get('type') in wanted]
    for name in wanted - {m['type'] for m in metric_cfgs}:
        metric_cfgs.append(dict(type=name))
    metrics = [METRICS.build(m) for m in metric_cfgs]
    for metric in metrics:
        metric.dataset_meta = dataset_meta
    return metrics


def errors_line(results: Dict[str, float]) -> str:
    """One line of ``InstanceErrorMetric``'s counts: misses and spurious instances by cause."""
    fn = ', '.join(f'{c} {results[f"err/fn_{c}"]:.0f}' for c in FN_CAUSES)
    fp = ', '.join(f'{c} {results[f"err/fp_{c}"]:.0f}' for c in FP_CAUSES)
    return (f"errors: FN {results['err/fn']:.0f} ({fn}); FP {results['err/fp']:.0f} ({fp}); "
            f"images with every instance found {results['err/images_all_found']:.0f}/"
            f"{results['err/images']:.0f}")


def coco_results(pred, image_id, file_name: str, cat_ids: List[int]) -> List[Dict]:
    """COCO results entries (RLE at the original size) of one image's predictions."""
    masks = pred.masks.cpu().numpy().astype(np.uint8)
    rboxes = pred.bboxes.tensor.cpu().numpy() if len(pred) else np.zeros((0, 5))
    entries = []
    for k in range(len(pred)):
        rle = mask_util.encode(np.asfortranarray(masks[k]))
        rle['counts'] = rle['counts'].decode('ascii')
        entries.append(dict(image_id=image_id, file_name=file_name,
                            category_id=int(cat_ids[int(pred.labels[k])]),
                            score=float(pred.scores[k]), segmentation=rle,
                            bbox=[float(v) for v in mask_util.toBbox(rle)],
                            rbox=[float(v) for v in rboxes[k]]))
    return entries


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    import cv2
    cv2.setNumThreads(args.threads)
    cfg = load_config(args.config)
    if args.data:
        data = load_config(args.data)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                    'test_evaluator'):
            if key in data:
                cfg[key] = data[key]
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    loader = cfg.get(f'{args.split}_dataloader')
    if loader is None:
        raise ToolInputError(f'the config has no {args.split}_dataloader')
    dataset_cfg = copy.deepcopy(loader['dataset'])
    if args.split == 'train':
        # the train pipeline augments; score the training images as the test pipeline sees them
        test_cfg_ds = cfg.get('test_dataloader', cfg.get('val_dataloader'))['dataset']
        dataset_cfg['pipeline'] = copy.deepcopy(test_cfg_ds['pipeline'])
        dataset_cfg['test_mode'] = True
    dataset = DATASETS.build(dataset_cfg)
    classes = dataset.metainfo['classes']
    num_classes = len(classes)
    cat_ids = list(getattr(dataset, 'cat_ids', None) or range(1, num_classes + 1))
    make_targets = Compose(target_pipeline(dataset_cfg['pipeline']))
    model_cfg = cfg.model
    stride = int(model_cfg.get('mask_head', {}).get('stride', 2))
    decoder = build_decoder(model_cfg.test_cfg, stride=stride, num_classes=num_classes)
    metrics = build_metrics(cfg, dict(dataset.metainfo))

    fullres = args.fullres == 'on' or (
        args.fullres == 'auto' and model_cfg.get('mask_head', {}).get('fullres') is not None)
    keys = ('skeleton', 'seg', 'rboxes') + (('fg', 'overlap') if fullres else ())
    entries, n_gt, n_rec, n_img_all, n_img, ovl_kept, ovl_total = [], 0, 0, 0, 0, 0, 0
    decode_time = 0.0
    count = len(dataset) if args.limit <= 0 else min(args.limit, len(dataset))
    for idx in range(count):
        info = dataset.get_data_info(idx)
        packed = dataset.pipeline(copy.deepcopy(info))
        sample = packed['data_samples']
        targets = make_targets(copy.deepcopy(info))
        in_h, in_w = targets['img'].shape[:2]
        masks_in = as_array(targets['gt_masks'], in_h, in_w)
        labels_in = np.asarray(targets['gt_bboxes_labels'], np.int64)
        maps = ideal_maps(masks_in, labels_in, num_classes, stride=stride)
        start = time.perf_counter()
        pred = decoder.decode({k: maps[k] for k in keys}, sample.metainfo, rescale=True)
        decode_time += time.perf_counter() - start
        gt = sample.gt_instances
        ori_h, ori_w = sample.metainfo['ori_shape'][:2]
        gt_masks = as_array(gt.masks, ori_h, ori_w)
        pred_masks = pred.masks.cpu().numpy()
        rec = recovered(gt_masks, pred_masks)
        kept, total = overlap_kept(gt_masks, pred_masks)
        ovl_kept += kept
        ovl_total += total
        n_gt += len(rec)
        n_rec += int(rec.sum())
        if len(rec):
            n_img += 1
            n_img_all += bool(rec.all())
        data_sample = dict(img_path=sample.metainfo.get('img_path'),
                           gt_instances=dict(masks=gt.masks, labels=gt.labels),
                           pred_instances=dict(masks=pred.masks, bboxes=pred.bboxes,
                                               scores=pred.scores, labels=pred.labels))
        if 'tissue' in sample:
            data_sample['tissue'] = sample.tissue
        for metric in metrics:
            metric.process(None, [data_sample])
        entries.extend(coco_results(pred, sample.metainfo.get('img_id', idx),
                                    os.path.basename(str(sample.metainfo.get('img_path', ''))),
                                    cat_ids))
        if (idx + 1) % 50 == 0:
            print(f'{idx + 1}/{count} images', file=sys.stderr, flush=True)

    results: Dict[str, float] = {}
    for metric in metrics:
        results.update(metric.evaluate(count))
    results.update({'ceiling/images': count, 'ceiling/gt_instances': n_gt,
                    'ceiling/recovered': n_rec, 'ceiling/images_all_recovered': n_img_all,
                    'ceiling/images_with_gt': n_img, 'ceiling/overlap_px_kept': ovl_kept,
                    'ceiling/overlap_px_total': ovl_total,
                    'ceiling/decode_ms_per_image': 1000 * decode_time / max(count, 1)})
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    write_json_atomic(entries, args.out)
    if args.metrics_out:
        with open(args.metrics_out, 'w') as f:
            json.dump(results, f, indent=1)
    print(f'{args.config} ({args.split}, {count} images, decoder {decoder.name}, '
          f'full-resolution maps {"on" if fullres else "off"})')
    print(f"bPQ {results['pq/bPQ']:.4f}  mPQ {results['pq/mPQ']:.4f}  "
          f"mask AP50 {results['ap50/mask_mAP50']:.4f}  rbox AP50 {results['ap50/rbox_mAP50']:.4f}")
    print(f'recovered {n_rec}/{n_gt} GT instances (IoU > 0.5 with their own mask); every instance '
          f'recovered in {n_img_all}/{n_img} images; decode {results["ceiling/decode_ms_per_image"]:.1f}'
          f' ms/image')
    if 'err/fn' in results:
        print(errors_line(results))
    if ovl_total:
        print(f'GT overlap pixels kept in the matched mask of each of their instances: '
              f'{ovl_kept}/{ovl_total} ({100 * ovl_kept / ovl_total:.1f}%)')
    print(f'wrote {len(entries)} instances to {args.out}')
    return results


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
