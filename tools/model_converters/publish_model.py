"""Turn a training checkpoint into a published weights file, as mmdet's publish_model.py does.

Keeps only the weights (``state_dict``) and the dataset classes (``meta.dataset_meta``), stores floating
tensors as fp16 by default (a few MB for A2B-IS-T; they load into the fp32 model unchanged in shape, and
``tools/test.py`` / ``tools/infer.py`` take them like any checkpoint), and appends the first 8 hex digits
of the file's sha256 to its name. The full sha256 is printed for the model-zoo table (models/README.md).

Example::

    python tools/model_converters/publish_model.py work_dirs/x/epoch_12.pth \\
        models/a2bis-t_a2b_12e_consep-256.pth
    # -> models/a2bis-t_a2b_12e_consep-256-1a2b3c4d.pth  sha256 1a2b3c4d...
"""
import argparse
import hashlib
import os
import os.path as osp
import sys
from typing import Dict, Optional, Sequence

import torch

from a2bis_mm.utils.checkpoint import CheckpointError, load_local_checkpoint
from a2bis_mm.utils.cli import ToolInputError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('in_file', help='checkpoint written by tools/train.py')
    parser.add_argument('out_file', help='output name; -<sha256[:8]> is inserted before .pth')
    parser.add_argument('--fp32', action='store_true', help='keep fp32 weights (default: fp16)')
    return parser.parse_args(argv)


def sha256sum(path: str) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def strip_checkpoint(checkpoint: Dict, fp16: bool = True) -> Dict:
    """Keep the weights and the dataset meta of an mmengine checkpoint (or a bare state dict).

    Args:
        checkpoint (dict): What ``torch.load`` returned.
        fp16 (bool): Store floating-point tensors as fp16.

    Returns:
        dict: ``{'state_dict': ..., 'meta': {'dataset_meta': ...}}`` (meta only if present).
    """
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not state_dict or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ToolInputError('the file holds no state dict of tensors')
    weights = {
        k: (v.half() if fp16 and v.is_floating_point() else v).cpu().contiguous()
        for k, v in state_dict.items()
    }
    out = {'state_dict': weights}
    dataset_meta = checkpoint.get('meta', {}).get('dataset_meta')
    if dataset_meta is not None:
        out['meta'] = {'dataset_meta': dataset_meta}
    return out


def main(argv: Optional[Sequence[str]] = None) -> str:
    args = parse_args(argv)
    if not args.out_file.endswith('.pth'):
        raise ToolInputError(f"out_file must end with .pth, got '{args.out_file}'")
    try:
        checkpoint = load_local_checkpoint(args.in_file, map_location='cpu')
    except FileNotFoundError:
        raise ToolInputError(f"checkpoint '{args.in_file}' does not exist") from None
    except CheckpointError as err:
        raise ToolInputError(str(err)) from None
    out_dir = osp.dirname(osp.abspath(args.out_file))
    os.makedirs(out_dir, exist_ok=True)
    tmp = args.out_file + '.tmp'
    torch.save(strip_checkpoint(checkpoint, fp16=not args.fp32), tmp)
    digest = sha256sum(tmp)
    final = f'{args.out_file[:-4]}-{digest[:8]}.pth'
    os.replace(tmp, final)  # atomic: a published file is never half written
    print(f'{final}  {osp.getsize(final) / 2**20:.2f} MiB  sha256 {digest}')
    return final


if __name__ == '__main__':
    try:
        main()
    except ToolInputError as err:
        sys.exit(f'error: {err}')
