"""Segment images, large tiles or slides with A2B-IS and write COCO JSON, GeoJSON and overlays.

Example:
    python tools/infer.py ../shared/data/cpm15/images --config CONFIG --checkpoint CKPT \\
        --out-dir work_dirs/infer --tile-size 512 --overlap 64 --score-thr 0.3 --formats geojson

For each image NAME it writes, as ``--formats`` asks, ``NAME.coco.json`` (COCO instances, RLE
masks), ``NAME.geojson`` (QuPath detections, level-0 px) and ``NAME.overlay.png``
(docs/inference.md). Images that share a name (``a.png``, ``a.jpg``) get ``a.png.*`` and ``a.jpg.*``.
Outputs already in ``--out-dir`` are never replaced silently: the tool stops unless
``--overwrite`` or ``--skip-existing`` says what to do. Unreadable images of a folder are
reported on one line and skipped.
"""
import argparse
import os.path as osp
from collections import Counter
from typing import Dict, List

from mmengine.config import DictAction

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
from a2bis_mm.apis.inference import check_image_size
from a2bis_mm.utils.checkpoint import CheckpointError
from a2bis_mm.utils.cli import (
    ToolInputError,
    check_cfg_options,
    check_checkpoint,
    check_device,
    check_work_dir,
    load_config,
    run_tool,
)

# format name -> file suffix, in the order they are written
FORMATS = {'coco': '.coco.json', 'geojson': '.geojson', 'overlay': '.overlay.png'}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='A2B-IS inference with exports')
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--checkpoint', required=True, help='checkpoint file')
    parser.add_argument('--out-dir', required=True, help='folder for the output files')
    parser.add_argument(
        '--formats', default=','.join(FORMATS),
        help='comma-separated outputs per image, any of: coco (NAME.coco.json, COCO instances '
        'with RLE masks), geojson (NAME.geojson, QuPath detections), overlay (NAME.overlay.png, '
        'picture); default: %(default)s')
    parser.add_argument('--tile-size', type=int, default=None,
                        help='tile side in model-input px (default: whole image at once)')
    parser.add_argument('--overlap', type=int, default=64,
                        help='minimum tile overlap in model-input px; > largest object')
    parser.add_argument('--pixel-size', type=float, default=None,
                        help='physical size of an input pixel (e.g. µm/px)')
    parser.add_argument('--model-pixel-size', type=float, default=None,
                        help='physical pixel size the model was trained at (same unit)')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='minimum instance score, in [0, 1] (default 0.3)')
    parser.add_argument('--overlay-max-size', type=int, default=2048,
                        help='longest side of the overlay PNG (downscaled above)')
    parser.add_argument('--overlay-boxes', action='store_true',
                        help='draw the rotated boxes on the overlay too')
    parser.add_argument('--no-overlay', action='store_true',
                        help='do not write overlay PNGs (same as leaving overlay out of --formats)')
    existing = parser.add_mutually_exclusive_group()
    existing.add_argument('--overwrite', action='store_true',
                          help='replace outputs of an earlier run in --out-dir')
    existing.add_argument('--skip-existing', action='store_true',
                          help='keep the images whose outputs are all in --out-dir, run the others')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value pairs')
    return parser.parse_args(argv)


def parse_formats(value: str, no_overlay: bool = False) -> List[str]:
    """The ``--formats`` list, in writing order.

    Raises:
        ToolInputError: An unknown or empty format list.
    """
    names = [f.strip().lower() for f in value.split(',') if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown or not names:
        raise ToolInputError(f"--formats '{value}': choose from {', '.join(FORMATS)} "
                             '(comma-separated)')
    return [f for f in FORMATS if f in names and not (no_overlay and f == 'overlay')]


def output_stems(images: List[str], out_dir: str) -> Dict[str, str]:
    """Output path without suffix for each image: ``OUT/NAME``, or ``OUT/NAME.EXT`` for images
    whose names differ only by the extension (``a.png`` and ``a.jpg``), so none overwrites another.

    The names are compared case-insensitively, as on the file systems of macOS and Windows.
    """
    def stem(path: str) -> str:
        return osp.splitext(osp.basename(path))[0]

    shared = Counter(stem(p).lower() for p in images)
    return {p: osp.join(out_dir, stem(p) if shared[stem(p).lower()] == 1 else osp.basename(p))
            for p in images}


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
    if not 0 <= args.score_thr <= 1:
        raise ToolInputError(f'--score-thr must lie in [0, 1] (scores are probabilities), got '
                             f'{args.score_thr}')
    args.formats = parse_formats(args.formats, args.no_overlay)
    if osp.isdir(args.input):
        images = list_images(args.input)
        if not images:
            raise ToolInputError(f"no image files in folder '{args.input}'")
        return images
    if not osp.isfile(args.input):
        raise ToolInputError(f"input '{args.input}' does not exist")
    try:
        check_image_size(args.input)
    except ValueError as err:
        raise ToolInputError(str(err)) from None
    return [args.input]


def plan_outputs(args: argparse.Namespace, images: List[str]) -> Dict[str, str]:
    """Output stems of the images to run; stops if earlier outputs would be replaced silently.

    Raises:
        ToolInputError: Outputs exist and neither ``--overwrite`` nor ``--skip-existing`` is given.
    """
    stems = output_stems(images, args.out_dir)
    suffixes = [FORMATS[f] for f in args.formats]
    found = {p: [s + x for x in suffixes if osp.exists(s + x)] for p, s in stems.items()}
    clashes = [f for files in found.values() for f in files]
    if clashes and not (args.overwrite or args.skip_existing):
        raise ToolInputError(
            f"'{args.out_dir}' already holds {len(clashes)} of the outputs (e.g. "
            f"{osp.basename(clashes[0])}): pass --overwrite to replace them, --skip-existing to "
            'keep them and run only the images without outputs, or choose another --out-dir')
    if args.skip_existing:
        return {p: s for p, s in stems.items() if len(found[p]) < len(suffixes)}
    return stems


def main(argv=None) -> dict:
    """Run the tool; returns the summary (images done / skipped / kept, instances)."""
    args = parse_args(argv)
    images = check_args(args)
    cfg = load_config(args.config)
    check_cfg_options(cfg, args.cfg_options)  # init_a2bis_model merges them
    check_checkpoint(args.checkpoint)
    check_device(args.device)
    check_work_dir(args.out_dir)
    todo = plan_outputs(args, images)
    summary = dict(done=0, skipped=0, kept=len(images) - len(todo), instances=0)
    renamed = [osp.basename(p) for p, s in todo.items()
               if osp.basename(s) == osp.basename(p)]
    if renamed:
        print(f"note: {', '.join(renamed)} share a name with another image; their outputs are "
              'named after the whole file name (e.g. a.png.coco.json)')
    if todo:
        try:  # before anything is written: a checkpoint of another model must not run
            model = init_a2bis_model(cfg, args.checkpoint, device=args.device,
                                     cfg_options=args.cfg_options)
        except CheckpointError as err:
            raise ToolInputError(str(err)) from None
    for k, (path, stem) in enumerate(todo.items()):
        print(f'[{k + 1}/{len(todo)}] {path}')
        try:
            img = read_image(path)
        except ValueError as err:
            if len(images) == 1:
                raise ToolInputError(str(err)) from None
            print(f'skipped: {err}')
            summary['skipped'] += 1
            continue
        insts = inference_a2bis(
            model, img, tile_size=args.tile_size, overlap=args.overlap,
            pixel_size=args.pixel_size, model_pixel_size=args.model_pixel_size,
            score_thr=args.score_thr, progress=True)
        insts.img_path = path
        if 'coco' in args.formats:
            write_json_atomic(to_coco_dict(insts, progress=True), stem + FORMATS['coco'])
        if 'geojson' in args.formats:
            write_json_atomic(to_geojson_dict(insts, progress=True), stem + FORMATS['geojson'])
        if 'overlay' in args.formats:
            overlay = draw_overlay(img, insts, args.overlay_max_size,
                                   show_bboxes=args.overlay_boxes, progress=True)
            write_png_atomic(overlay, stem + FORMATS['overlay'])
        summary['done'] += 1
        summary['instances'] += len(insts)
        print(f'{len(insts)} instances')
    kept = f", kept (--skip-existing): {summary['kept']}" if args.skip_existing else ''
    print(f"done: {summary['done']} images, skipped: {summary['skipped']}{kept}, "
          f"instances: {summary['instances']}, outputs in {args.out_dir}")
    return summary


if __name__ == '__main__':
    run_tool(main)
