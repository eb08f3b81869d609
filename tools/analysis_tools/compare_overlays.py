"""Side-by-side overlays of several models (and the ground truth) on the same crop of an image.

Example (A2B-IS against Mask R-CNN on a crop where nuclei touch; docs/inference.md):
    python tools/analysis_tools/compare_overlays.py ../shared/data/cpm15/images/image11.png \\
        --model configs/a2bis/CONFIG.py a2bis.pth --model configs/baselines/CONFIG.py mrcnn.pth \\
        --titles A2B-IS "Mask R-CNN" --gt ../shared/data/cpm15/labels/image11.png \\
        --crop auto --crop-size 192 --scale 2 --out compare.png

Each model runs on the whole image (tiled with ``--tile-size``), so the crop's instances see their
full context; the crop is then drawn for each model with the overlay drawing of ``tools/infer.py``
(``a2bis_mm.visualization.draw_instances``), after a panel with the plain input. ``--crop auto``
picks the window where most instances touch or overlap (in the ground truth if given, else in the
first model's prediction).
"""
import argparse
import json
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

from a2bis_mm.apis import (
    CompactInstances,
    draw_overlay,
    inference_a2bis,
    init_a2bis_model,
    read_image,
    write_png_atomic,
)
from a2bis_mm.apis.tiling import instances_from_label_map, instances_from_polygons
from a2bis_mm.utils.checkpoint import CheckpointError
from a2bis_mm.utils.cli import ToolInputError, check_checkpoint, check_device, load_config, run_tool
from a2bis_mm.visualization.overlay import FONT, LEGEND_BACKGROUND, TEXT_COLOR, font_scale

GAP = 6  # px between panels


def labelme_polygons(path: str) -> List[np.ndarray]:
    """The polygon shapes of a LabelMe file, (k, 2) x, y each."""
    try:
        with open(path) as f:
            shapes = json.load(f).get('shapes', [])
    except (OSError, ValueError) as err:
        raise ToolInputError(f'--gt {path} cannot be read as LabelMe JSON ({err})') from None
    polygons = [np.asarray(s['points'], np.float64) for s in shapes
                if s.get('shape_type', 'polygon') == 'polygon' and len(s.get('points', [])) >= 3]
    if not polygons:
        raise ToolInputError(f'--gt {path} has no polygon shape')
    return polygons


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Overlays of several models side by side')
    parser.add_argument('image', help='the image file')
    parser.add_argument('--model', nargs=2, action='append', required=True,
                        metavar=('CONFIG', 'CHECKPOINT'), help='a model; give one --model each')
    parser.add_argument('--titles', nargs='+', help='panel titles, one per model (default: the '
                        'config file names)')
    parser.add_argument('--gt', help='ground truth of the image, adds a panel: an instance-label map '
                        '(0 background, one id per instance, e.g. cpm15 labels/) or a LabelMe .json '
                        '(polygons, may overlap, e.g. chromosome_pairs)')
    parser.add_argument('--crop', default='auto',
                        help="X,Y,W,H in image px, 'auto' (where instances touch most) or 'full'")
    parser.add_argument('--crop-size', type=int, default=192, help='side of the auto crop')
    parser.add_argument('--scale', type=float, default=2.0,
                        help='output px per image px of the panels (enlarges small crops)')
    parser.add_argument('--tile-size', type=int, default=None, help='as tools/infer.py')
    parser.add_argument('--overlap', type=int, default=64, help='as tools/infer.py')
    parser.add_argument('--score-thr', type=float, default=0.3, help='minimum score, in [0, 1]')
    parser.add_argument('--show-bboxes', action='store_true', help='draw the boxes too')
    parser.add_argument('--device', default='cpu', help='e.g. cpu or cuda:0')
    parser.add_argument('--out', default='compare_overlays.png', help='output PNG')
    return parser.parse_args(argv)


def contact_map(insts: CompactInstances) -> np.ndarray:
    """Pixels where two instances touch or overlap (their masks grown by one pixel meet)."""
    count = np.zeros(insts.img_shape, dtype=np.uint16)
    kernel = np.ones((3, 3), np.uint8)
    height, width = insts.img_shape
    for (x0, y0), crop in zip(insts.offsets, insts.crops):
        grown = cv2.dilate(np.pad(crop, 1).view(np.uint8), kernel).astype(bool)
        gx0, gy0 = x0 - 1, y0 - 1
        cx0, cy0 = max(0, -gx0), max(0, -gy0)
        cx1, cy1 = min(grown.shape[1], width - gx0), min(grown.shape[0], height - gy0)
        count[gy0 + cy0:gy0 + cy1, gx0 + cx0:gx0 + cx1] += grown[cy0:cy1, cx0:cx1]
    return count >= 2


def auto_crop(insts: CompactInstances, size: int) -> Tuple[int, int, int, int]:
    """The ``size``-px window (inside the image) holding the most contact pixels."""
    height, width = insts.img_shape
    w, h = min(size, width), min(size, height)
    sums = cv2.integral(contact_map(insts).astype(np.uint8))
    window = sums[h:, w:] - sums[:-h, w:] - sums[h:, :-w] + sums[:-h, :-w]
    y, x = np.unravel_index(int(np.argmax(window)), window.shape)
    return int(x), int(y), w, h


def parse_crop(value: str, shape: Tuple[int, int]) -> Optional[Tuple[int, int, int, int]]:
    """``X,Y,W,H`` clipped to the image; None for 'auto'.

    Raises:
        ToolInputError: Not four integers, or a window outside the image.
    """
    if value == 'auto':
        return None
    if value == 'full':
        return 0, 0, shape[1], shape[0]
    try:
        x, y, w, h = (int(v) for v in value.split(','))
    except ValueError:
        raise ToolInputError(f"--crop '{value}': give X,Y,W,H (integers), 'auto' or 'full'") \
            from None
    x1, y1 = min(x + w, shape[1]), min(y + h, shape[0])
    if x < 0 or y < 0 or x1 <= x or y1 <= y:
        raise ToolInputError(f'--crop {value} lies outside the {shape[1]}x{shape[0]} image')
    return x, y, x1 - x, y1 - y


def titled(panel: np.ndarray, title: str) -> np.ndarray:
    """The panel under a dark title bar."""
    scale = font_scale(panel.shape[1]) * 1.2
    (_, th), base = cv2.getTextSize(title, FONT, scale, 1)
    bar = np.full((th + base + 10, panel.shape[1], 3), LEGEND_BACKGROUND, np.uint8)
    cv2.putText(bar, title, (6, th + 5), FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)
    return np.concatenate([bar, panel])


def side_by_side(panels: Sequence[np.ndarray]) -> np.ndarray:
    """Panels in a row, bottoms padded to the tallest, separated by ``GAP`` px."""
    height = max(p.shape[0] for p in panels)
    row: List[np.ndarray] = []
    for p in panels:
        pad = np.full((height - p.shape[0], p.shape[1], 3), LEGEND_BACKGROUND, np.uint8)
        if row:
            row.append(np.full((height, GAP, 3), 255, np.uint8))
        row.append(np.concatenate([p, pad]))
    return np.concatenate(row, axis=1)


def main(argv=None) -> np.ndarray:
    """Run the tool; returns the picture (BGR) it wrote."""
    args = parse_args(argv)
    if not 0 <= args.score_thr <= 1:
        raise ToolInputError(f'--score-thr must lie in [0, 1], got {args.score_thr}')
    if args.scale <= 0 or args.crop_size <= 0:
        raise ToolInputError('--scale and --crop-size must be > 0')
    check_device(args.device)
    titles = args.titles or [osp.splitext(osp.basename(c))[0] for c, _ in args.model]
    if len(titles) != len(args.model):
        raise ToolInputError(f'--titles: {len(titles)} titles for {len(args.model)} models')
    try:
        img = read_image(args.image)
    except ValueError as err:
        raise ToolInputError(str(err)) from None
    gt = None
    if args.gt and args.gt.endswith('.json'):
        gt = instances_from_polygons(labelme_polygons(args.gt), img.shape[:2])
    elif args.gt:
        labels = cv2.imread(args.gt, cv2.IMREAD_UNCHANGED)
        if labels is None or labels.shape[:2] != img.shape[:2] or labels.ndim != 2:
            raise ToolInputError(f'--gt {args.gt} is not a one-channel label map of the image size '
                                 f'{img.shape[1]}x{img.shape[0]}')
        gt = instances_from_label_map(labels.astype(np.int32))
    crop = parse_crop(args.crop, img.shape[:2])

    results = []
    for (config, checkpoint), title in zip(args.model, titles):
        cfg = load_config(config)
        check_checkpoint(checkpoint)
        print(f'{title}: {config}')
        try:
            model = init_a2bis_model(cfg, checkpoint, device=args.device)
        except CheckpointError as err:
            raise ToolInputError(str(err)) from None
        results.append(inference_a2bis(model, img, tile_size=args.tile_size, overlap=args.overlap,
                                       score_thr=args.score_thr, progress=True))
        # one-class models: the ground truth takes their class name (the GT files carry none)
        if gt is not None and len(results[0].classes) == 1:
            gt.classes, gt.palette = results[0].classes, results[0].palette
    if crop is None:
        crop = auto_crop(gt if gt is not None else results[0], args.crop_size)
    x, y, w, h = crop
    print(f'crop: {x},{y},{w},{h}')
    window = img[y:y + h, x:x + w]
    size = (max(1, round(w * args.scale)), max(1, round(h * args.scale)))
    panels = [titled(cv2.resize(window, size, interpolation=cv2.INTER_LINEAR), 'input')]
    named = ([('ground truth', gt)] if gt is not None else []) + list(zip(titles, results))
    for title, insts in named:
        part = insts.crop(x, y, x + w, y + h)
        # ground truth has no scores to label
        max_labels = 0 if insts is gt else 50
        panels.append(titled(draw_overlay(window, part, scale=args.scale, max_labels=max_labels,
                                          show_bboxes=args.show_bboxes), title))
        print(f'{title}: {len(part)} instances in the crop')
    picture = side_by_side(panels)
    write_png_atomic(picture, args.out)
    print(f'written: {args.out}')
    return picture


if __name__ == '__main__':
    run_tool(main)
