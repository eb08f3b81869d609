"""Bad input to the tools gives one clear line on stderr and a non-zero exit, not a traceback."""
import subprocess
import sys

import pytest

CONFIG = 'configs/_base_/default_runtime.py'


def _run(repo_root, *args):
    proc = subprocess.run([sys.executable, *args], cwd=repo_root, capture_output=True, text=True,
                          timeout=300)
    return proc.returncode, proc.stderr.strip().splitlines()


@pytest.mark.parametrize('tool', ['tools/train.py', 'tools/test.py'])
def test_missing_config(repo_root, tool):
    extra = ['ckpt.pth'] if tool.endswith('test.py') else []
    code, err = _run(repo_root, tool, 'configs/does_not_exist.py', *extra)
    assert code != 0
    assert err == ["error: config file 'configs/does_not_exist.py' does not exist"]


def test_unwritable_work_dir(repo_root, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')  # a work dir below a regular file can never be created (even as root)
    code, err = _run(repo_root, 'tools/train.py', CONFIG, '--work-dir', str(blocker / 'wd'))
    assert code != 0
    assert len(err) == 1 and err[0].startswith(f"error: work dir '{blocker / 'wd'}' cannot be written")


def test_not_a_checkpoint(repo_root, tmp_path):
    bad = tmp_path / 'model.pth'
    bad.write_text('this is a text file, not weights')
    code, err = _run(repo_root, 'tools/test.py', CONFIG, str(bad), '--work-dir', str(tmp_path / 'wd'))
    assert code != 0
    assert len(err) == 1 and err[0].startswith(f'error: {bad} is not a PyTorch checkpoint')


def test_missing_resume_checkpoint(repo_root, tmp_path):
    code, err = _run(repo_root, 'tools/train.py', CONFIG, '--work-dir', str(tmp_path / 'wd'),
                     '--resume', str(tmp_path / 'gone.pth'))
    assert code != 0
    assert err == [f"error: checkpoint '{tmp_path / 'gone.pth'}' does not exist"]


def test_mmdet_config_prefix_resolves():
    from a2bis_mm.utils.cli import resolve_config_path
    path = resolve_config_path('mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
    assert path.endswith('mmdet/.mim/configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')
