"""Time the A2B-IS decoder (``test_cfg`` of the model config) on realistic dense maps.

The maps are what a well-trained A2B-IS would predict for a real label map (consep256, cpm15; a
256x256 crop or the whole image): the ideal maps (``a2bis_mm.models.task_modules.ideal_maps``:
stride-2 class map with the overlap class, skeleton heatmap, every instance pixel carrying its
min-area box, full-resolution foreground / overlap) perturbed with noise (seg logits, skeleton
values, box centre/size/angle).

Three uses (docs/decoder.md, "Speed", has the measurements):

* the decoder alone on one image's maps::

    .venv/bin/python tools/analysis_tools/benchmark_postprocess.py --dataset consep256 --fullres

* its growth with the number of instances: the same image's maps with random fractions of its
  instances (``--size 0``: the whole image, e.g. a cpm15 tile)::

    .venv/bin/python tools/analysis_tools/benchmark_postprocess.py --dataset cpm15 --name image10 \
        --size 0 --fullres --fractions 0.25 0.5 1

* its share of the whole inference (issue 13: under 10% at 256x256 on CPU): ``predict`` of a
  model config on its first test images, the decoder fed each image's ideal maps plus noise
  (random weights find no instances), or the network's own maps with ``--maps model`` (a trained
  ``--checkpoint``)::

    .venv/bin/python tools/analysis_tools/benchmark_postprocess.py \
        --config configs/a2bis/a2bis-t_a2b_50e_consep-256.py --images 8
"""
import argparse
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmdet.registry import DATASETS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import import_modules_from_strings

from a2bis_mm.models.task_modules import build_decoder, ideal_maps

REPO_ROOT = Path(__file__).resolve().parents[2]
# the post-processing settings every A2B-IS config inherits
MODEL_BASE = REPO_ROOT / 'configs' / '_base_' / 'models' / 'a2bis_a2bnet-t.py'


def load_label_maps(data_root: Path, dataset: str, name: str,
                    size: int = 256) -> Tuple[np.ndarray, np.ndarray, int]:
    """Instance map, class map (0 background, 1..N) and N for one real image, cropped to ``size``.

    Args:
        data_root (Path): the shared data folder (``../shared/data``).
        dataset (str): ``'consep256'`` (4 classes) or ``'cpm15'`` (1 class, top-left crop).
        name (str): image name, e.g. ``'train_1_000'`` or ``'image01'``; ``''`` picks the consep256
            patch with the most nuclei (or cpm15 ``image07``).
        size (int): side of the top-left crop; 0 keeps the whole image.

    Returns:
        tuple: ``(inst, cls, num_classes)``, both maps ``(size, size)``.
    """
    if dataset == 'consep256':
        labels = data_root / 'consep256' / 'labels'
        if not name:
            counts = {p.name[:-len('_inst.png')]: len(np.unique(cv2.imread(str(p), -1)))
                      for p in sorted(labels.glob('*_inst.png'))}
            if not counts:
                raise FileNotFoundError(f'no *_inst.png label maps in {labels}')
            name = max(counts, key=counts.get)
        inst = cv2.imread(str(labels / f'{name}_inst.png'), cv2.IMREAD_UNCHANGED)
        cls = cv2.imread(str(labels / f'{name}_class.png'), cv2.IMREAD_UNCHANGED)
        num_classes = 4
    elif dataset == 'cpm15':
        path = data_root / 'cpm15' / 'labels' / f'{name or "image07"}.png'
        inst = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cls = None if inst is None else (inst > 0).astype(np.uint8)
        num_classes = 1
    else:
        raise ValueError(f"dataset must be 'consep256' or 'cpm15', got {dataset!r}")
    if inst is None or cls is None:
        raise FileNotFoundError(f'cannot read the {dataset} label maps of {name!r} under {data_root}')
    if size > 0:
        inst, cls = inst[:size, :size], cls[:size, :size]
    return inst, cls, num_classes


def build_dense_maps(inst: np.ndarray, cls: np.ndarray, num_classes: int, stride: int = 2,
                     noise: float = 1.0, seed: int = 0) -> Dict[str, torch.Tensor]:
    """Dense A2B-IS predictions for a real instance/class label map: ideal maps plus noise.

    Args:
        inst (np.ndarray): (H, W) instance ids, 0 background.
        cls (np.ndarray): (H, W) classes 1..N, constant within an instance.
        num_classes (int): N.
        stride (int): feature stride.
        noise (float): noise scale; 0 gives the ideal maps
            (:func:`a2bis_mm.models.task_modules.ideal_maps`).
        seed (int): random seed.

    Returns:
        dict: see :func:`noisy_maps`.
    """
    ids = np.unique(inst)
    ids = ids[ids > 0]
    masks = inst[None] == ids[:, None, None]
    labels = np.array([np.bincount(cls[m]).argmax() - 1 for m in masks], dtype=np.int64)
    return noisy_maps(masks, labels, num_classes, stride, noise, seed)


def noisy_maps(masks: np.ndarray, labels: np.ndarray, num_classes: int, stride: int = 2,
               noise: float = 1.0, seed: int = 0) -> Dict[str, torch.Tensor]:
    """The ideal maps of instance masks plus noise: what a well-trained network would predict.

    Args:
        masks (np.ndarray): (n, H, W) bool instance masks at input resolution.
        labels (np.ndarray): (n, ) 0-based classes.
        num_classes (int): N.
        stride (int): feature stride.
        noise (float): noise scale; 0 gives the ideal maps.
        seed (int): random seed.

    Returns:
        dict: ``skeleton`` (1, h, w), ``seg`` (N + 2, h, w) probabilities, ``rboxes`` (h, w, 5),
        ``fg`` / ``overlap`` (1, H, W) probabilities and the ``gt_bboxes`` (n, 5) of the kept
        instances.
    """
    maps = ideal_maps(masks, labels, num_classes, stride=stride)
    gen = torch.Generator().manual_seed(seed)
    seg = (4.0 * maps['seg'] + noise * torch.randn(maps['seg'].shape, generator=gen)).softmax(0)
    skeleton = maps['skeleton']
    skeleton = (skeleton + 0.05 * noise * torch.randn(skeleton.shape, generator=gen)).clamp(0, 1)
    rboxes = maps['rboxes'].clone()
    jitter = noise * torch.randn(rboxes.shape, generator=gen)
    rboxes[..., :2] += jitter[..., :2]
    rboxes[..., 2:4] *= torch.exp(0.1 * jitter[..., 2:4])
    rboxes[..., 4] += 0.1 * jitter[..., 4]
    fullres = {
        k: (4.0 * (maps[k] - 0.5) + noise * torch.randn(maps[k].shape, generator=gen)).sigmoid()
        for k in ('fg', 'overlap')
    }
    return dict(skeleton=skeleton, seg=seg, rboxes=rboxes, gt_bboxes=maps['gt_bboxes'], **fullres)


def subsample(inst: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """The instance map with a random ``fraction`` of its instances kept (the others background)."""
    ids = np.unique(inst)
    ids = ids[ids > 0]
    keep = np.random.default_rng(seed).permutation(ids)[:int(round(fraction * ids.size))]
    return np.where(np.isin(inst, keep), inst, 0)


def _median_ms(samples: Sequence[float]) -> float:
    return 1000 * statistics.median(samples)


def time_decode(decoder, dense: Dict[str, torch.Tensor], img_meta: dict, runs: int,
                device: str = 'cpu') -> Tuple[List[float], List[float], int]:
    """Wall and process-CPU seconds of ``runs`` decodes (after two warm-up runs), instances."""
    times, cpu_times = [], []
    for i in range(runs + 2):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        results = decoder.decode(dense, img_meta, rescale=True)
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu_start)
    return times, cpu_times, len(results)


class _Timed:
    """Wraps a module method; sums its wall and process-CPU seconds into ``clock[stage]``."""

    def __init__(self, clock: Dict[str, List[float]], stage: str, fn: Callable) -> None:
        self.clock, self.stage, self.fn = clock, stage, fn

    def __call__(self, *args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return self.fn(*args, **kwargs)
        finally:
            acc = self.clock.setdefault(self.stage, [0.0, 0.0])
            acc[0] += time.perf_counter() - wall
            acc[1] += time.process_time() - cpu


class _FixedMaps:
    """Stands in for a head's decoder: decodes the given maps instead of the network's."""

    def __init__(self, decoder, maps: Dict[str, torch.Tensor]) -> None:
        self.decoder, self.maps = decoder, maps

    def decode(self, maps: Dict[str, torch.Tensor], img_meta: dict, rescale: bool = True):
        return self.decoder.decode(self.maps, img_meta, rescale)


def predict_share(args: argparse.Namespace) -> None:
    """Backbone, post-processing (``predict_by_feat``: maps, box decoding, decoder) and total
    time of ``predict`` on each of the config's first ``--images`` test images, one at a time."""
    cfg = Config.fromfile(args.config)
    import_modules_from_strings(**cfg.get('custom_imports', dict(imports=[])))
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    MMLogger.get_instance('benchmark_postprocess', log_level='WARNING')  # no init_weights report
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model = model.to(args.device).eval()
    head = model.mask_head
    decoder = head.decoder
    decoder.num_threads = args.decoder_threads or None
    fullres = head.fullres_branch is not None
    keys = ('skeleton', 'seg', 'rboxes') + (('fg', 'overlap') if fullres else ())
    dataset_cfg = cfg.test_dataloader.dataset.copy()
    dataset_cfg.indices = args.images
    dataset = DATASETS.build(dataset_cfg)
    clock: Dict[str, List[float]] = {}
    model.extract_feat = _Timed(clock, 'backbone', model.extract_feat)
    head.predict_by_feat = _Timed(clock, 'post', head.predict_by_feat)
    rows = []
    for idx in range(len(dataset)):
        data = model.data_preprocessor(pseudo_collate([dataset[idx]]), False)
        sample = data['data_samples'][0]
        sample.set_metainfo(dict(scale_factor=sample.metainfo.get('scale_factor', (1.0, 1.0))))
        gt = sample.gt_instances
        if args.maps == 'ideal':
            in_h, in_w = sample.metainfo['img_shape'][:2]
            masks = gt.masks.to_ndarray().astype(bool)
            if masks.shape[1:] != (in_h, in_w):
                raise ValueError(f'--maps ideal needs a test pipeline without resizing; '
                                 f'masks {masks.shape[1:]} vs input {(in_h, in_w)}')
            maps = noisy_maps(masks, gt.labels.numpy(), head.num_classes, head.stride,
                              args.noise, seed=idx)
            head.decoder = _FixedMaps(decoder, {k: maps[k].to(args.device) for k in keys})
        samples = []
        with torch.no_grad():
            for i in range(args.runs + 1):  # one warm-up run
                clock.clear()
                if args.device.startswith('cuda'):
                    torch.cuda.synchronize()
                wall, cpu = time.perf_counter(), time.process_time()
                results = model.predict(data['inputs'].to(args.device), data['data_samples'])
                if args.device.startswith('cuda'):
                    torch.cuda.synchronize()
                if i:
                    samples.append(dict(total=(time.perf_counter() - wall,
                                               time.process_time() - cpu), **clock))
        row = dict(name=Path(sample.metainfo['img_path']).stem, gt=len(gt),
                   pred=len(results[0].pred_instances))
        for stage in ('backbone', 'post', 'total'):
            for j, kind in enumerate(('wall', 'cpu')):
                row[f'{stage}_{kind}'] = _median_ms([s[stage][j] for s in samples])
        rows.append(row)
        print(f'{row["name"]}: {row["gt"]} GT, {row["pred"]} predicted; wall backbone '
              f'{row["backbone_wall"]:.0f} ms, post {row["post_wall"]:.1f} ms, total '
              f'{row["total_wall"]:.0f} ms ({100 * row["post_wall"] / row["total_wall"]:.1f}%); CPU '
              f'post {row["post_cpu"]:.1f} ms, total {row["total_cpu"]:.0f} ms '
              f'({100 * row["post_cpu"] / row["total_cpu"]:.1f}%)', flush=True)
    weights = Path(args.checkpoint).name if args.checkpoint else 'random weights'
    print(f'{Path(args.config).stem}, {weights}, maps: {args.maps}'
          f'{f" (noise {args.noise})" if args.maps == "ideal" else ""}, decoder {decoder.name}, '
          f'{args.threads} threads ({decoder.num_threads or args.threads} while decoding), '
          f'{args.device}, median of {args.runs} runs per image')
    for kind in ('wall', 'cpu'):
        post = sum(r[f'post_{kind}'] for r in rows)
        total = sum(r[f'total_{kind}'] for r in rows)
        print(f'{len(rows)} images, {sum(r["pred"] for r in rows)} predicted instances: {kind} '
              f'post {post / len(rows):.1f} ms / image, total {total / len(rows):.0f} ms / image, '
              f'post share {100 * post / total:.1f}% (worst image '
              f'{max(100 * r[f"post_{kind}"] / r[f"total_{kind}"] for r in rows):.1f}%)')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Time A2B-IS post-processing on dense maps')
    parser.add_argument('--data-root', type=Path, default=REPO_ROOT.parent / 'shared' / 'data')
    parser.add_argument('--dataset', default='consep256', choices=['consep256', 'cpm15'])
    parser.add_argument('--name', default='', help='image name (default: a dense one)')
    parser.add_argument('--size', type=int, default=256,
                        help='side of the top-left crop of the image (0: the whole image)')
    parser.add_argument('--fractions', type=float, nargs='+', default=[1.0],
                        help='time the maps of random fractions of the instances (linearity)')
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--noise', type=float, default=1.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--decoder-threads', type=int, default=1,
                        help="torch threads while decoding (test_cfg.num_threads; 0: --threads)")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--decoder', choices=['vote', 'paper'], default=None,
                        help="test_cfg.decoder (default: the model config's)")
    parser.add_argument('--fullres', action='store_true',
                        help='also give the full-resolution foreground / overlap maps (what the '
                        'refinement branch predicts)')
    parser.add_argument('--config', help='time predict of this model config instead (share of '
                        'the post-processing); the decoder settings come from it')
    parser.add_argument('--checkpoint', help='weights for --config (default: random)')
    parser.add_argument('--images', type=int, default=8, help='first test images of --config')
    parser.add_argument('--maps', choices=['ideal', 'model'], default='ideal',
                        help="--config: decode each image's ideal maps plus --noise, or the "
                        "network's own maps")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.images < 1:
        parser.error('--runs and --images must be >= 1')
    if not all(0 < f <= 1 for f in args.fractions):
        parser.error('--fractions must lie in (0, 1]')
    return args


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f'load average (1 min) {os.getloadavg()[0]:.1f}', flush=True)
    if args.config:
        predict_share(args)
        print(f'load average (1 min) {os.getloadavg()[0]:.1f}')
        return
    inst, cls, num_classes = load_label_maps(args.data_root, args.dataset, args.name, args.size)
    test_cfg = dict(Config.fromfile(MODEL_BASE).model.test_cfg)
    if args.decoder:
        test_cfg['decoder'] = args.decoder
    test_cfg['num_threads'] = args.decoder_threads or None
    decoder = build_decoder(test_cfg, stride=2, num_classes=num_classes)
    size = tuple(inst.shape)
    img_meta = dict(img_shape=size, ori_shape=size, pad_shape=size, scale_factor=(1.0, 1.0))
    keys = ('skeleton', 'seg', 'rboxes') + (('fg', 'overlap') if args.fullres else ())
    print(f'{args.dataset} {args.name or "(densest)"}: input {size[1]}x{size[0]}, device '
          f'{args.device}, {args.threads} threads ({decoder.num_threads or args.threads} while '
          f'decoding), decoder {decoder.name}, full-resolution maps '
          f'{args.fullres}; medians of {args.runs} runs after 2 warm-up runs')
    for fraction in args.fractions:
        maps = build_dense_maps(subsample(inst, fraction) if fraction < 1 else inst, cls,
                                num_classes, noise=args.noise)
        dense = {k: maps[k].to(args.device) for k in keys}
        # wall time, and this process's CPU time, which a machine shared with other jobs inflates
        # less
        times, cpu_times, found = time_decode(decoder, dense, img_meta, args.runs, args.device)
        gt = len(maps['gt_bboxes'])
        cpu = _median_ms(cpu_times)
        print(f'{fraction:.2f} of the instances: {gt} GT, {found} predicted; wall median '
              f'{_median_ms(times):.1f} ms (min {1000 * min(times):.1f}, max '
              f'{1000 * max(times):.1f}); process CPU time median {cpu:.1f} ms = '
              f'{1000 * cpu / max(found, 1):.0f} us per predicted instance', flush=True)
    print(f'load average (1 min) {os.getloadavg()[0]:.1f}')


if __name__ == '__main__':
    main()
