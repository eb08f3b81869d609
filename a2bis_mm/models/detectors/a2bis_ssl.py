"""SSL-IS: semi-supervised A2B-IS with an EMA teacher on dense maps (docs/ssl.md, D6)."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmdet.models.detectors import SemiBaseDetector
from mmdet.models.utils import rename_loss_dict, reweight_loss_dict
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from torch import Tensor

VARIANTS = ('sslis', 'meanteacher', 'fixmatch', 'cps')
_TRAIN_DEFAULTS = dict(
    variant='sslis', sup_weight=1.0, unsup_weight=1.0, thr=0.05, min_pixels=100,
    reference_channels=False, fixmatch_conf_thr=0.5)


def stack_maps(maps: Dict[str, Tensor], reference_channels: bool = False) -> Tensor:
    """Concatenate ``forward_maps`` output to ``(B, 1 + C + 5, h, w)`` = [S, P, deltas].

    Args:
        maps (dict[str, Tensor]): ``skeleton``, ``seg`` and ``bbox`` maps of ``A2BIS``.
        reference_channels (bool): Keep only [S, P_0, dx], what the reference's indexing bug
            compares (docs/model.md, D6), instead of all channels.

    Returns:
        Tensor: The stacked maps.
    """
    if reference_channels:
        return torch.cat([maps['skeleton'], maps['seg'][:, :1], maps['bbox'][:, :1]], dim=1)
    return torch.cat([maps['skeleton'], maps['seg'], maps['bbox']], dim=1)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor, min_pixels: int) -> Tensor:
    """Mean squared error over all channels of the pixels in ``mask`` (the paper's Eq. 5).

    Args:
        pred (Tensor): ``(B, K, h, w)`` maps that get the gradient.
        target (Tensor): ``(B, K, h, w)`` maps they are pulled to (not differentiated).
        mask (Tensor): ``(B, h, w)`` bool, the pixels compared.
        min_pixels (int): With fewer masked pixels the loss is 0.

    Returns:
        Tensor: Scalar loss, the mean over ``K * mask.sum()`` squared differences.
    """
    if pred.shape != target.shape or pred.shape[2:] != mask.shape[1:]:
        raise ValueError(f'masked_mse: shapes differ: pred {tuple(pred.shape)}, target '
                         f'{tuple(target.shape)}, mask {tuple(mask.shape)}')
    if int(mask.sum()) < min_pixels:
        return pred.sum() * 0  # keeps every output in the graph (DDP sees all parameters used)
    diff = (pred - target.detach()).permute(0, 2, 3, 1)[mask]
    return diff.pow(2).mean()


@MODELS.register_module()
class A2BISSemi(SemiBaseDetector):
    """Student + teacher around an ``A2BIS`` config, trained on labelled and unlabeled images.

    Follows mmdet's ``SemiBaseDetector`` (multi-branch batches ``sup`` / ``unsup_teacher`` /
    ``unsup_student``, ``predict`` on ``semi_test_cfg.predict_on``, plain A2BIS checkpoints
    loaded into both models by the parent's ``_load_from_state_dict``), without its pseudo-box
    path: that path is horizontal-box only, while SSL-IS compares the dense maps of
    ``A2BIS.forward_maps`` and needs no pseudo instances. The teacher of ``sslis`` and
    ``meanteacher`` is updated by mmdet's ``MeanTeacherHook`` (momentum 0.01), whose
    ``before_train`` copies the student into it when training starts at iteration 0, i.e. after
    ``load_from`` and never on resume.

    ``semi_train_cfg.variant`` selects the method (the paper's Fig. 12):

    * ``sslis`` (A2B-IS): masked MSE between the student's maps of the ``unsup_student`` view
      and the frozen EMA teacher's maps of the ``unsup_teacher`` view, over [S, P, deltas] on
      pixels where the student skeleton > ``thr`` (0 below ``min_pixels`` such pixels).
    * ``meanteacher``: the same loss, also on the labelled images (the config gives both
      unlabeled views without perturbation).
    * ``fixmatch``: one model (``teacher`` is the student, shared weights); the weak
      ``unsup_teacher`` view gives pseudo-labels without gradient: CE on the strong view's seg
      where the weak max probability > ``fixmatch_conf_thr`` (>= ``min_pixels`` pixels) plus the
      masked MSE on [S, deltas].
    * ``cps``: two differently initialised models, both trained on the labelled images, each
      pulled to the other's (detached) maps by the masked MSE; no EMA hook.

    ``unsup_weight=0`` skips the unlabeled forward passes: the supervised twin of a run, with the
    same data stream and initialisation.

    Args:
        detector (dict): The ``A2BIS`` config of the student (and teacher).
        semi_train_cfg (dict, optional): ``variant``, ``sup_weight`` (1.0), ``unsup_weight``
            (1.0), ``thr`` (0.05), ``min_pixels`` (100), ``reference_channels`` (False: all
            1 + C + 5 channels; True: the reference's [S, P_0, dx]), ``fixmatch_conf_thr`` (0.5).
        semi_test_cfg (dict, optional): ``predict_on``: 'teacher' (default; 'student' for cps)
            or 'student'.
        data_preprocessor (dict, optional): A ``MultiBranchDataPreprocessor`` config.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 detector: ConfigType,
                 semi_train_cfg: OptConfigType = None,
                 semi_test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        train_cfg = ConfigDict({**_TRAIN_DEFAULTS, **(semi_train_cfg or {})})
        unknown = set(train_cfg) - set(_TRAIN_DEFAULTS)
        if unknown:
            raise ValueError(f'A2BISSemi: unknown semi_train_cfg keys {sorted(unknown)}; '
                             f'known: {sorted(_TRAIN_DEFAULTS)}')
        if train_cfg.variant not in VARIANTS:
            raise ValueError(f'A2BISSemi: semi_train_cfg.variant must be one of {VARIANTS}, got '
                             f"'{train_cfg.variant}'")
        predict_on = 'student' if train_cfg.variant == 'cps' else 'teacher'
        test_cfg = ConfigDict({'predict_on': predict_on, **(semi_test_cfg or {})})
        if test_cfg.predict_on not in ('teacher', 'student'):
            raise ValueError("A2BISSemi: semi_test_cfg.predict_on must be 'teacher' or "
                             f"'student', got '{test_cfg.predict_on}'")
        # The parent builds the student and a teacher, frozen for the EMA variants; fixmatch
        # replaces the teacher by the student (shared weights), cps trains both models.
        train_cfg.freeze_teacher = train_cfg.variant in ('sslis', 'meanteacher')
        super().__init__(detector, semi_train_cfg=train_cfg, semi_test_cfg=test_cfg,
                         data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        if train_cfg.variant == 'fixmatch':
            self.teacher = self.student

    def loss(self, multi_batch_inputs: Dict[str, Tensor],
             multi_batch_data_samples: Dict[str, SampleList]) -> dict:
        """Supervised losses (``sup_*``, ``sup_peer_*`` for cps) and unlabeled losses
        (``unsup_*``) of a multi-branch batch.

        Args:
            multi_batch_inputs (dict[str, Tensor]): ``sup``, ``unsup_teacher`` and
                ``unsup_student`` inputs, each ``(N, 3, H, W)``.
            multi_batch_data_samples (dict[str, list[DetDataSample]]): Their data samples.

        Returns:
            dict[str, Tensor]: The losses.
        """
        cfg = self.semi_train_cfg
        losses = self.loss_by_gt_instances(multi_batch_inputs['sup'],
                                           multi_batch_data_samples['sup'])
        if cfg.variant == 'cps':
            peer = self.teacher.loss(multi_batch_inputs['sup'], multi_batch_data_samples['sup'])
            losses.update(rename_loss_dict('sup_peer_', reweight_loss_dict(peer, cfg.sup_weight)))
        if cfg.unsup_weight == 0:
            return losses
        unsup = self.loss_unsup(multi_batch_inputs['unsup_teacher'],
                                multi_batch_inputs['unsup_student'], multi_batch_inputs['sup'])
        losses.update(rename_loss_dict('unsup_', reweight_loss_dict(unsup, cfg.unsup_weight)))
        return losses

    def _consistency(self, student_maps: Dict[str, Tensor],
                     target_maps: Dict[str, Tensor]) -> Tensor:
        """Masked MSE of ``student_maps`` to ``target_maps``, masked by the student skeleton."""
        cfg = self.semi_train_cfg
        mask = student_maps['skeleton'][:, 0] > cfg.thr
        return masked_mse(stack_maps(student_maps, cfg.reference_channels),
                          stack_maps(target_maps, cfg.reference_channels), mask, cfg.min_pixels)

    def loss_unsup(self, teacher_inputs: Tensor, student_inputs: Tensor,
                   sup_inputs: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Unlabeled losses of the configured variant (unweighted).

        Args:
            teacher_inputs (Tensor): The ``unsup_teacher`` (weak) view, ``(N, 3, H, W)``.
            student_inputs (Tensor): The ``unsup_student`` (strong) view of the same images.
            sup_inputs (Tensor, optional): Labelled images, used by ``meanteacher``.

        Returns:
            dict[str, Tensor]: ``loss_mse`` (and ``loss_mse_peer`` for cps, ``loss_mse_sup`` for
            meanteacher, ``loss_ce`` for fixmatch).
        """
        cfg = self.semi_train_cfg
        student_maps = self.student.forward_maps(student_inputs)
        if cfg.variant == 'cps':
            peer_maps = self.teacher.forward_maps(teacher_inputs)
            return dict(loss_mse=self._consistency(student_maps, peer_maps),
                        loss_mse_peer=self._consistency(peer_maps, student_maps))
        with torch.no_grad():
            teacher_maps = self.teacher.forward_maps(teacher_inputs)
        if cfg.variant == 'fixmatch':
            return self._fixmatch_losses(student_maps, teacher_maps)
        losses = dict(loss_mse=self._consistency(student_maps, teacher_maps))
        if cfg.variant == 'meanteacher':
            if sup_inputs is None:
                raise ValueError('A2BISSemi(meanteacher) needs the labelled inputs')
            with torch.no_grad():
                teacher_sup = self.teacher.forward_maps(sup_inputs)
            losses['loss_mse_sup'] = self._consistency(
                self.student.forward_maps(sup_inputs), teacher_sup)
        return losses

    def _fixmatch_losses(self, strong: Dict[str, Tensor],
                         weak: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """FixMatch: pseudo-label CE on confident weak-view pixels + masked MSE on [S, deltas]."""
        cfg = self.semi_train_cfg
        conf, labels = weak['seg'].max(dim=1)
        keep = conf > cfg.fixmatch_conf_thr
        if int(keep.sum()) >= cfg.min_pixels:
            log_prob = strong['seg'].clamp_min(1e-7).log()
            loss_ce = F.nll_loss(log_prob, labels.masked_fill(~keep, -100), ignore_index=-100)
        else:
            loss_ce = strong['seg'].sum() * 0
        bbox = slice(0, 1) if cfg.reference_channels else slice(None)
        mask = strong['skeleton'][:, 0] > cfg.thr
        loss_mse = masked_mse(torch.cat([strong['skeleton'], strong['bbox'][:, bbox]], dim=1),
                              torch.cat([weak['skeleton'], weak['bbox'][:, bbox]], dim=1),
                              mask, cfg.min_pixels)
        return dict(loss_ce=loss_ce, loss_mse=loss_mse)
