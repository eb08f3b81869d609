"""Instance overlays drawn with numpy and OpenCV in one pass (docs/inference.md, "Overlay").

One drawing for every picture of the project: ``tools/infer.py`` overlays, ``tools/test.py
--show-dir`` (through :class:`A2BISLocalVisualizer`) and the side-by-side model comparisons.

Why not mmdet's / mmrotate's visualizer: it draws with matplotlib patches, one per instance (28 s
for 2,000 nuclei), and matplotlib rescales the axes to fit a box that crosses the image edge, which
shrinks the picture inside a white frame. Here every mask is painted into numpy buffers of the
image's own size (out-of-image parts are clipped by slicing, boxes by OpenCV), so the image keeps
its size and position whatever the instances do, and the cost is linear in the mask pixels.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmdet.visualization.palette import get_palette
from mmrotate.structures import RotatedBoxes

from ..utils.progress import track

Color = Tuple[int, int, int]

# Class colours (RGB) of the overlays and of the GeoJSON classifications: saturated and light, so they
# stand out on pink/purple H&E and on dark fluorescence alike; mmdet's COCO palette (which data sets
# inherit) starts with crimson and dark red, which vanish on H&E.
MICROSCOPY_PALETTE = ((0, 255, 0), (255, 255, 0), (0, 255, 255), (255, 128, 0), (0, 128, 255),
                      (255, 0, 255), (160, 255, 160), (255, 255, 255), (255, 160, 200),
                      (170, 110, 40))

FONT = cv2.FONT_HERSHEY_SIMPLEX
LEGEND_BACKGROUND = (40, 40, 40)
LABEL_BACKGROUND = (20, 20, 20)
TEXT_COLOR = (255, 255, 255)


def microscopy_palette(num_classes: int) -> List[Color]:
    """``MICROSCOPY_PALETTE`` for ``num_classes`` classes (mmdet's random colours past ten)."""
    extra = get_palette('random', num_classes)[len(MICROSCOPY_PALETTE):]
    return [tuple(int(v) for v in c) for c in (list(MICROSCOPY_PALETTE) + list(extra))[:num_classes]]


def font_scale(width: int) -> float:
    """OpenCV font scale for a picture ``width`` px wide: about 10 px high at 512 px, 16 at 2048."""
    return float(np.clip(width / 3000, 0.35, 0.6))


def label_text(name: str, score: Optional[float] = None) -> str:
    """``'class: score'`` with the score in [0, 1] as stored (two decimals), or the class alone."""
    return name if score is None else f'{name}: {float(score):.2f}'


def mask_outline(crop: np.ndarray) -> np.ndarray:
    """Inner boundary of a bool mask crop: its pixels with a 4-neighbour outside the mask.

    The crop's own border counts as outside, so an instance touching its crop edge is closed.
    """
    inner = cv2.erode(crop.view(np.uint8), np.ones((3, 3), np.uint8),
                      borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return crop & (inner == 0)


def box_corners(bboxes: np.ndarray) -> np.ndarray:
    """``(n, 4, 2)`` corners of ``(n, 5)`` rotated (mmrotate convention) or ``(n, 4)`` xyxy boxes."""
    bboxes = np.asarray(bboxes, dtype=np.float64).reshape(len(bboxes), -1)
    if bboxes.shape[1] == 5:
        return RotatedBoxes(torch.from_numpy(bboxes)).convert_to('qbox').tensor.numpy().reshape(
            -1, 4, 2)
    if bboxes.shape[1] == 4:
        x0, y0, x1, y1 = bboxes.T
        return np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1),
                         np.stack([x1, y1], 1), np.stack([x0, y1], 1)], axis=1)
    raise ValueError(f'boxes must be (n, 5) rotated or (n, 4) xyxy, got {bboxes.shape}')


def _legend_layout(classes: Sequence[str], width: int, scale: float) -> Tuple[list, int]:
    """Positions ``(x, row)`` of the legend items and the strip height.

    Each item's width is measured with a six-digit count placeholder, so the layout depends only on
    the class names and the width: the GT and prediction panels of mmdet's ``add_datasample`` get
    strips of the same height and can be stacked side by side.
    """
    (_, text_h), base = cv2.getTextSize('Ag', FONT, scale, 1)
    line_h = text_h + base + 8
    swatch, pad = text_h + 2, 12
    x, row, items = pad // 2, 0, []
    for name in classes:
        item_w = swatch + 4 + cv2.getTextSize(f'{name}: 000000', FONT, scale, 1)[0][0]
        if x + item_w > width - pad // 2 and x > pad // 2:
            x, row = pad // 2, row + 1
        items.append((x, row))
        x += item_w + pad
    # one more row for the instance count and the label note
    return items, (row + 2) * line_h + 4


def _draw_legend(width: int, classes: Sequence[str], palette: Sequence[Color],
                 counts: np.ndarray, note: str, scale: float) -> np.ndarray:
    """The legend strip: a colour swatch, the class name and its count per class, then ``note``."""
    items, height = _legend_layout(classes, width, scale)
    strip = np.full((height, width, 3), LEGEND_BACKGROUND, dtype=np.uint8)
    (_, text_h), base = cv2.getTextSize('Ag', FONT, scale, 1)
    line_h = text_h + base + 8
    for (x, row), name, color, count in zip(items, classes, palette, counts):
        y = 4 + row * line_h
        cv2.rectangle(strip, (x, y + 2), (x + text_h + 2, y + text_h + 4), tuple(map(int, color)),
                      thickness=-1)
        cv2.putText(strip, f'{name}: {int(count)}', (x + text_h + 6, y + text_h + 3), FONT, scale,
                    TEXT_COLOR, 1, cv2.LINE_AA)
    last_row = max((r for _, r in items), default=-1) + 1
    cv2.putText(strip, note, (6, 4 + last_row * line_h + text_h + 3), FONT, scale, TEXT_COLOR, 1,
                cv2.LINE_AA)
    return strip


def _draw_labels(canvas: np.ndarray, order: np.ndarray, texts: Sequence[str], anchors: np.ndarray,
                 scale: float) -> None:
    """Write ``texts`` on dark boxes at their ``anchors`` (top-left), best first, skipping any that
    would cover an earlier one, so that labels stay readable where instances crowd."""
    taken = np.zeros(canvas.shape[:2], dtype=bool)
    height, width = canvas.shape[:2]
    for i in order:
        (tw, th), base = cv2.getTextSize(texts[i], FONT, scale, 1)
        bw, bh = tw + 4, th + base + 4
        x0 = int(np.clip(anchors[i, 0], 0, max(width - bw, 0)))
        y0 = int(np.clip(anchors[i, 1] - bh, 0, max(height - bh, 0)))
        if taken[y0:y0 + bh, x0:x0 + bw].any():
            continue
        taken[y0:y0 + bh, x0:x0 + bw] = True
        cv2.rectangle(canvas, (x0, y0), (x0 + bw - 1, y0 + bh - 1), LABEL_BACKGROUND, -1)
        cv2.putText(canvas, texts[i], (x0 + 2, y0 + th + 2), FONT, scale, TEXT_COLOR, 1,
                    cv2.LINE_AA)


def draw_instances(image: np.ndarray,
                   offsets: np.ndarray,
                   crops: Sequence[np.ndarray],
                   labels: np.ndarray,
                   classes: Sequence[str],
                   palette: Sequence[Color],
                   scores: Optional[np.ndarray] = None,
                   bboxes: Optional[np.ndarray] = None,
                   alpha: float = 0.4,
                   show_bboxes: bool = False,
                   max_labels: int = 50,
                   legend: bool = True,
                   progress: bool = False) -> np.ndarray:
    """Draw instance masks on an image in one pass.

    Masks are semi-transparent fills in their class colour with an opaque one-pixel contour, so
    touching instances stay apart and crossing ones show their overlap (``k`` masks on a pixel
    blend with opacity ``1 - (1 - alpha) ** k``). Labels ``class: score`` (score in [0, 1]) are
    written only when there are at most ``max_labels`` instances; the legend strip added below the
    image gives the class colours and counts.

    Args:
        image: ``(H, W, 3)`` uint8 image; ``palette`` is in the same channel order (RGB for
            mmengine's visualizers).
        offsets: ``(n, 2)`` ``(x0, y0)`` of each mask crop in ``image`` pixels.
        crops: ``n`` bool mask crops; parts outside the image are clipped.
        labels: ``(n,)`` 0-based class indices.
        classes: class names (index = label).
        palette: one colour per class.
        scores: ``(n,)`` scores in [0, 1], or None (ground truth: labels give the class only).
        bboxes: ``(n, 5)`` rotated or ``(n, 4)`` xyxy boxes in ``image`` pixels, or None.
        alpha: Opacity of one mask fill.
        show_bboxes: Draw the boxes (one pixel, class colour).
        max_labels: Most instances that get a text label; 0 writes none.
        legend: Add the legend strip below the image.
        progress: Show a progress bar over the instances.

    Returns:
        np.ndarray: the drawn ``(H + legend height, W, 3)`` uint8 picture; the image keeps its
        pixels' positions in the top ``H`` rows.
    """
    height, width = image.shape[:2]
    n = len(crops)
    labels = np.asarray(labels, dtype=np.int64).reshape(n)
    colors = np.array([palette[k] for k in range(len(classes))], dtype=np.float32).reshape(-1, 3)
    color_sum = np.zeros((height, width, 3), dtype=np.float32)
    count = np.zeros((height, width), dtype=np.uint16)
    outline = np.full((height, width), -1, dtype=np.int64)  # label of the contour on a pixel
    anchors = np.zeros((n, 2), dtype=np.int64)
    for i in track(range(n), n, 'overlay', enable=progress):
        x0, y0 = (int(v) for v in offsets[i])
        crop = crops[i]
        anchors[i] = x0, y0
        # clip the crop to the image
        cx0, cy0 = max(0, -x0), max(0, -y0)
        cx1 = min(crop.shape[1], width - x0)
        cy1 = min(crop.shape[0], height - y0)
        if cx1 <= cx0 or cy1 <= cy0:
            continue
        window = np.s_[y0 + cy0:y0 + cy1, x0 + cx0:x0 + cx1]
        part = crop[cy0:cy1, cx0:cx1]
        color_sum[window][part] += colors[labels[i]]
        count[window] += part
        outline[window][mask_outline(crop)[cy0:cy1, cx0:cx1]] = labels[i]

    canvas = image.astype(np.float32)
    covered = count > 0
    opacity = 1 - (1 - alpha) ** count[covered].astype(np.float32)
    mean_color = color_sum[covered] / count[covered, None]
    canvas[covered] = canvas[covered] * (1 - opacity[:, None]) + mean_color * opacity[:, None]
    on_outline = outline >= 0
    canvas[on_outline] = colors[outline[on_outline]]
    canvas = canvas.round().clip(0, 255).astype(np.uint8)

    if show_bboxes and bboxes is not None and len(bboxes):
        corners = box_corners(bboxes)
        for k in np.unique(labels):
            # sub-pixel corners (shift=4); OpenCV clips lines to the canvas
            pts = [np.round(c * 16).astype(np.int32) for c in corners[labels == k]]
            cv2.polylines(canvas, pts, True, tuple(float(v) for v in colors[k]), 1, cv2.LINE_AA,
                          shift=4)
    scale = font_scale(width)
    if 0 < n <= max_labels:
        texts = [label_text(classes[k], None if scores is None else scores[i])
                 for i, k in enumerate(labels)]
        order = np.arange(n) if scores is None else np.argsort(-np.asarray(scores), kind='stable')
        _draw_labels(canvas, order, texts, anchors, scale)
    if not legend:
        return canvas
    note = f'{n} instances'
    if n > max_labels > 0:
        note += f' (labels shown for {max_labels} or fewer)'
    counts = np.bincount(labels, minlength=len(classes))[:len(classes)]
    return np.concatenate([canvas, _draw_legend(width, classes, palette, counts, note, scale)])
