"""bf16 mixed precision on CPU (and AMP on CUDA) as one optimizer-wrapper switch, with fp32 islands.

mmengine 0.10.7's ``AmpOptimWrapper`` asserts that a GPU/NPU/MLU/MUSA is present, so it cannot run
bf16 on a CPU. bf16 has float32's exponent range and needs no loss scaling, so on a CPU it is enough
to run the forward pass under ``torch.autocast('cpu', dtype=torch.bfloat16)``: convolutions and
matmuls then run in bf16 (native on CPUs with AVX512-BF16 or AMX), everything else keeps the dtype of
its inputs. On CUDA the wrapper is mmengine's ``AmpOptimWrapper`` (loss scaler included).

fp32 islands keep what needs float32 out of bf16, for A2B-IS and the mmdet baselines alike:

* the outputs of every ``*Head`` module are cast to float32, so sigmoid/softmax, target
  assignment, losses (focal, CE, Dice, KLD) and post-processing (NMS, decoding, mask pasting) run
  in float32 on float32 maps (bf16 keeps 8 bits of mantissa: ``log(1 - p)`` of a bf16 sigmoid is
  coarse near confident pixels);
* ``*Loss`` and ``*RoIExtractor`` modules get float32 inputs (mmcv's CPU ``roi_align`` and ``nms``
  refuse bf16: "expected scalar type Float but found BFloat16");
* the last convolution of each A2B-IS branch (``*.conv_out``: skeleton / class logits, box
  deltas) runs wholly in float32 with autocast off, so the maps the losses and the decoding see
  are not rounded to bf16's 8-bit mantissa (about 1% of the FLOPs);
* A2BNet's spatial softmax casts to float32 itself (``a2bis_mm/models/backbones/a2bnet.py``).

Usage (the A2B-IS schedules): ``optim_wrapper = dict(type='MixedPrecisionOptimWrapper',
dtype='bfloat16', channels_last=True, optimizer=...)``. ``dtype='float32'`` gives plain float32
with the same wrapper (the accuracy comparison in docs/benchmarks.md switches only this). On a CPU
without native bf16 the wrapper logs one line and trains in float32.
"""
import fnmatch
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmdet.registry import OPTIM_WRAPPERS
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

__all__ = [
    'MixedPrecisionOptimWrapper', 'cpu_supports_bf16', 'install_fp32_islands', 'mixed_precision',
    'resolve_dtype', 'FP32_OUTPUTS', 'FP32_INPUTS', 'FP32_MODULES'
]

# Class-name patterns of modules whose floating outputs are cast to float32.
FP32_OUTPUTS = ('*Head', )
# Class-name patterns of modules whose floating inputs are cast to float32.
FP32_INPUTS = ('*Loss', '*RoIExtractor')
# Module-path patterns of modules run in float32 with autocast off.
FP32_MODULES = ('*.conv_out', )
_LOW_PRECISION = (torch.bfloat16, torch.float16)
_ISLAND_FLAG = '_a2bis_fp32_island'
_AUTOCAST_DEVICES = ('cpu', 'cuda') if torch.cuda.is_available() else ('cpu', )


def cpu_supports_bf16() -> bool:
    """Whether this CPU computes bf16 dot products natively (AVX512-BF16, AMX-BF16, Arm BF16).

    Without them oneDNN emulates bf16 with float32 instructions plus conversions, which is slower
    than plain float32.
    """
    for name in ('_is_avx512_bf16_supported', '_is_amx_tile_supported'):
        check = getattr(torch.cpu, name, None)  # private torch helpers, present in torch >= 2.3
        try:
            if check is not None and check():
                return True
        except (RuntimeError, AttributeError):
            pass
    try:
        with open('/proc/cpuinfo') as f:
            flags = {word for line in f if line.lower().startswith(('flags', 'features'))
                     for word in line.split(':', 1)[1].split()}
    except OSError:
        return False
    return bool(flags & {'avx512_bf16', 'amx_bf16', 'bf16'})


def resolve_dtype(dtype: Union[str, torch.dtype, None], device_type: str) -> Optional[torch.dtype]:
    """The autocast dtype to use on ``device_type``, or None for plain float32.

    Args:
        dtype: ``'bfloat16'``, ``'float16'``, ``'float32'`` / None, or a torch dtype.
        device_type: ``'cpu'`` or ``'cuda'``.

    Returns:
        torch.dtype or None: None where the device cannot run ``dtype`` fast (bf16 on a CPU without
        native bf16, float16 on a CPU, bf16 on a CUDA device without bf16).
    """
    if isinstance(dtype, str):
        if dtype not in ('bfloat16', 'float16', 'float32'):
            raise ValueError(f"dtype must be 'bfloat16', 'float16' or 'float32', got {dtype!r}")
        dtype = getattr(torch, dtype)
    if dtype in (None, torch.float32):
        return None
    if dtype not in _LOW_PRECISION:
        raise ValueError(f'dtype must be bfloat16, float16 or float32, got {dtype}')
    if device_type == 'cpu':
        return dtype if dtype == torch.bfloat16 and cpu_supports_bf16() else None
    if dtype == torch.bfloat16 and device_type == 'cuda' and not torch.cuda.is_bf16_supported():
        return None
    return dtype


def _to_fp32(obj: Any) -> Any:
    """Cast bf16/float16 tensors in (nested) tuples, lists and dicts to float32."""
    if isinstance(obj, torch.Tensor):
        return obj.float() if obj.dtype in _LOW_PRECISION else obj
    if isinstance(obj, (list, tuple)) and not hasattr(obj, '_fields'):
        return type(obj)(_to_fp32(o) for o in obj)
    if isinstance(obj, dict):
        return type(obj)((k, _to_fp32(v)) for k, v in obj.items())
    return obj


def _fp32_output_hook(module: nn.Module, args: tuple, output: Any) -> Any:
    return _to_fp32(output)


def _fp32_input_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    return _to_fp32(args), _to_fp32(kwargs)


def _autocast_off_pre_hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple:
    # the state to restore is kept per module; a module does not call itself recursively
    module._a2bis_autocast_state = {d: torch.is_autocast_enabled(d) for d in _AUTOCAST_DEVICES}
    for device in _AUTOCAST_DEVICES:
        torch.set_autocast_enabled(device, False)
    return _to_fp32(args), _to_fp32(kwargs)


def _autocast_restore_hook(module: nn.Module, args: tuple, output: Any) -> None:
    for device, enabled in getattr(module, '_a2bis_autocast_state', {}).items():
        torch.set_autocast_enabled(device, enabled)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def install_fp32_islands(model: nn.Module,
                         fp32_outputs: Sequence[str] = FP32_OUTPUTS,
                         fp32_inputs: Sequence[str] = FP32_INPUTS,
                         fp32_modules: Sequence[str] = FP32_MODULES) -> int:
    """Register the float32 casts described in the module docstring on the matching submodules.

    Idempotent (a module is hooked once); deep copies of the model (EMA teachers) keep the hooks.
    Without autocast the hooks change nothing (float32 tensors pass through).

    Args:
        model (nn.Module): The model.
        fp32_outputs (Sequence[str]): Class-name patterns whose outputs become float32.
        fp32_inputs (Sequence[str]): Class-name patterns whose inputs become float32.
        fp32_modules (Sequence[str]): Module-path patterns (``model.named_modules()`` names)
            that run in float32 with autocast off.

    Returns:
        int: Number of modules hooked by this call.
    """
    hooked = 0
    for path, module in model.named_modules():
        if getattr(module, _ISLAND_FLAG, False):
            continue
        cls = type(module).__name__
        out, inp = _matches(cls, fp32_outputs), _matches(cls, fp32_inputs)
        whole = _matches(path, fp32_modules)
        if out:
            module.register_forward_hook(_fp32_output_hook)
        if inp:
            module.register_forward_pre_hook(_fp32_input_hook, with_kwargs=True)
        if whole:
            module.register_forward_pre_hook(_autocast_off_pre_hook, with_kwargs=True)
            module.register_forward_hook(_autocast_restore_hook, always_call=True)
        if out or inp or whole:
            setattr(module, _ISLAND_FLAG, True)
            hooked += 1
    return hooked


def _device_type(model: nn.Module) -> str:
    param = next(model.parameters(), None)
    return param.device.type if param is not None else 'cpu'


@contextmanager
def mixed_precision(model: nn.Module,
                    dtype: Union[str, torch.dtype, None] = 'bfloat16',
                    channels_last: bool = False) -> Iterator[Optional[torch.dtype]]:
    """Run a model (e.g. ``predict``) under autocast with the fp32 islands, outside training.

    Args:
        model (nn.Module): The model; converted to channels_last in place when asked.
        dtype: Autocast dtype (see :func:`resolve_dtype`); float32 / None: no autocast.
        channels_last (bool): Convert the 4-D weights to ``torch.channels_last`` first.

    Yields:
        torch.dtype or None: The dtype in effect (None: float32).
    """
    device_type = _device_type(model)
    cast = resolve_dtype(dtype, device_type)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cast is None:
        yield None
        return
    install_fp32_islands(model)
    with torch.autocast(device_type=device_type, dtype=cast):
        yield cast


@OPTIM_WRAPPERS.register_module()
class MixedPrecisionOptimWrapper(AmpOptimWrapper):
    """Optimizer wrapper for bf16 autocast on CPU and mmengine AMP on CUDA, with fp32 islands.

    On CUDA it is ``AmpOptimWrapper(loss_scale, dtype)``. On a CPU the forward pass runs under
    ``torch.autocast('cpu', dtype=torch.bfloat16)`` without a loss scaler (bf16 has float32's
    range); where the CPU has no native bf16 (see :func:`cpu_supports_bf16`) it logs one line and
    trains in float32. Checkpoints stay interchangeable with ``OptimWrapper`` / ``AmpOptimWrapper``
    (a ``loss_scaler`` entry is dropped on a CPU).

    Args:
        dtype (str | torch.dtype, optional): ``'bfloat16'`` (default), ``'float16'`` (CUDA only)
            or ``'float32'`` / None (no autocast: the float32 reference with the same wrapper).
        channels_last (bool): Convert the model's 4-D weights to ``torch.channels_last`` on the
            first step (convolutions then run in NHWC, oneDNN's and cuDNN's faster layout).
        fp32_outputs (Sequence[str]): Class-name patterns whose outputs are cast to float32.
        fp32_inputs (Sequence[str]): Class-name patterns whose inputs are cast to float32.
        fp32_modules (Sequence[str]): Module-path patterns run in float32 with autocast off.
        loss_scale (str | float | dict): CUDA loss scaler config (``AmpOptimWrapper``).
        **kwargs: ``OptimWrapper`` arguments (``optimizer``, ``clip_grad``, ...).
    """

    def __init__(self,
                 dtype: Union[str, torch.dtype, None] = 'bfloat16',
                 channels_last: bool = False,
                 fp32_outputs: Sequence[str] = FP32_OUTPUTS,
                 fp32_inputs: Sequence[str] = FP32_INPUTS,
                 fp32_modules: Sequence[str] = FP32_MODULES,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 **kwargs) -> None:
        self.device_type = 'cuda' if torch.cuda.is_available() else 'cpu'
        cast = resolve_dtype(dtype, self.device_type)
        if self.device_type == 'cuda' and cast is not None:
            super().__init__(loss_scale=loss_scale, dtype=cast, **kwargs)
        else:
            # AmpOptimWrapper.__init__ would assert a GPU: set up a plain OptimWrapper instead
            OptimWrapper.__init__(self, **kwargs)
            self.loss_scaler = None
            self._scale_update_param = None
            self.cast_dtype = cast
        self.channels_last = channels_last
        self.fp32_outputs = tuple(fp32_outputs)
        self.fp32_inputs = tuple(fp32_inputs)
        self.fp32_modules = tuple(fp32_modules)
        self._prepared = False
        requested = getattr(dtype, '__name__', str(dtype)).replace('torch.', '')
        if cast is None and requested not in ('None', 'float32'):
            why = ('this CPU has no native bf16 (avx512_bf16 / amx_bf16)'
                   if self.device_type == 'cpu' and requested == 'bfloat16' else
                   f'{requested} is not supported on this {self.device_type}')
            print_log(f'MixedPrecisionOptimWrapper: {why}; training in float32', logger='current')
        else:
            print_log(f'MixedPrecisionOptimWrapper: {self.device_type} autocast '
                      f'{str(cast).replace("torch.", "") if cast else "off (float32)"}, '
                      f'channels_last={channels_last}', logger='current')

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """Back-propagate, through the loss scaler on CUDA."""
        if self.loss_scaler is None:
            OptimWrapper.backward(self, loss, **kwargs)
        else:
            super().backward(loss, **kwargs)

    def step(self, **kwargs) -> None:
        """Update the parameters, through the loss scaler on CUDA."""
        if self.loss_scaler is None:
            OptimWrapper.step(self, **kwargs)
        else:
            super().step(**kwargs)

    def state_dict(self) -> dict:
        """Optimizer state (and the loss scaler's on CUDA)."""
        if self.loss_scaler is None:
            return OptimWrapper.state_dict(self)
        return super().state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        """Load an optimizer state saved by this wrapper, ``OptimWrapper`` or ``AmpOptimWrapper``."""
        if self.loss_scaler is None:
            state_dict = dict(state_dict)
            state_dict.pop('loss_scaler', None)  # saved on a GPU; there is no scaler here
            OptimWrapper.load_state_dict(self, state_dict)
        else:
            super().load_state_dict(state_dict)

    def _prepare(self, model: nn.Module) -> None:
        """Once, on the first step: fp32 islands and the channels_last layout."""
        if self._prepared:
            return
        if self.cast_dtype is not None:
            install_fp32_islands(model, self.fp32_outputs, self.fp32_inputs, self.fp32_modules)
        if self.channels_last:
            # Module.to keeps the Parameter objects (param.data is replaced), so the optimizer's
            # references stay valid
            model.to(memory_format=torch.channels_last)
        self._prepared = True

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """Gradient-accumulation context plus autocast (CPU bf16 here, mmengine's AMP on CUDA)."""
        self._prepare(model)
        if self.loss_scaler is not None:
            with super().optim_context(model):
                yield
            return
        cast = (torch.autocast(device_type='cpu', dtype=self.cast_dtype)
                if self.cast_dtype is not None else nullcontext())
        with OptimWrapper.optim_context(self, model), cast:
            yield
