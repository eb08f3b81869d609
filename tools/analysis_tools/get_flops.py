"""Parameters, size and FLOPs of a model, compared with the paper's Table VI for A2B-IS.

FLOPs follow the paper (docs/model.md, parameters and FLOPs): 2 x the multiply-adds of convs and
matrix products (biases, norms, activations and the spatial softmax are not counted) for one
image of ``shape`` x ``shape``, counted by :mod:`a2bis_mm.utils.complexity` (also used by
tools/benchmark.py). "MiB" is float32 bytes / 2^20, what the paper's "Params (MB)" column counts.

Example (A2B-IS-T, 26 segmentation classes = 24 chromosome types + background + overlap)::

    .venv/bin/python tools/analysis_tools/get_flops.py \
        configs/a2bis/a2bis-t_a2b_100e_chromosome-512.py --shape 512 \
        --cfg-options model.mask_head.num_classes=24
"""
import argparse
from typing import Dict, Optional, Tuple

import mmrotate.models  # noqa: F401  registers the mmrotate.* box coders the heads use
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.registry import init_default_scope

import a2bis_mm  # noqa: F401  registers A2BNet and the A2B-IS head
from a2bis_mm.utils.complexity import model_complexity

__all__ = ['model_complexity', 'format_table', 'paper_reference', 'main']

# Paper Table VI (chromosomes, 24 types -> 26 segmentation classes): GFLOPs at 512^2 and MB.
PAPER_GFLOPS_512 = {'T': 437.4, 'S': 1053.7, 'B': 3021.4}
PAPER_MIB = {'T': 12.4, 'S': 30.6, 'B': 87.7, 'L': 186.0}


def paper_reference(arch: Optional[str], shape: int) -> Tuple[Optional[float], Optional[float]]:
    """The paper's (MB, GFLOPs) for ``arch``; GFLOPs only where it reports them (512^2)."""
    gflops = PAPER_GFLOPS_512.get(arch) if shape == 512 else None
    return PAPER_MIB.get(arch), gflops


def format_table(rows: Dict[str, Dict[str, float]], arch: Optional[str], shape: int,
                 num_classes: Optional[int] = None) -> str:
    """Markdown table of ``rows`` (from :func:`model_complexity`) with the paper's values.

    Args:
        rows (dict): Output of :func:`model_complexity`.
        arch (str, optional): A2BNet arch ('T', 'S', 'B', 'L') for the paper row.
        shape (int): Input height and width.
        num_classes (int, optional): The model's object classes; the paper's have 24.
    """
    lines = [f'| part | params | MiB (fp32) | GFLOPs @ {shape}x{shape} |', '|---|---:|---:|---:|']
    for name, row in rows.items():
        lines.append(f"| {name} | {row['params']:,} | {row['mib']:.2f} | "
                     f"{row['gflops']:.2f} |")
    paper_mib, paper_gflops = paper_reference(arch, shape)
    if paper_mib is not None:
        total = rows['total']

        def cell(paper, ours):
            if paper is None:
                return 'n/a'
            return f'{paper} ({(ours - paper) / paper:+.2%})'

        lines.append(f'| paper Table VI A2BNet-{arch} (24 classes; here {num_classes}): '
                     'value (ours vs paper) | | '
                     f"{cell(paper_mib, total['mib'])} | {cell(paper_gflops, total['gflops'])} |")
    return '\n'.join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parameters, MiB and GFLOPs (2 x conv/linear MACs) of an A2B-IS model')
    parser.add_argument('config', help='config file with a `model` (detector or backbone)')
    parser.add_argument('--shape', type=int, default=512, help='input height = width')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. model.backbone.arch=B model.mask_head.num_classes=24')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.shape < 2 or args.shape % 2:
        raise ValueError(f'--shape must be an even size >= 2 (A2B-IS has stride 2), got {args.shape}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if 'model' not in cfg:
        raise KeyError(f'{args.config} has no `model` entry')
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    model_cfg: ConfigDict = cfg.model
    # The paper's numbers are for the whole detector, so only a detector is compared.
    backbone = model_cfg.get('backbone', {})
    arch = backbone.get('arch') if backbone.get('type') == 'A2BNet' else None
    arch = arch if isinstance(arch, str) else None
    rows = model_complexity(model_cfg, args.shape)
    num_classes = model_cfg.get('mask_head', {}).get('num_classes')
    print(format_table(rows, arch, args.shape, num_classes))


if __name__ == '__main__':
    main()
