"""The voting decoder (``test_cfg.decoder='vote'``): each foreground pixel joins the instance its
own predicted box agrees with, masks at input resolution when a full-resolution map is given.

Steps for one image (docs/decoder.md has the measurements behind each choice):

1. Seeds: pixels whose argmax class is an object class, score ``P_t * S >= score_thr``, the best
   ``nms_pre`` of them (the cap grows with the image area, see ``cap_area``).
2. Class-agnostic rotated NMS at ``nms.iou_threshold`` (0.5: crossing chromosomes, whose boxes
   overlap up to ~0.4, both survive), at most ``max_per_img`` (scaled like ``nms_pre``). A cap
   that cuts instances is reported once per image.
3. Voting on the stride-s grid: every foreground pixel (argmax not background) looks at the kept
   boxes that contain its block centre (grown by ``vote_margin`` input px). An object-class pixel
   joins the one whose box agrees best with the pixel's own box (ProbIoU of the two boxes'
   Gaussians; no vote when the best agreement is below ``vote_thr``); an overlap-class pixel joins
   all of them (the overlap class exists to give a pixel to several instances).
4. Instances with fewer than ``min_pixels`` voted object pixels are dropped, and so is an instance
   whose voted pixels lie mostly (``mask_nms_thr``) inside a better-scored instance's (duplicates
   that NMS left, e.g. two seeds on one long chromosome). Class = the class with the most
   probability mass over the instance's object pixels; score = its seed's score.
5. Masks: with a full-resolution foreground map (``maps['fg']``, (1, H, W) probabilities at input
   resolution, optional ``maps['overlap']``), each foreground input pixel goes to the instance
   that owns its block; where a block belongs to several instances the pixel joins all of them
   if it is an overlap pixel, else the instance of the nearest input pixel that has a single
   owner. Without ``fg`` the stride-s block masks are resampled bilinearly as the paper decoder
   does. Then to the original size (``rescale``) by bilinear resampling at 0.5.
"""
import logging
import math
from typing import Dict, Optional, Tuple

import cv2
import numpy as np
import torch
from mmdet.registry import TASK_UTILS
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from mmrotate.structures import RotatedBoxes
from scipy.ndimage import distance_transform_edt
from torch import Tensor

from a2bis_mm.structures import points_in_rboxes, rbox_aabb, rbox_candidate_pairs, rescale_rboxes

from .nms import rotated_nms

__all__ = ['A2BVoteDecoder', 'VOTE_DEFAULTS', 'prob_iou', 'uncovered', 'warn_cap']

VOTE_DEFAULTS = dict(
    score_thr=0.01,
    nms=dict(type='nms_rotated', iou_threshold=0.5),
    nms_pre=2000,
    max_per_img=300,
    cap_area=256 * 256,
    vote_margin=1.0,
    vote_thr=0.0,
    min_pixels=1,
    merge_thr=0.7,
    contain_thr=0.8,
    contain_agree=0.3,
    refine_iters=1,
    mask_thr=0.5,
    mask_source='auto')


def _gaussian(boxes: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Covariance entries (s11, s22, s12) of the uniform distribution on each rotated box."""
    w2, h2 = boxes[..., 2]**2 / 12, boxes[..., 3]**2 / 12
    cos, sin = torch.cos(boxes[..., 4]), torch.sin(boxes[..., 4])
    return (w2 * cos**2 + h2 * sin**2, w2 * sin**2 + h2 * cos**2, (w2 - h2) * sin * cos)


def prob_iou(boxes1: Tensor, boxes2: Tensor, eps: float = 1e-9) -> Tensor:
    """ProbIoU of rotated boxes, pairwise (aligned, broadcasting): ``1 - Hellinger distance``.

    The boxes become Gaussians (mean = centre, covariance of the uniform distribution on the box);
    ``1 - sqrt(1 - exp(-D_B))`` with ``D_B`` their Bhattacharyya distance. 1 for equal boxes, a
    smooth, cheap (closed form) stand-in for the rotated IoU that also ranks disjoint boxes.
    Computed in float64: ``1 - sqrt(1 - BC)`` loses precision near 1 in float32.
    """
    dtype = boxes1.dtype
    boxes1, boxes2 = boxes1.double(), boxes2.double()
    a1, b1, c1 = _gaussian(boxes1)
    a2, b2, c2 = _gaussian(boxes2)
    a, b, c = (a1 + a2) / 2, (b1 + b2) / 2, (c1 + c2) / 2
    det = (a * b - c * c).clamp(min=eps)
    dx = boxes1[..., 0] - boxes2[..., 0]
    dy = boxes1[..., 1] - boxes2[..., 1]
    maha = (b * dx * dx + a * dy * dy - 2 * c * dx * dy) / det
    det1 = (a1 * b1 - c1 * c1).clamp(min=eps)
    det2 = (a2 * b2 - c2 * c2).clamp(min=eps)
    dist = maha / 8 + 0.5 * torch.log(det / torch.sqrt(det1 * det2))
    return (1 - torch.sqrt((-torch.expm1(-dist.clamp(min=0))).clamp(min=0))).to(dtype)


def _scaled_cap(cap: int, img_area: float, cap_area: Optional[float]) -> int:
    """A cap per ``cap_area`` input px², grown with the image area (never below ``cap``)."""
    if cap <= 0:
        return cap
    if not cap_area:
        return int(cap)
    return int(math.ceil(cap * max(1.0, img_area / cap_area)))


def warn_cap(img_meta: dict, what: str, cap: int, lost: str) -> None:
    """One warning per image and cap: the cap cut instances (or pixels no instance covers)."""
    print_log(f'{img_meta.get("img_path", "image")}: test_cfg.{what} = {cap} cut {lost}; '
              f'raise it (or cap_area, the image area it is meant for)',
              logger='current', level=logging.WARNING)


def uncovered(boxes: Tensor, pixels: Tensor, h: int, w: int, stride: int,
              margin: float) -> int:
    """How many of the flat feature ``pixels`` lie outside every box (block centres)."""
    if pixels.numel() == 0:
        return 0
    covered = torch.zeros(h * w, dtype=torch.bool, device=pixels.device)
    if boxes.numel():
        _, rows, cols = _window_pairs(boxes, h, w, stride, margin)
        covered[rows * w + cols] = True
    return int((~covered[pixels]).sum())


def _empty(device, out_shape) -> InstanceData:
    results = InstanceData()
    results.bboxes = RotatedBoxes(torch.zeros((0, 5), device=device))
    results.scores = torch.zeros((0, ), device=device)
    results.labels = torch.zeros((0, ), dtype=torch.long, device=device)
    results.masks = torch.zeros((0, *out_shape), dtype=torch.bool, device=device)
    return results


def _window_pairs(boxes: Tensor, h: int, w: int, stride: int,
                  margin: float) -> Tuple[Tensor, Tensor, Tensor]:
    """(box, row, col) of every feature pixel whose block centre lies in a box grown by margin.

    Each box only visits the feature pixels of its axis-aligned window, so memory is
    O(sum of window areas), not O(n * h * w).
    """
    n = boxes.shape[0]
    x0, y0, x1, y1 = rbox_aabb(boxes)
    half = stride / 2
    # block centre of (r, c) is (s*c + s/2, s*r + s/2); clamp in float first (huge boxes)
    c0 = torch.ceil(((x0 - margin - half) / stride).clamp(0, w)).long()
    c1 = torch.floor(((x1 + margin - half) / stride).clamp(-1, w - 1)).long()
    r0 = torch.ceil(((y0 - margin - half) / stride).clamp(0, h)).long()
    r1 = torch.floor(((y1 + margin - half) / stride).clamp(-1, h - 1)).long()
    win_w = (c1 - c0 + 1).clamp(min=0)
    sizes = (r1 - r0 + 1).clamp(min=0) * win_w
    box_ids = torch.repeat_interleave(torch.arange(n, device=boxes.device), sizes)
    offsets = torch.arange(box_ids.numel(), device=boxes.device) - \
        (torch.cumsum(sizes, 0) - sizes)[box_ids]
    rows = r0[box_ids] + torch.div(offsets, win_w[box_ids], rounding_mode='floor')
    cols = c0[box_ids] + offsets % win_w[box_ids]
    centers = torch.stack([cols, rows], -1).to(boxes.dtype) * stride + half
    inside = points_in_rboxes(centers, boxes[box_ids], margin)
    return box_ids[inside], rows[inside], cols[inside]


@TASK_UTILS.register_module()
class A2BVoteDecoder:
    """Voting decoder for the A2B-IS maps (see the module docstring and docs/decoder.md).

    Maps: ``skeleton`` (1, h, w), ``seg`` (C, h, w), ``rboxes`` (h, w, 5) and optionally ``fg``
    / ``overlap`` (1, H, W) probabilities at input resolution (the head's full-resolution branch).

    Args:
        stride (int): feature stride s.
        **cfg: ``score_thr``, ``nms``, ``nms_pre``, ``max_per_img`` (caps per ``cap_area`` input
            px², scaled up with the image area; ``cap_area=None`` for fixed caps, ``<= 0`` for
            no cap), ``vote_margin``, ``vote_thr``, ``min_pixels``, ``mask_nms_thr``,
            ``mask_thr``, ``mask_source`` (``'auto'``: the ``fg`` map when given, else the
            stride-s blocks; ``'fullres'``; ``'stride'``). Keys that only another decoder knows
            are ignored, so one ``test_cfg`` serves all decoders.
    """

    KEYS = tuple(VOTE_DEFAULTS)

    def __init__(self, stride: int = 2, **cfg) -> None:
        self.stride = int(stride)
        self.cfg = ConfigDict(VOTE_DEFAULTS)
        self.cfg.update({k: v for k, v in cfg.items() if k in self.KEYS})
        nms = self.cfg.nms
        if nms.get('type', 'nms_rotated') != 'nms_rotated' or nms.get('iou_threshold', 0) <= 0:
            raise ValueError(f"nms must be dict(type='nms_rotated', iou_threshold>0), got {nms}")
        if self.cfg.mask_source not in ('auto', 'fullres', 'stride'):
            raise ValueError("mask_source must be 'auto', 'fullres' or 'stride', got "
                             f'{self.cfg.mask_source!r}')

    def decode(self, maps: Dict[str, Tensor], img_meta: dict,
               rescale: bool = True) -> InstanceData:
        """Decode one image's maps into instances (see the class docstring)."""
        cfg, s = self.cfg, self.stride
        skeleton, seg, rboxes = maps['skeleton'], maps['seg'], maps['rboxes']
        if seg.dim() != 3 or seg.shape[0] < 3:
            raise ValueError(f'seg must be (C>=3, h, w), got {tuple(seg.shape)}')
        num_channels, h, w = seg.shape
        if tuple(skeleton.shape) != (1, h, w) or tuple(rboxes.shape) != (h, w, 5):
            raise ValueError(f'skeleton must be (1, {h}, {w}) and rboxes ({h}, {w}, 5), got '
                             f'{tuple(skeleton.shape)} and {tuple(rboxes.shape)}')
        overlap_label = num_channels - 1
        device = seg.device
        img_h, img_w = (int(x) for x in img_meta['img_shape'][:2])
        if rescale:
            out_shape = tuple(int(x) for x in img_meta['ori_shape'][:2])
            sx, sy = (float(x) for x in img_meta.get('scale_factor', (1.0, 1.0))[:2])
        else:
            out_shape, (sx, sy) = (img_h, img_w), (1.0, 1.0)
        rboxes = rboxes.float().reshape(-1, 5)
        seg = seg.float()

        # 1. seeds
        prob, cls_map = seg.max(dim=0)
        inside = torch.zeros((h, w), dtype=torch.bool, device=device)
        inside[:int(math.ceil(img_h / s)), :int(math.ceil(img_w / s))] = True
        fg_map = (cls_map > 0) & inside
        scores = (prob * skeleton[0].float()).flatten()
        valid = ((cls_map >= 1) & (cls_map < overlap_label) & inside).flatten()
        valid &= (scores >= cfg.score_thr) & torch.isfinite(rboxes).all(dim=1)
        cand = valid.nonzero().squeeze(1)
        area = float(img_h * img_w)
        nms_pre = _scaled_cap(cfg.nms_pre, area, cfg.cap_area)
        max_per_img = _scaled_cap(cfg.max_per_img, area, cfg.cap_area)
        cut = None
        if 0 < nms_pre < cand.numel():
            top = scores[cand].topk(nms_pre).indices
            cut = torch.ones(cand.numel(), dtype=torch.bool, device=device)
            cut[top] = False
            cut, cand = cand[cut], cand[top]
        if cand.numel() == 0:
            return _empty(device, out_shape)

        # 2. NMS
        keep = rotated_nms(rboxes[cand], scores[cand], cfg.nms['iou_threshold'], -1)
        if 0 < max_per_img < keep.numel():
            warn_cap(img_meta, 'max_per_img', max_per_img,
                           f'{keep.numel() - max_per_img} instances')
            keep = keep[:max_per_img]
        seeds = cand[keep]
        boxes, inst_scores = rboxes[seeds], scores[seeds]
        n = boxes.shape[0]

        # 3. voting on the stride-s grid, 4. refined boxes, duplicates merged, vote again
        vote_args = (rboxes, cls_map, fg_map, overlap_label, cfg.vote_margin, cfg.vote_thr)
        box_ids, flat, winner = self._vote(boxes, *vote_args)
        for _ in range(int(cfg.refine_iters)):
            boxes, keep = self._refine(boxes, box_ids, flat, winner, rboxes, scores, w)
            boxes, inst_scores = boxes[keep], inst_scores[keep]
            box_ids, flat, winner = self._vote(boxes, *vote_args)
        n = boxes.shape[0]
        if cut is not None:
            # the candidates the cap cut only matter where no kept box covers them
            lost = uncovered(boxes, cut, h, w, s, cfg.vote_margin)
            if lost:
                warn_cap(img_meta, 'nms_pre', nms_pre,
                               f'{lost} candidate pixels outside every kept box')
        own = torch.bincount(box_ids[winner], minlength=n)
        alive = own >= max(int(cfg.min_pixels), 1)
        # class: the most probability mass over the instance's own pixels
        cls_mass = torch.zeros((n, num_channels), device=device)
        cls_mass.index_add_(0, box_ids[winner], seg[:, flat[winner] // w, flat[winner] % w].T)
        labels = cls_mass[:, 1:overlap_label].argmax(dim=1)
        idx = alive.nonzero().squeeze(1)
        if idx.numel() == 0:
            return _empty(device, out_shape)
        remap = torch.full((n, ), -1, dtype=torch.long, device=device)
        remap[idx] = torch.arange(idx.numel(), device=device)
        sel = alive[box_ids]
        box_ids, flat, winner = remap[box_ids[sel]], flat[sel], winner[sel]
        boxes, inst_scores, labels = boxes[idx], inst_scores[idx], labels[idx]

        # 5. masks
        use_full = cfg.mask_source == 'fullres' or (cfg.mask_source == 'auto' and 'fg' in maps)
        if use_full:
            if 'fg' not in maps:
                raise KeyError("mask_source='fullres' needs maps['fg'] at input resolution")
            masks = self._fullres_masks(maps, box_ids, flat, winner, idx.numel(), (h, w),
                                        (img_h, img_w), out_shape, (sx, sy))
        else:
            masks = self._stride_masks(box_ids, flat, idx.numel(), (h, w), (img_h, img_w),
                                       out_shape, (sx, sy))
        results = InstanceData()
        results.bboxes = RotatedBoxes(rescale_rboxes(boxes, (sx, sy)) if rescale else boxes)
        results.scores = inst_scores
        results.labels = labels
        results.masks = torch.from_numpy(masks).to(device)
        return results

    __call__ = decode

    def _vote(self, boxes: Tensor, rboxes: Tensor, cls_map: Tensor, fg_map: Tensor,
              overlap_label: int, margin: float, vote_thr: float) -> Tuple[Tensor, Tensor, Tensor]:
        """(instance, flat pixel, own) memberships of the foreground pixels (step 3).

        ``own`` marks the object-class pixels that chose this instance; overlap-class pixels are
        members of every instance whose box contains them.
        """
        h, w = cls_map.shape
        n = boxes.shape[0]
        box_ids, rows, cols = _window_pairs(boxes, h, w, self.stride, margin)
        on = fg_map[rows, cols]
        box_ids, rows, cols = box_ids[on], rows[on], cols[on]
        flat = rows * w + cols
        is_ovl = cls_map[rows, cols] == overlap_label
        agree = prob_iou(boxes[box_ids], rboxes[flat])
        obj = ~is_ovl & (agree >= vote_thr)
        best = torch.full((h * w, ), -1.0, device=boxes.device)
        best.scatter_reduce_(0, flat[obj], agree[obj], 'amax')
        winner = obj & (agree == best[flat])
        # ties (equal agreement): the better-scored (lower index after NMS) instance wins
        first = torch.full((h * w, ), n, dtype=torch.long, device=boxes.device)
        first.scatter_reduce_(0, flat[winner], box_ids[winner], 'amin')
        winner &= box_ids == first[flat]
        member = winner | is_ovl
        return box_ids[member], flat[member], winner[member]

    def _refine(self, boxes: Tensor, box_ids: Tensor, flat: Tensor, winner: Tensor,
                rboxes: Tensor, scores: Tensor, map_w: int) -> Tuple[Tensor, Tensor]:
        """Score-weighted mean box of each instance's own pixels; duplicates merged (step 4).

        A seed's box is one pixel's prediction; the mean over the pixels that voted for it is
        steadier. Of two instances that are one object (:meth:`_duplicates`) one is dropped and
        its pixels vote again.

        Returns:
            tuple[Tensor, Tensor]: the refined boxes (n, 5) and the indices of those kept.
        """
        n = boxes.shape[0]
        ids, pix = box_ids[winner], flat[winner]
        weight = scores[pix].clamp(min=1e-6)
        b = rboxes[pix]
        # w >= h, so that one box has one (w, h, t) up to t mod pi; angles averaged doubled
        swap = b[:, 2] < b[:, 3]
        bw = torch.where(swap, b[:, 3], b[:, 2]).clamp(min=1e-3)
        bh = torch.where(swap, b[:, 2], b[:, 3]).clamp(min=1e-3)
        t = b[:, 4] + swap.to(b.dtype) * (math.pi / 2)
        stats = torch.stack([b[:, 0], b[:, 1], bw.log(), bh.log(), torch.cos(2 * t),
                             torch.sin(2 * t)], 1) * weight[:, None]
        acc = torch.zeros((n, 6), device=boxes.device).index_add_(0, ids, stats)
        total = torch.zeros(n, device=boxes.device).index_add_(0, ids, weight)
        has = total > 0
        mean = acc[has] / total[has, None]
        refined = boxes.clone()
        refined[has] = torch.stack([mean[:, 0], mean[:, 1], mean[:, 2].exp(), mean[:, 3].exp(),
                                    torch.atan2(mean[:, 5], mean[:, 4]) / 2], 1)
        keep = has.clone()
        if n > 1:
            drop = self._duplicates(refined, ids, pix, rboxes, map_w)
            # i outranks j: settled by ascending i, so each i's fate is known when it is used
            for a, b_, which in drop:
                if keep[a] and keep[b_]:
                    keep[b_ if which else a] = False
        return refined, keep.nonzero().squeeze(1)

    def _duplicates(self, boxes: Tensor, ids: Tensor, pix: Tensor, rboxes: Tensor,
                    map_w: int) -> list:
        """Pairs (i, j, drop_j) of instances that are one object, i outranking j.

        Two tests, either suffices: the refined boxes agree (ProbIoU >= ``merge_thr``); or one
        instance's own pixels lie inside the other's box (fraction >= ``contain_thr``, block
        centres, ``vote_margin``) and their boxes resemble it (mean ProbIoU >= ``contain_agree``)
        -- a second seed on one long object whose pixels' angles scatter (their clusters' mean
        boxes can differ by more than a crossing pair's). Crossing objects fail both: each one's
        own pixels run out of the other's box, and the shared pixels are overlap class, not own.
        A small object inside a large box fails the resemblance test.
        """
        cfg = self.cfg
        i, j = rbox_candidate_pairs(boxes, 1e-6)
        if i.numel() == 0:
            return []
        merge = torch.zeros(i.numel(), dtype=torch.bool, device=boxes.device)
        drop_j = torch.ones(i.numel(), dtype=torch.bool, device=boxes.device)
        if cfg.merge_thr is not None and cfg.merge_thr < 1:
            merge |= prob_iou(boxes[i], boxes[j]) >= cfg.merge_thr
        if cfg.contain_thr is not None and cfg.contain_thr <= 1:
            order = torch.argsort(ids, stable=True)
            ids_s, pix_s = ids[order], pix[order]
            n = boxes.shape[0]
            bounds = torch.searchsorted(ids_s, torch.arange(n + 1, device=ids.device))
            for src, dst, is_j in ((j, i, True), (i, j, False)):
                counts = bounds[src + 1] - bounds[src]
                pair = torch.repeat_interleave(torch.arange(src.numel(), device=ids.device), counts)
                if pair.numel() == 0:
                    continue
                offs = torch.arange(pair.numel(), device=ids.device) - \
                    (torch.cumsum(counts, 0) - counts)[pair]
                p = pix_s[bounds[src][pair] + offs]
                centres = torch.stack([p % map_w, p // map_w], 1).float() * self.stride + \
                    self.stride / 2
                inside = points_in_rboxes(centres, boxes[dst[pair]], cfg.vote_margin).float()
                agree = prob_iou(boxes[dst[pair]], rboxes[p])
                total = counts.clamp(min=1).float()
                frac = torch.zeros(src.numel(), device=ids.device).index_add_(0, pair, inside)
                res = torch.zeros(src.numel(), device=ids.device).index_add_(0, pair, agree)
                hit = (frac / total >= cfg.contain_thr) & (res / total >= cfg.contain_agree) & \
                    (counts > 0) & ~merge
                merge |= hit
                if not is_j:  # i's pixels lie in j's box: j absorbs i
                    drop_j[hit] = False
        order = torch.argsort(i[merge], stable=True)
        return list(zip(i[merge][order].tolist(), j[merge][order].tolist(),
                        drop_j[merge][order].tolist()))

    def _stride_masks(self, box_ids, flat, n, feat_shape, img_shape, out_shape,
                      scale) -> np.ndarray:
        """Each instance's stride-s blocks, resampled bilinearly to the output grid at 0.5."""
        h, w = feat_shape
        s = self.stride
        masks = np.zeros((n, *out_shape), dtype=bool)
        ids = box_ids.cpu().numpy()
        rr, cc = (flat // w).cpu().numpy(), (flat % w).cpu().numpy()
        order = np.argsort(ids, kind='stable')
        ids, rr, cc = ids[order], rr[order], cc[order]
        bounds = np.searchsorted(ids, np.arange(n + 1))
        for i in range(n):
            a, b = bounds[i], bounds[i + 1]
            if a == b:
                continue
            r0, r1, c0, c1 = rr[a:b].min(), rr[a:b].max() + 1, cc[a:b].min(), cc[a:b].max() + 1
            block = np.zeros((r1 - r0, c1 - c0), np.float32)
            block[rr[a:b] - r0, cc[a:b] - c0] = 1
            # a block covers s x s input px: sample at input resolution first
            win = np.repeat(np.repeat(block, s, 0), s, 1)
            _paste(masks[i], win, r0 * s, c0 * s, img_shape, scale, self.cfg.mask_thr)
        return masks

    def _fullres_masks(self, maps, box_ids, flat, winner, n, feat_shape, img_shape, out_shape,
                       scale) -> np.ndarray:
        """Masks at input resolution from the ``fg`` / ``overlap`` maps and the block owners."""
        h, w = feat_shape
        s = self.stride
        img_h, img_w = img_shape
        thr = self.cfg.mask_thr
        fg = maps['fg'][0, :img_h, :img_w].float().cpu().numpy() >= thr
        overlap = maps.get('overlap')
        overlap = (overlap[0, :img_h, :img_w].float().cpu().numpy() >= thr) if overlap is not None \
            else np.zeros_like(fg)
        ids = box_ids.cpu().numpy()
        fl = flat.cpu().numpy()
        # number of instances per block and the single owner where there is one
        nb = np.bincount(fl, minlength=h * w)
        owner = np.full(h * w, -1, np.int64)
        single = nb[fl] == 1
        owner[fl[single]] = ids[single]
        owner_full = np.repeat(np.repeat(owner.reshape(h, w), s, 0), s, 1)[:img_h, :img_w]
        nb_full = np.repeat(np.repeat(nb.reshape(h, w), s, 0), s, 1)[:img_h, :img_w]
        label = np.where(fg & (nb_full == 1), owner_full, -1)
        # shared blocks and foreground outside every block: the nearest single-owner pixel
        todo = fg & (nb_full != 1)
        if todo.any() and (label >= 0).any():
            _, (iy, ix) = distance_transform_edt(label < 0, return_indices=True)
            nearest = label[iy, ix]
            near_ok = todo & (nb_full == 0)
            # foreground outside any voted block joins a neighbour at most one block away
            dist2 = (iy - np.arange(img_h)[:, None])**2 + (ix - np.arange(img_w)[None])**2
            near_ok &= dist2 <= s * s
            label = np.where(near_ok, nearest, label)
            shared = todo & (nb_full > 1)
        else:
            shared = np.zeros_like(fg)
            nearest = label
        ys, xs = np.nonzero(label >= 0)
        pairs = [(label[ys, xs], ys, xs)]
        if shared.any():
            # members of each shared block
            multi = nb[fl] > 1
            m_ids, m_fl = ids[multi], fl[multi]
            sy_, sx_ = np.nonzero(shared)
            blk = (sy_ // s) * w + (sx_ // s)
            near = nearest[sy_, sx_]
            ovl = overlap[sy_, sx_]
            # (pixel, member) pairs through the sorted block index
            order = np.argsort(m_fl, kind='stable')
            m_ids, m_fl = m_ids[order], m_fl[order]
            lo = np.searchsorted(m_fl, blk, 'left')
            cnt = np.searchsorted(m_fl, blk, 'right') - lo
            pix = np.repeat(np.arange(blk.size), cnt)
            mem = m_ids[np.repeat(lo, cnt) + np.arange(pix.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)]
            # an overlap pixel joins every member, another pixel the member nearest to it
            # (or, if the nearest single-owner pixel belongs to none of them, the first member)
            take = ovl[pix] | (mem == near[pix])
            has = np.zeros(blk.size, bool)
            has[pix[take]] = True
            first = np.ones(pix.size, bool)
            first[1:] = pix[1:] != pix[:-1]
            take |= first & ~has[pix]
            pairs.append((mem[take], sy_[pix[take]], sx_[pix[take]]))
        inst = np.concatenate([p[0] for p in pairs])
        ys = np.concatenate([p[1] for p in pairs])
        xs = np.concatenate([p[2] for p in pairs])
        return _paste_all(inst, ys, xs, n, img_shape, out_shape, scale, 0.5)


def _paste_all(inst: np.ndarray, ys: np.ndarray, xs: np.ndarray, n: int,
               img_shape: Tuple[int, int], out_shape: Tuple[int, int],
               scale: Tuple[float, float], thr: float) -> np.ndarray:
    """(n, H, W) output masks from (instance, y, x) input-resolution pixels.

    Without resampling the pixels are set directly; otherwise each instance's window is resampled
    (:func:`_paste`).
    """
    masks = np.zeros((n, *out_shape), dtype=bool)
    if scale[0] == 1.0 and scale[1] == 1.0:
        # all pixels at once: a window per instance cost ~2x as much (331 instances on a whole
        # cpm15 tile)
        inside = (ys < out_shape[0]) & (xs < out_shape[1])
        masks[inst[inside], ys[inside], xs[inside]] = True
        return masks
    order = np.argsort(inst, kind='stable')
    inst, ys, xs = inst[order], ys[order], xs[order]
    bounds = np.searchsorted(inst, np.arange(n + 1))
    for i in range(n):
        a, b = bounds[i], bounds[i + 1]
        if a == b:
            continue
        y, x = ys[a:b], xs[a:b]
        y0, x0 = y.min(), x.min()
        win = np.zeros((y.max() - y0 + 1, x.max() - x0 + 1), np.float32)
        win[y - y0, x - x0] = 1
        _paste(masks[i], win, y0, x0, img_shape, scale, thr)
    return masks


def _paste(out: np.ndarray, win: np.ndarray, y0: int, x0: int, img_shape: Tuple[int, int],
           scale: Tuple[float, float], thr: float) -> None:
    """Resample an input-resolution window (top-left input pixel (y0, x0)) into ``out``.

    Output pixel ``X`` samples input point ``(X + 0.5) * sx - 0.5`` (pixel-centre aligned, as
    ``cv2.resize``); values >= ``thr`` are set.
    """
    sx, sy = scale
    out_h, out_w = out.shape
    if sx == 1.0 and sy == 1.0:
        y1, x1 = min(y0 + win.shape[0], out_h), min(x0 + win.shape[1], out_w)
        out[y0:y1, x0:x1] |= win[:y1 - y0, :x1 - x0] >= thr
        return
    img_h, img_w = img_shape
    win = win[:max(0, img_h - y0), :max(0, img_w - x0)]
    if win.size == 0:
        return
    ox0 = max(int(np.floor((x0 - 1.0) / sx)), 0)
    oy0 = max(int(np.floor((y0 - 1.0) / sy)), 0)
    ox1 = min(int(np.ceil((x0 + win.shape[1] + 1.0) / sx)), out_w)
    oy1 = min(int(np.ceil((y0 + win.shape[0] + 1.0) / sy)), out_h)
    if ox1 <= ox0 or oy1 <= oy0:
        return
    affine = np.array([[sx, 0, (ox0 + 0.5) * sx - 0.5 - x0],
                       [0, sy, (oy0 + 0.5) * sy - 0.5 - y0]], dtype=np.float64)
    res = cv2.warpAffine(win, affine, (ox1 - ox0, oy1 - oy0),
                         flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[oy0:oy1, ox0:ox1] |= res >= thr
