"""tools/infer.py: output formats, names, earlier outputs kept, one-line errors for bad input."""
import importlib.util
import struct
import subprocess
import sys
import zlib

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.runner import save_checkpoint

from a2bis_mm.apis import init_a2bis_model

TINY_CONFIG = 'configs/a2bis/a2bis-tiny_a2b_300i_synthetic.py'


@pytest.fixture(scope='module')
def tool(repo_root):
    spec = importlib.util.spec_from_file_location('infer_tool', repo_root / 'tools' / 'infer.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def model_files(repo_root, tmp_path_factory):
    """Config and checkpoint of an untrained one-class tiny model that finds instances (its last
    convs get random weights; they start at zero, which finds nothing)."""
    cfg = Config.fromfile(str(repo_root / TINY_CONFIG))
    cfg.model.mask_head.num_classes = 1
    cfg.test_dataloader.dataset.metainfo = dict(classes=('nucleus', ))
    torch.manual_seed(0)
    model = init_a2bis_model(cfg, None, device='cpu')
    for branch in (model.mask_head.skeleton_branch, model.mask_head.seg_branch):
        torch.nn.init.normal_(branch.conv_out.weight, std=0.3)
    folder = tmp_path_factory.mktemp('model')
    cfg.dump(str(folder / 'model.py'))
    save_checkpoint(model.state_dict(), str(folder / 'model.pth'))
    return str(folder / 'model.py'), str(folder / 'model.pth')


@pytest.fixture(scope='module')
def small_image(shared_data):
    """A 128 px crop of a real H&E tile: enough instances, a few seconds per run."""
    img = cv2.imread(str(shared_data / 'cpm15' / 'images' / 'image02.png'), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(img[100:228, 100:228])


def _args(src, out, model_files, *extra):
    return [str(src), '--config', model_files[0], '--checkpoint', model_files[1],
            '--out-dir', str(out), *extra]


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_help_lists_formats(tool, capsys):
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    text = ' '.join(capsys.readouterr().out.split())
    assert '--formats' in text and 'coco' in text and 'geojson' in text and 'overlay' in text


def test_formats_and_names_sharing_a_stem(tool, model_files, small_image, tmp_path, capsys):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    cv2.imwrite(str(src / 'a.png'), small_image)
    cv2.imwrite(str(src / 'a.jpg'), small_image)
    cv2.imwrite(str(src / 'b.png'), small_image)
    summary = tool.main(_args(src, out, model_files, '--formats', 'geojson,overlay'))
    assert summary['done'] == 3 and summary['instances'] > 0
    # a.png and a.jpg both keep their outputs; b alone keeps the short name
    assert sorted(p.name for p in out.iterdir()) == [
        'a.jpg.geojson', 'a.jpg.overlay.png', 'a.png.geojson', 'a.png.overlay.png',
        'b.geojson', 'b.overlay.png']
    assert 'share a name' in capsys.readouterr().out


def test_earlier_outputs_are_kept(tool, model_files, small_image, tmp_path):
    src, out = tmp_path / 'in', tmp_path / 'out'
    src.mkdir()
    cv2.imwrite(str(src / 'x.png'), small_image)
    tool.main(_args(src, out, model_files, '--formats', 'coco'))
    before = _snapshot(out)
    assert list(before) == ['x.coco.json']
    with pytest.raises(tool.ToolInputError, match='already holds 1 of the outputs .*--overwrite'):
        tool.main(_args(src, out, model_files, '--formats', 'coco', '--score-thr', '0.9'))
    assert _snapshot(out) == before
    # --skip-existing: x is complete for coco, y is new
    cv2.imwrite(str(src / 'y.png'), small_image[::-1])
    summary = tool.main(_args(src, out, model_files, '--formats', 'coco', '--skip-existing'))
    assert summary['kept'] == 1 and summary['done'] == 1
    assert _snapshot(out)['x.coco.json'] == before['x.coco.json']
    summary = tool.main(_args(src, out, model_files, '--formats', 'coco', '--overwrite',
                              '--score-thr', '0.99'))
    assert summary['done'] == 2 and _snapshot(out)['x.coco.json'] != before['x.coco.json']
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')]


def _huge_png(path, width=40000, height=40000):
    """A valid PNG header claiming ``width x height`` px (the pixel data is never reached)."""
    ok, buf = cv2.imencode('.png', np.zeros((1, 1, 3), np.uint8))
    data = bytearray(buf.tobytes())
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])) & 0xffffffff)
    path.write_bytes(bytes(data))


@pytest.fixture(scope='module')
def bad_checkpoints(repo_root, model_files, tmp_path_factory):
    """Checkpoints that do not fit the one-class model: a 3-class one (another data set), one with
    a layer missing, and a file that is no checkpoint at all."""
    folder = tmp_path_factory.mktemp('bad')
    cfg = Config.fromfile(model_files[0])
    cfg.model.mask_head.num_classes = 3
    save_checkpoint(init_a2bis_model(cfg, None).state_dict(), str(folder / 'three_classes.pth'))
    weights = torch.load(model_files[1], weights_only=False)  # save_checkpoint of a bare state dict
    weights = {k: v for k, v in weights.items() if not k.startswith('mask_head.seg_branch.conv_out')}
    save_checkpoint(weights, str(folder / 'missing.pth'))
    (folder / 'text.pth').write_text('not weights')
    return folder


@pytest.mark.parametrize('case, message', [
    ('score', r'--score-thr must lie in \[0, 1\]'),
    ('formats', "--formats 'coco,qupath': choose from coco, geojson, overlay"),
    ('huge', r'has 40000x40000 = 1,600,000,000 px, over the limit of 1,073,741,824 px'),
    ('three_classes', r'does not fit the model \(A2BIS\): size mismatch for '
                      r'mask_head\.seg_branch\.conv_out\.'),
    ('missing', r'does not fit the model \(A2BIS\): missing keys mask_head\.seg_branch\.conv_out\.'),
    ('text', 'is not a PyTorch checkpoint'),
    ('cuda', 'no CUDA GPU is available here'),
    ('option', "--cfg-options 'model.test_cfg.max_per_im' matches nothing in the config"),
])
def test_bad_input_one_line_and_outputs_intact(tool, model_files, bad_checkpoints, tmp_path, case,
                                               message):
    if case == 'cuda' and torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img.coco.json').write_text('{"earlier": "run"}')
    before = _snapshot(out)
    src = tmp_path / 'img.png'
    cv2.imwrite(str(src), np.zeros((8, 8, 3), np.uint8))
    extra = dict(score=['--score-thr', '1.5'], formats=['--formats', 'coco,qupath'],
                 cuda=['--device', 'cuda'],
                 option=['--cfg-options', 'model.test_cfg.max_per_im=5']).get(case, [])
    files = model_files
    if case == 'huge':
        _huge_png(src)
    elif case in ('three_classes', 'missing', 'text'):
        files = (model_files[0], str(bad_checkpoints / f'{case}.pth'))
    # --overwrite: even a run allowed to replace the earlier outputs must stop before writing
    with pytest.raises(tool.ToolInputError, match=message):
        tool.main(_args(src, out, files, '--overwrite', *extra))
    assert _snapshot(out) == before


def test_api_refuses_a_checkpoint_of_another_model(model_files, bad_checkpoints):
    from a2bis_mm.utils.checkpoint import CheckpointMismatchError
    with pytest.raises(CheckpointMismatchError, match='size mismatch for mask_head.seg_branch.conv_out'):
        init_a2bis_model(model_files[0], str(bad_checkpoints / 'three_classes.pth'))


def test_bad_input_exits_with_one_line(repo_root, model_files, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'img.geojson').write_text('{}')
    cv2.imwrite(str(tmp_path / 'img.png'), np.zeros((8, 8, 3), np.uint8))
    proc = subprocess.run(
        [sys.executable, 'tools/infer.py', *_args(tmp_path / 'img.png', out, model_files,
                                                  '--score-thr', '-0.1')],
        cwd=repo_root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2  # bad usage, as argparse (a2bis_mm/utils/cli.py)
    assert proc.stderr.strip().splitlines() == [
        'error: --score-thr must lie in [0, 1] (scores are probabilities), got -0.1']
    assert (out / 'img.geojson').read_text() == '{}'
