"""Full mmengine checkpoints load under torch >= 2.6 (weights_only default) through our loader."""
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint, save_checkpoint

import a2bis_mm  # noqa: F401  installs the loader
from a2bis_mm.utils import CheckpointError, load_local_checkpoint
from a2bis_mm.utils.checkpoint import (
    CheckpointMismatchError,
    find_resume_checkpoint,
    load_checkpoint_strict,
    load_state_dict_strict,
)


def _full_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 2)
    optim = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 3)).sum().backward()
    optim.step()
    hub = MessageHub.get_instance('test_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('iter', np.int64(7))
    ckpt = dict(meta=dict(epoch=np.int64(2), iter=np.int64(7), seed=np.int32(0),
                          lr=np.float64(1e-4), dataset_meta=dict(classes=('a', 'b'))),
                state_dict=model.state_dict(), optimizer=optim.state_dict(),
                message_hub=hub.state_dict())
    path = tmp_path / 'full.pth'
    save_checkpoint(ckpt, str(path))
    return path, model, optim


def test_plain_torch_load_fails_but_ours_loads(tmp_path):
    path, model, optim = _full_checkpoint(tmp_path)
    with pytest.raises(Exception, match='Weights only load failed'):
        torch.load(path, weights_only=True)
    ckpt = _load_checkpoint(str(path), map_location='cpu')  # mmengine's path, as resume uses it
    assert int(ckpt['meta']['iter']) == 7 and ckpt['meta']['dataset_meta']['classes'] == ('a', 'b')
    torch.testing.assert_close(ckpt['state_dict']['weight'], model.weight.detach())
    assert ckpt['optimizer']['state'][0]['step'] == optim.state_dict()['state'][0]['step']
    restored = MessageHub.get_instance('restored')
    restored.load_state_dict(ckpt['message_hub'])
    assert restored.get_scalar('train/loss').current() == 0.5


def test_load_from_into_model(tmp_path):
    path, model, _ = _full_checkpoint(tmp_path)
    fresh = torch.nn.Linear(3, 2)
    load_checkpoint(fresh, str(path), map_location='cpu')
    torch.testing.assert_close(fresh.weight, model.weight)


def test_plain_state_dict_takes_the_safe_path(tmp_path):
    path = tmp_path / 'weights.pth'
    torch.save({'w': torch.ones(2)}, path)
    assert torch.equal(load_local_checkpoint(str(path))['w'], torch.ones(2))


@pytest.mark.parametrize('content', [b'not a checkpoint at all', b''])
def test_not_a_checkpoint(tmp_path, content):
    path = tmp_path / 'bad.pth'
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match='is not a PyTorch checkpoint'):
        load_local_checkpoint(str(path))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_local_checkpoint(str(tmp_path / 'nope.pth'))


class _Net(torch.nn.Module):
    def __init__(self, out=2):
        super().__init__()
        self.head = torch.nn.Linear(3, out)
        self.norm = torch.nn.BatchNorm1d(3)


class _Renamed(_Net):
    """A module whose keys were renamed (``head`` -> ``cls``) and that still loads old checkpoints."""

    def __init__(self):
        super().__init__()
        self.cls = self.head
        del self.head

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for k in [k for k in state_dict if k.startswith(prefix + 'head.')]:
            state_dict[prefix + 'cls.' + k[len(prefix + 'head.'):]] = state_dict.pop(k)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def test_strict_load_of_a_fitting_checkpoint(tmp_path):
    src = _Net()
    path = tmp_path / 'ok.pth'
    save_checkpoint({'state_dict': {f'module.{k}': v for k, v in src.state_dict().items()},
                     'meta': {'dataset_meta': {'classes': ('a', )}}}, str(path))
    model = _Net()
    ckpt = load_checkpoint_strict(model, str(path))
    assert ckpt['meta']['dataset_meta']['classes'] == ('a', )
    torch.testing.assert_close(model.head.weight, src.head.weight)
    renamed = _Renamed()  # old key names load through the module's own remapping
    load_checkpoint_strict(renamed, str(path))
    torch.testing.assert_close(renamed.cls.weight, src.head.weight)


@pytest.mark.parametrize('change,message', [
    ('resized', r'size mismatch for head.weight \(checkpoint \[5, 3\], model \[2, 3\]\), '
                r'head.bias \(checkpoint \[5\], model \[2\]\)'),
    ('missing', r'missing keys norm.weight, norm.bias, norm.running_mean and 1 more'),
    ('unexpected', r'unexpected keys extra.weight')])
def test_strict_load_refuses_what_does_not_fit(tmp_path, change, message):
    state = _Net(out=5 if change == 'resized' else 2).state_dict()
    if change == 'missing':
        state = {k: v for k, v in state.items() if k.startswith('head')}
    if change == 'unexpected':
        state['extra.weight'] = torch.zeros(1)
    path = tmp_path / 'other.pth'
    torch.save(state, path)
    with pytest.raises(CheckpointMismatchError, match=f'^checkpoint {path} does not fit the model '
                       rf'\(_Net\): {message}$'):
        load_checkpoint_strict(_Net(), str(path))
    with pytest.raises(CheckpointError, match='does not fit'):  # a CheckpointError, as unreadable files
        load_state_dict_strict(_Net(), {'state_dict': state}, 'x')


def _train_checkpoints(folder, iters):
    for i in iters:
        save_checkpoint({'state_dict': {'w': torch.full((2, ), float(i))}, 'meta': {'iter': i}},
                        str(folder / f'iter_{i}.pth'))
    (folder / 'last_checkpoint').write_text(str(folder / f'iter_{iters[-1]}.pth'))


def test_resume_takes_the_newest_readable_checkpoint(tmp_path, mm_caplog):
    assert find_resume_checkpoint(str(tmp_path)) is None  # nothing saved yet
    _train_checkpoints(tmp_path, [1, 2, 10])
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_10.pth')
    assert 'unreadable' not in mm_caplog.text
    (tmp_path / 'iter_10.pth').write_bytes(b'')  # killed while saving
    (tmp_path / 'iter_2.pth').write_bytes(b'garbage')
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_1.pth')
    assert f'skipping the unreadable checkpoint {tmp_path}/iter_10.pth' in mm_caplog.text
    assert f'skipping the unreadable checkpoint {tmp_path}/iter_2.pth' in mm_caplog.text
    assert f'resuming from {tmp_path}/iter_1.pth instead' in mm_caplog.text
    (tmp_path / 'iter_1.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match=f'no checkpoint in {tmp_path} can be read'):
        find_resume_checkpoint(str(tmp_path))


def test_resume_when_last_checkpoint_names_a_removed_file(tmp_path):
    _train_checkpoints(tmp_path, [3, 4])
    (tmp_path / 'iter_4.pth').unlink()
    assert find_resume_checkpoint(str(tmp_path)) == str(tmp_path / 'iter_3.pth')
