"""Full mmengine checkpoints load under torch >= 2.6 (weights_only default) through our loader."""
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, load_checkpoint, save_checkpoint

import a2bis_mm  # noqa: F401  installs the loader
from a2bis_mm.utils import CheckpointError, load_local_checkpoint


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
