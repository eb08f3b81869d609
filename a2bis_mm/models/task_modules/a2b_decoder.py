"""A2B-IS decoders: one image's dense maps -> rotated boxes, scores, labels and masks.

Every decoder is a ``TASK_UTILS`` class built from the model's ``test_cfg`` by
:func:`build_decoder` (``test_cfg.decoder`` picks it) and called as
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
from typing import Dict, Optional

from mmdet.registry import TASK_UTILS
from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from .paper_decoder import a2b_postprocess
from .vote_decoder import A2BVoteDecoder  # noqa: F401  registers it

__all__ = ['A2BPaperDecoder', 'build_decoder', 'DECODERS']

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
    """The paper's / reference code's decoder (spec D7, B §6), ``test_cfg.decoder='paper'``.

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


def build_decoder(test_cfg: Optional[dict], stride: int = 2, **kwargs):
    """Build the decoder a model's ``test_cfg`` asks for.

    ``test_cfg.decoder`` names it (``'vote'`` or ``'paper'``, see ``DECODERS``; default
    ``DEFAULT_DECODER``), or ``test_cfg.type`` gives a ``TASK_UTILS`` type directly. Its settings
    are the flat keys of ``test_cfg`` updated by the sub-dict named after the decoder, so one
    ``test_cfg`` holds the settings of both and ``decoder='paper'`` alone switches::

        test_cfg = dict(decoder='vote', score_thr=0.01, nms_pre=2000, max_per_img=300,
                        vote=dict(nms=dict(type='nms_rotated', iou_threshold=0.5)),
                        paper=dict(nms=dict(type='nms_rotated', iou_threshold=0.25)))

    Args:
        test_cfg (dict, optional): the model's test config.
        stride (int): feature stride of the maps.
        **kwargs: ignored (room for callers that pass e.g. ``num_classes``).

    Returns:
        The decoder, with ``decode(maps, img_meta, rescale=True)``.
    """
    cfg = dict(test_cfg or {})
    name = cfg.pop('decoder', DEFAULT_DECODER)
    dec_type = cfg.pop('type', None)
    if dec_type is None:
        if name not in DECODERS:
            raise ValueError(f'test_cfg.decoder must be one of {sorted(DECODERS)}, got {name!r}')
        dec_type = DECODERS[name]
    own = cfg.get(name) or {}
    for key in DECODERS:
        cfg.pop(key, None)
    cfg.update(own)
    return TASK_UTILS.build(dict(type=dec_type, stride=stride, **cfg))
