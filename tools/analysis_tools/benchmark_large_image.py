"""Peak memory and time of tiled A2B-IS inference on one large image (default 4096x4096).

The image is a real tile (e.g. from ../shared/data/cpm15) mirrored out to the requested size, so
the model sees real tissue everywhere. Peak RSS comes from ``resource.getrusage`` (the process's
high-water mark, model and image included); the RSS before inference is printed beside it.

Example:
    python tools/analysis_tools/benchmark_large_image.py CONFIG --checkpoint CKPT \\
        --image ../shared/data/cpm15/images/image10.png --size 4096 --tile-size 512 --overlap 64
        [--cfg-options model.mask_head.num_classes=1 ...]
"""
import argparse
import json
import platform
import resource
import sys
import time

import numpy as np
import torch
from mmengine.config import DictAction

from a2bis_mm.apis import inference_a2bis, init_a2bis_model, read_image, to_coco_dict
from a2bis_mm.utils.cli import ToolInputError, check_checkpoint, load_config


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Benchmark tiled inference on a large image')
    parser.add_argument('config', help='model config file')
    parser.add_argument('--checkpoint', default=None, help='checkpoint (default: initial weights)')
    parser.add_argument('--image', required=True, help='real image mirrored out to --size')
    parser.add_argument('--size', type=int, default=4096, help='side of the square test image')
    parser.add_argument('--tile-size', type=int, default=512)
    parser.add_argument('--overlap', type=int, default=64)
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument('--threads', type=int, default=2, help='torch CPU threads')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args()


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    args = parse_args()
    if args.size <= 0:
        raise ToolInputError(f'--size must be > 0, got {args.size}')
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    check_checkpoint(args.checkpoint)
    try:
        tile = read_image(args.image)
    except ValueError as err:
        raise ToolInputError(str(err)) from None
    reps = (-(-args.size // tile.shape[0]), -(-args.size // tile.shape[1]), 1)
    img = np.pad(tile, ((0, tile.shape[0] * (reps[0] - 1)), (0, tile.shape[1] * (reps[1] - 1)),
                        (0, 0)), mode='symmetric')[:args.size, :args.size]
    img = np.ascontiguousarray(img)
    model = init_a2bis_model(cfg, args.checkpoint, device=args.device,
                             cfg_options=args.cfg_options)
    rss_before = peak_rss_mib()
    start = time.perf_counter()
    insts = inference_a2bis(model, img, tile_size=args.tile_size, overlap=args.overlap,
                            score_thr=args.score_thr, progress=True)
    seconds = time.perf_counter() - start
    coco_start = time.perf_counter()
    to_coco_dict(insts)
    result = dict(
        image=f'{args.image} mirrored to {img.shape[1]}x{img.shape[0]}', config=args.config,
        checkpoint=args.checkpoint, tile_size=args.tile_size, overlap=args.overlap,
        instances=len(insts), inference_s=round(seconds, 1),
        coco_export_s=round(time.perf_counter() - coco_start, 1),
        peak_rss_before_inference_mib=round(rss_before), peak_rss_mib=round(peak_rss_mib()),
        threads=args.threads, device=args.device, torch=torch.__version__,
        cpu=platform.processor() or platform.machine())
    print(json.dumps(result, indent=1))


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
