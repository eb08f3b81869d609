"""Time the A2B-IS decoder (``test_cfg`` of the model config) on realistic dense maps.

The maps are what a well-trained A2B-IS would predict for a real 256x256 label map (consep256 or a
cpm15 crop): the ideal maps (``a2bis_mm.models.task_modules.ideal_maps``: stride-2 class map with the
overlap class, skeleton heatmap, every instance pixel carrying its min-area box, full-resolution
foreground / overlap) perturbed with noise (seg logits, skeleton values, box centre/size/angle).

Example (issue 6 target: well under 10% of an A2B-IS-T forward pass, i.e. < 50 ms here)::

    .venv/bin/python tools/analysis_tools/benchmark_postprocess.py --dataset consep256
"""
import argparse
import statistics
import time
from pathlib import Path
from typing import Dict, Tuple

import cv2
import numpy as np
import torch
from mmengine.config import Config

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
    return inst[:size, :size], cls[:size, :size], num_classes


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
        dict: ``skeleton`` (1, h, w), ``seg`` (N + 2, h, w) probabilities, ``rboxes`` (h, w, 5),
        ``fg`` / ``overlap`` (1, H, W) probabilities and the ``gt_bboxes`` (n, 5) of the kept
        instances.
    """
    ids = np.unique(inst)
    ids = ids[ids > 0]
    masks = inst[None] == ids[:, None, None]
    labels = np.array([np.bincount(cls[m]).argmax() - 1 for m in masks], dtype=np.int64)
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Time A2B-IS post-processing on dense maps')
    parser.add_argument('--data-root', type=Path, default=REPO_ROOT.parent / 'shared' / 'data')
    parser.add_argument('--dataset', default='consep256', choices=['consep256', 'cpm15'])
    parser.add_argument('--name', default='', help='image name (default: a dense one)')
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--noise', type=float, default=1.0)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--decoder', choices=['vote', 'paper'], default=None,
                        help="test_cfg.decoder (default: the model config's)")
    parser.add_argument('--fullres', action='store_true',
                        help='also give the full-resolution foreground / overlap maps (what the '
                        'refinement branch predicts)')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.runs < 1:
        raise ValueError(f'--runs must be >= 1, got {args.runs}')
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    inst, cls, num_classes = load_label_maps(args.data_root, args.dataset, args.name)
    maps = build_dense_maps(inst, cls, num_classes, noise=args.noise)
    keys = ('skeleton', 'seg', 'rboxes') + (('fg', 'overlap') if args.fullres else ())
    dense = {k: maps[k].to(args.device) for k in keys}
    size = tuple(inst.shape)
    img_meta = dict(img_shape=size, ori_shape=size, pad_shape=size, scale_factor=(1.0, 1.0))
    test_cfg = dict(Config.fromfile(MODEL_BASE).model.test_cfg)
    if args.decoder:
        test_cfg['decoder'] = args.decoder
    decoder = build_decoder(test_cfg, stride=2, num_classes=num_classes)

    # wall time, and this process's CPU time, which a machine shared with other jobs inflates less
    times, cpu_times = [], []
    for i in range(args.runs + 2):  # two warm-up runs
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        start, cpu_start = time.perf_counter(), time.process_time()
        results = decoder.decode(dense, img_meta, rescale=True)
        if args.device.startswith('cuda'):
            torch.cuda.synchronize()
        if i >= 2:
            times.append(1000 * (time.perf_counter() - start))
            cpu_times.append(1000 * (time.process_time() - cpu_start))
    print(f'{args.dataset} {args.name or "(densest)"}: input {size[1]}x{size[0]}, maps '
          f'{dense["seg"].shape[2]}x{dense["seg"].shape[1]}, {len(maps["gt_bboxes"])} GT '
          f'instances, {len(results)} predicted instances, device {args.device}, {args.threads} '
          f'threads, decoder {decoder.name}, full-resolution maps {args.fullres}')
    print(f'post-processing over {args.runs} runs: wall median {statistics.median(times):.1f} ms '
          f'(min {min(times):.1f}, max {max(times):.1f}); process CPU time median '
          f'{statistics.median(cpu_times):.1f} ms')


if __name__ == '__main__':
    main()
