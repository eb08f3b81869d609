"""A2B-IS decoders: one image's dense maps -> rotated boxes, scores, labels and masks.

The head builds :class:`A2BDecoder` from the model's ``test_cfg`` (``test_cfg.decoder`` picks
the algorithm; :func:`build_decoder` does the same) and calls
``decoder.decode(maps, img_meta, rescale=True)`` with the maps of ONE image:

* ``skeleton`` (1, h, w) skeleton probabilities S,
* ``seg`` (C, h, w) class probabilities P (0 background, 1..N classes, N + 1 overlap),
* ``rboxes`` (h, w, 5) every feature pixel's decoded box (input pixels, radians, mmrotate
  convention),
* optional keys a decoder may use (see its docstring).

It returns ``InstanceData`` with ``bboxes`` (``RotatedBoxes``), ``scores``, 0-based ``labels`` and
bool ``masks`` (n, H, W) at the original image size when ``rescale`` (at ``img_shape`` otherwise),
sorted by descending score (docs/components.md, docs/decoder.md).
"""
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Tuple

import torch
from mmdet.registry import TASK_UTILS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from .paper_decoder import a2b_postprocess
from .vote_decoder import A2BVoteDecoder  # noqa: F401  registers it

__all__ = ['A2BDecoder', 'A2BPaperDecoder', 'build_decoder', 'DECODERS']

PAPER_DEFAULTS = dict(score_thr=0.01, nms=dict(type='nms_rotated', iou_threshold=0.25),
                      nms_pre=2000, max_per_img=300, box_grow=2.0, mask_thr=0.5,
                      mask_postprocess=True, skeleton_gate=None)


def _check_maps(maps: Dict[str, Tensor]) -> None:
    """One-line errors for missing or misshapen maps."""
    missing = [k for k in ('skeleton', 'seg', 'rboxes') if k not in maps]
    if missing:
        raise KeyError(f'decoder maps lack {missing} (got {sorted(maps)})')
    rboxes = maps['rboxes']
    if rboxes.dim() != 3 or rboxes.shape[-1] != 5:
        raise ValueError(f'rboxes must be (h, w, 5), got {tuple(rboxes.shape)}')


@TASK_UTILS.register_module()
class A2BPaperDecoder:
    """The paper's / reference code's decoder, ``test_cfg.decoder='paper'`` (docs/model.md D7).

    Candidates are the pixels whose argmax class is an object class, scored ``P_t * S``;
    class-agnostic rotated NMS; boxes grown by ``box_grow``; each kept box takes the stride-s
    foreground pixels it covers (same class + overlap when boxes overlap); bilinear resampling to
    the output size and an optional close / majority blur / fill clean-up. Details:
    ``paper_decoder.py`` and docs/model.md.

    Args:
        stride (int): feature stride s.
        **cfg: ``score_thr``, ``nms``, ``nms_pre``, ``max_per_img``, ``box_grow``, ``mask_thr``,
            ``mask_postprocess``, ``skeleton_gate`` (defaults: ``PAPER_DEFAULTS``). Keys that
            only another decoder knows are ignored, so one ``test_cfg`` serves both.
    """

    KEYS = tuple(PAPER_DEFAULTS)

    def __init__(self, stride: int = 2, **cfg) -> None:
        self.stride = int(stride)
        self.cfg = ConfigDict(PAPER_DEFAULTS)
        self.cfg.update({k: v for k, v in cfg.items() if k in self.KEYS})

    def decode(self, maps: Dict[str, Tensor], img_meta: dict,
               rescale: bool = True) -> InstanceData:
        """Decode one image's maps (see the module docstring)."""
        _check_maps(maps)
        rboxes = maps['rboxes']
        return a2b_postprocess(maps['skeleton'], maps['seg'], rboxes.reshape(-1, 5), img_meta,
                               self.cfg, rescale=rescale, stride=self.stride)

    __call__ = decode


DECODERS = {'paper': 'A2BPaperDecoder', 'vote': 'A2BVoteDecoder'}
DEFAULT_DECODER = 'vote'


def _decoder_settings(cfg: dict) -> Tuple[str, dict]:
    """(decoder name, its settings): the flat keys updated by the sub-dict named after it."""
    cfg = dict(cfg)
    name = cfg.pop('decoder', DEFAULT_DECODER)
    if name not in DECODERS:
        raise ValueError(f'test_cfg.decoder must be one of {sorted(DECODERS)}, got {name!r}')
    own = cfg.get(name) or {}
    for key in DECODERS:
        cfg.pop(key, None)
    cfg.update(own)
    return name, cfg


@contextmanager
def intra_op_threads(num: Optional[int]) -> Iterator[None]:
    """Run the block with ``num`` torch intra-op threads (``None``: torch's setting), then restore.

    The decoders run hundreds of element-wise ops on 10^4-10^5 elements; split over threads, each
    op waits at a barrier for every thread, and on a machine shared with other jobs a descheduled
    thread stalls it (docs/decoder.md, "Speed": 3x the wall time with 2 threads on the shared
    2-core machine).
    """
    old = torch.get_num_threads()
    if not num or num == old:
        yield
        return
    torch.set_num_threads(num)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@TASK_UTILS.register_module()
class A2BDecoder:
    """The decoder a model's ``test_cfg`` asks for (what the A2B-IS head builds).

    ``decoder`` names it (``'vote'``, default, or ``'paper'``); its settings are the flat keys of
    the config updated by the sub-dict named after it, so one ``test_cfg`` holds the settings of
    both and ``decoder='paper'`` alone switches (docs/decoder.md)::

        test_cfg = dict(decoder='vote', score_thr=0.01, nms_pre=2000, max_per_img=300,
                        vote=dict(nms=dict(type='nms_rotated', iou_threshold=0.5)),
                        paper=dict(nms=dict(type='nms_rotated', iou_threshold=0.25)))

    Args:
        num_classes (int, optional): object classes N; when given, ``seg`` must have N + 2
            channels (the overlap channel is N + 1). Without it the last channel is overlap.
        stride (int): feature stride s of the maps.
        decoder (str): ``'vote'`` or ``'paper'``.
        num_threads (int, optional): torch intra-op threads while decoding (default 1: the
            decoders' ops are too small to gain from more, see :func:`intra_op_threads`);
            ``None`` keeps torch's setting.
        **cfg: the decoders' settings (see :class:`A2BVoteDecoder`, :class:`A2BPaperDecoder`).
    """

    def __init__(self, num_classes: Optional[int] = None, stride: int = 2,
                 decoder: str = DEFAULT_DECODER, num_threads: Optional[int] = 1,
                 **cfg) -> None:
        name, settings = _decoder_settings(dict(cfg, decoder=decoder))
        self.name = name
        self.num_threads = num_threads
        self.num_classes = num_classes
        self.impl = TASK_UTILS.build(dict(type=DECODERS[name], stride=stride, **settings))

    @torch.no_grad()
    def decode(self, maps: Dict[str, Tensor], img_meta: dict,
               rescale: bool = True) -> InstanceData:
        """Decode one image's maps (see the module docstring); no gradient flows through."""
        _check_maps(maps)
        if self.num_classes is not None and maps['seg'].shape[0] != self.num_classes + 2:
            raise ValueError(f"seg has {maps['seg'].shape[0]} channels, expected num_classes + 2 "
                             f'= {self.num_classes + 2} (background, classes, overlap)')
        with intra_op_threads(self.num_threads):
            return self.impl.decode(maps, img_meta, rescale=rescale)

    __call__ = decode


def build_decoder(test_cfg: Optional[dict], stride: int = 2,
                  num_classes: Optional[int] = None) -> A2BDecoder:
    """Build :class:`A2BDecoder` (or ``test_cfg.type``) from a model's ``test_cfg``.

    Args:
        test_cfg (dict, optional): the model's test config.
        stride (int): feature stride of the maps.
        num_classes (int, optional): object classes N (checked against the seg channels).

    Returns:
        The decoder, with ``decode(maps, img_meta, rescale=True)``.
    """
    cfg = dict(test_cfg or {})
    cfg.setdefault('type', 'A2BDecoder')
    cfg.update(stride=stride, num_classes=num_classes)
    return TASK_UTILS.build(cfg)
