from .mixed_precision_optim_wrapper import (
    FP32_INPUTS,
    FP32_MODULES,
    FP32_OUTPUTS,
    MixedPrecisionOptimWrapper,
    cpu_supports_bf16,
    install_fp32_islands,
    mixed_precision,
    resolve_dtype,
)

__all__ = [
    'MixedPrecisionOptimWrapper', 'cpu_supports_bf16', 'install_fp32_islands', 'mixed_precision',
    'resolve_dtype', 'FP32_OUTPUTS', 'FP32_INPUTS',
    'FP32_MODULES'
]
