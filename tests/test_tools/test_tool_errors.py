"""Bad input to tools/train.py and tools/test.py: one ``error:`` line on stderr, exit status 2, no
traceback, and nothing an earlier run wrote is changed.

The command line itself (a subprocess) is run where it matters (the exit status and stderr of the real
tool, a real training to resume); the other checks call the tools' ``main`` in this process through
``run_tool``, the same code path without a second start-up of the OpenMMLab stack.
"""
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from a2bis_mm.datasets import generate_synthetic_coco
from a2bis_mm.utils.cli import run_tool
from a2bis_mm.utils.errors import EXIT_USAGE
from tools import test as test_tool
from tools import train as train_tool

CONFIG = 'configs/_base_/default_runtime.py'
TINY = 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py'
CHROMOSOME = 'configs/a2bis/a2bis-t_a2b_100e_chromosome-512.py'
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


def _run(repo_root, *args) -> Tuple[int, List[str], str]:
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=repo_root, capture_output=True,
                          text=True, timeout=600)
    return proc.returncode, proc.stderr.strip().splitlines(), proc.stdout + proc.stderr


def _main(capsys, tool, *args) -> Tuple[int, List[str]]:
    """Run ``tool``'s main in this process as its ``__main__`` does; (exit status, stderr lines)."""
    module = {'tools/train.py': train_tool, 'tools/test.py': test_tool}[tool]
    capsys.readouterr()
    try:
        run_tool(lambda: module.main([str(a) for a in args]))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err.strip().splitlines()


def _snapshot(folder: Path) -> Dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob('*') if p.is_file()}


def _assert_kept(folder: Path, before: Dict[str, bytes]) -> None:
    after = _snapshot(folder)
    assert {k: after.get(k) for k in before} == before, 'an earlier output was changed or removed'


@pytest.fixture(scope='module')
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp('synthetic')
    generate_synthetic_coco(str(root), num_train=2, num_val=1, size=64)
    return root


def _tiny_options(data_root, *extra) -> List[str]:
    return ['--cfg-options', *(f'{loader}.dataset.data_root={data_root}/' for loader in LOADERS),
            'train_dataloader.dataset.indices=1', 'train_dataloader.batch_size=1',
            'default_hooks.checkpoint.max_keep_ckpts=10', *extra]


@pytest.fixture
def earlier_run(tmp_path) -> Path:
    """A work dir holding the outputs of an earlier run."""
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    torch.save({'state_dict': {}}, work_dir / 'iter_3.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'iter_3.pth'))
    (work_dir / 'results.pkl').write_bytes(b'earlier predictions')
    return work_dir


def test_missing_config_on_the_command_line(repo_root):
    code, err, _ = _run(repo_root, 'tools/train.py', 'configs/does_not_exist.py')
    assert code == EXIT_USAGE
    assert err == ["error: config file 'configs/does_not_exist.py' does not exist"]


def test_missing_config(capsys):
    code, err = _main(capsys, 'tools/test.py', 'configs/does_not_exist.py', 'ckpt.pth')
    assert code == EXIT_USAGE
    assert err == ["error: config file 'configs/does_not_exist.py' does not exist"]


def test_unwritable_work_dir(capsys, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')  # a work dir below a regular file can never be created (even as root)
    code, err = _main(capsys, 'tools/train.py', CONFIG, '--work-dir', blocker / 'wd')
    assert code == EXIT_USAGE
    assert len(err) == 1 and err[0].startswith(f"error: work dir '{blocker / 'wd'}' cannot be written")


@pytest.mark.parametrize('content', ['text', 'truncated'])
def test_corrupt_checkpoint(capsys, tmp_path, earlier_run, content):
    bad = tmp_path / 'model.pth'
    if content == 'text':
        bad.write_text('this is a text file, not weights')
    else:  # a checkpoint cut short, as by a full disk or a killed copy
        torch.save({'state_dict': {'w': torch.zeros(1000)}}, bad)
        bad.write_bytes(bad.read_bytes()[:2000])
    before = _snapshot(earlier_run)
    code, err = _main(capsys, 'tools/test.py', CONFIG, bad, '--work-dir', earlier_run,
                      '--out', earlier_run / 'results.pkl')
    assert code == EXIT_USAGE
    assert len(err) == 1 and err[0].startswith(f'error: {bad} is not a PyTorch checkpoint')
    _assert_kept(earlier_run, before)


def test_missing_resume_checkpoint(capsys, tmp_path):
    code, err = _main(capsys, 'tools/train.py', CONFIG, '--work-dir', tmp_path / 'wd',
                      '--resume', tmp_path / 'gone.pth')
    assert code == EXIT_USAGE
    assert err == [f"error: checkpoint '{tmp_path / 'gone.pth'}' does not exist"]


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_misspelt_cfg_option(capsys, earlier_run, tool):
    before = _snapshot(earlier_run)
    extra = [earlier_run / 'iter_3.pth'] if tool.endswith('test.py') else []
    code, err = _main(capsys, tool, TINY, *extra, '--work-dir', earlier_run, '--cfg-options',
                      'train_cfg.max_iter=5')
    assert code == EXIT_USAGE
    assert err == ["error: --cfg-options 'train_cfg.max_iter' matches nothing in the config: there is no "
                   "'train_cfg.max_iter'; did you mean 'train_cfg.max_iters'? (to add it as a new key, "
                   'write +train_cfg.max_iter=...)']
    _assert_kept(earlier_run, before)


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_missing_data_root(capsys, synthetic, tmp_path, earlier_run, tool):
    before = _snapshot(earlier_run)
    loader = 'test_dataloader' if tool.endswith('test.py') else 'train_dataloader'
    extra = [earlier_run / 'iter_3.pth'] if tool.endswith('test.py') else []
    code, err = _main(capsys, tool, TINY, *extra, '--work-dir', earlier_run,
                      *_tiny_options(synthetic, f'{loader}.dataset.data_root={tmp_path}/nowhere/'))
    assert code == EXIT_USAGE
    assert err == [f"error: {loader}.dataset.data_root: folder '{tmp_path}/nowhere/' does not exist; point "
                   f'it at your data with --cfg-options {loader}.dataset.data_root=PATH (docs/datasets.md)']
    _assert_kept(earlier_run, before)


def test_val_folder_without_usable_file(capsys, shared_data, tmp_path, earlier_run):
    root = tmp_path / 'chromosomes'
    (root / 'val').mkdir(parents=True)
    shutil.copytree(shared_data / 'chromosome_pairs' / 'train', root / 'train')
    (root / 'val' / 'broken.json').write_text('{"shapes": [')
    before = _snapshot(earlier_run)
    code, err = _main(capsys, 'tools/train.py', CHROMOSOME, '--work-dir', earlier_run, '--cfg-options',
                      *(f'{loader}.dataset.data_root={root}/' for loader in LOADERS[:2]))
    assert code == EXIT_USAGE
    assert err == [f'error: LabelMeDataset: no usable LabelMe file below {root}/val/']
    _assert_kept(earlier_run, before)


def _tiny_model_state(repo_root) -> dict:
    init_default_scope('mmdet')
    cfg = Config.fromfile(repo_root / TINY)
    return MODELS.build(cfg.model).state_dict()


@pytest.mark.parametrize('change', ['resized', 'missing', 'unexpected'])
def test_checkpoint_of_another_model(capsys, repo_root, synthetic, tmp_path, earlier_run, change):
    state = _tiny_model_state(repo_root)
    key = next(k for k, v in state.items() if k.endswith('.weight') and v.ndim == 4)
    if change == 'resized':  # e.g. another number of classes
        state[key] = torch.cat([state[key], state[key][:1]])
    elif change == 'missing':
        del state[key]
    else:
        state['extra_head.weight'] = torch.zeros(1)
    ckpt = tmp_path / 'other.pth'
    torch.save({'state_dict': state, 'meta': {}}, ckpt)
    before = _snapshot(earlier_run)
    code, err = _main(capsys, 'tools/test.py', TINY, ckpt, '--work-dir', earlier_run,
                      '--out', earlier_run / 'results.pkl', *_tiny_options(synthetic))
    assert code == EXIT_USAGE
    assert len(err) == 1 and err[0].startswith(f'error: checkpoint {ckpt} does not fit the model (A2BIS): ')
    named = 'extra_head.weight' if change == 'unexpected' else key
    assert {'resized': 'size mismatch for', 'missing': 'missing keys', 'unexpected': 'unexpected keys'}[
        change] in err[0] and named in err[0]
    _assert_kept(earlier_run, before)


def _train_tiny(repo_root, synthetic, work_dir, iters, *extra) -> Tuple[int, List[str], str]:
    return _run(repo_root, 'tools/train.py', TINY, '--work-dir', work_dir, *extra,
                *_tiny_options(synthetic, f'train_cfg.max_iters={iters}',
                               f'train_cfg.val_interval={iters + 10}', 'default_hooks.checkpoint.interval=1'))


def test_resume_skips_a_corrupt_newest_checkpoint(repo_root, synthetic, tmp_path):
    work_dir = tmp_path / 'wd'
    code, _, log = _train_tiny(repo_root, synthetic, work_dir, 2)
    assert code == 0, log[-3000:]
    newest = work_dir / 'iter_2.pth'
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(newest)
    newest.write_bytes(newest.read_bytes()[:1000])  # killed while saving
    earlier = (work_dir / 'iter_1.pth').read_bytes()

    code, _, log = _train_tiny(repo_root, synthetic, work_dir, 3, '--resume')
    assert code == 0, log[-3000:]
    assert f'--resume: skipping the unreadable checkpoint {newest}: {newest} is not a PyTorch checkpoint' \
        in log
    assert f"--resume: resuming from {work_dir / 'iter_1.pth'} instead" in log
    assert 'resumed epoch: 0, iter: 1' in log
    assert (work_dir / 'iter_1.pth').read_bytes() == earlier
    assert (work_dir / 'last_checkpoint').read_text().strip() == str(work_dir / 'iter_3.pth')


def test_resume_without_any_readable_checkpoint(capsys, synthetic, tmp_path):
    work_dir = tmp_path / 'wd'
    work_dir.mkdir()
    (work_dir / 'iter_4.pth').write_bytes(b'\x00' * 10)
    code, err = _main(capsys, 'tools/train.py', TINY, '--work-dir', work_dir, '--resume',
                      *_tiny_options(synthetic))
    assert code == EXIT_USAGE
    assert len(err) == 1 and err[0].startswith(f'error: --resume: no checkpoint in {work_dir} can be read (')
    assert (work_dir / 'iter_4.pth').read_bytes() == b'\x00' * 10


def test_mmdet_config_prefix_resolves():
    from a2bis_mm.utils.cli import resolve_config_path
    path = resolve_config_path('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    assert path.endswith('mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
