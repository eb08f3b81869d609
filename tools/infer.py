"""Segment images, large tiles or slides with A2B-IS and write COCO JSON, GeoJSON and overlays.

Example:
    python tools/infer.py ../shared/data/cpm15/images --config CONFIG --checkpoint CKPT \\
        --out-dir work_dirs/infer --tile-size 512 --overlap 64 --score-thr 0.3

For each image NAME it writes ``NAME.coco.json`` (COCO instances, RLE masks), ``NAME.geojson``
(QuPath detections, level-0 px) and ``NAME.overlay.png`` (docs/inference.md). Unreadable images
are reported on one line and skipped.
"""
import argparse
import os.path as osp
import sys

from mmengine.config import DictAction
from tqdm import tqdm

from a2bis_mm.apis import (
    draw_overlay,
    inference_a2bis,
    init_a2bis_model,
    list_images,
    read_image,
    to_coco_dict,
    to_geojson_dict,
    write_json_atomic,
    write_png_atomic,
)
from a2bis_mm.utils.cli import ToolInputError, check_checkpoint, check_work_dir, load_config


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='A2B-IS inference with exports')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--checkpoint', required=True, help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='folder for the output files')
    parser.add_argument('--tile-size', type=int, default=None,
                        help='tile side in model-input px (default: whole image at once)')
    parser.add_argument('--overlap', type=int, default=64,
                        help='minimum tile overlap in model-input px; > largest object')
    parser.add_argument('--pixel-size', type=float, default=None,
                        help='physical size of an input pixel (e.g. µm/px)')
    parser.add_argument('--model-pixel-size', type=float, default=None,
                        help='physical pixel size the model was trained at (same unit)')
    parser.add_argument('--score-thr', type=float, default=0.3, help='minimum instance score')
    parser.add_argument('--overlay-max-size', type=int, default=2048,
                        help='longest side of the overlay PNG (downscaled above)')
    parser.add_argument('--no-overlay', action='store_true', help='do not write overlay PNGs')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace) -> list:
    """Validate the arguments (one-line errors) and return the images to process."""
    if (args.pixel_size is None) != (args.model_pixel_size is None):
        raise ToolInputError('--pixel-size and --model-pixel-size go together')
    for name in ('tile_size', 'pixel_size', 'model_pixel_size', 'overlay_max_size'):
        value = getattr(args, name)
        if value is not None and value <= 0:
            raise ToolInputError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if args.tile_size is not None and not 0 <= args.overlap < args.tile_size:
        raise ToolInputError(f'--overlap must lie in [0, --tile-size), got {args.overlap}')
    if osp.isdir(args.input):
        images = list_images(args.input)
        if not images:
            raise ToolInputError(f"no image files in folder '{args.input}'")
        return images
    if not osp.isfile(args.input):
        raise ToolInputError(f"input '{args.input}' does not exist")
    return [args.input]


def main(argv=None) -> dict:
    """Run the tool; returns the summary (images done / skipped, instances)."""
    args = parse_args(argv)
    images = check_args(args)
    cfg = load_config(args.config)
    check_checkpoint(args.checkpoint)
    check_work_dir(args.out_dir)
    model = init_a2bis_model(cfg, args.checkpoint, device=args.device,
                             cfg_options=args.cfg_options)
    summary = dict(done=0, skipped=0, instances=0)
    bar = tqdm(images, desc='images', unit='img')
    for path in bar:
        try:
            img = read_image(path)
        except ValueError as err:
            tqdm.write(f'skipped: {err}')
            summary['skipped'] += 1
            continue
        insts = inference_a2bis(
            model, img, tile_size=args.tile_size, overlap=args.overlap,
            pixel_size=args.pixel_size, model_pixel_size=args.model_pixel_size,
            score_thr=args.score_thr, progress=True)
        insts.img_path = path
        stem = osp.join(args.out_dir, osp.splitext(osp.basename(path))[0])
        write_json_atomic(to_coco_dict(insts), stem + '.coco.json')
        write_json_atomic(to_geojson_dict(insts), stem + '.geojson')
        if not args.no_overlay:
            write_png_atomic(draw_overlay(img, insts, args.overlay_max_size),
                             stem + '.overlay.png')
        summary['done'] += 1
        summary['instances'] += len(insts)
        bar.set_postfix(instances=summary['instances'])
    print(f"done: {summary['done']} images, skipped: {summary['skipped']}, "
          f"instances: {summary['instances']}, outputs in {args.out_dir}")
    return summary


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
