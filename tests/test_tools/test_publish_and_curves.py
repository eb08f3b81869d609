"""tools/model_converters/publish_model.py and tools/analysis_tools/plot_curves.py on small real inputs."""
import hashlib
import importlib.util
import json

import pytest
import torch
from mmengine.config import Config

from a2bis_mm.utils.cli import ToolInputError


def _load_tool(repo_root, rel_path):
    spec = importlib.util.spec_from_file_location(rel_path.replace('/', '_'), repo_root / rel_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_publish_model_keeps_weights_as_fp16(repo_root, tmp_path):
    publish = _load_tool(repo_root, 'tools/model_converters/publish_model.py')
    weight = torch.linspace(-3, 3, 12).reshape(3, 4)
    checkpoint = dict(
        state_dict={'conv.weight': weight, 'steps': torch.tensor(7)},
        optimizer={'state': {0: torch.zeros(3)}},
        message_hub={'x': 1},
        meta={'dataset_meta': {'classes': ('a', 'b')}, 'epoch': 3})
    src = tmp_path / 'epoch_3.pth'
    torch.save(checkpoint, src)

    out = publish.main([str(src), str(tmp_path / 'zoo' / 'model.pth')])

    digest = hashlib.sha256(open(out, 'rb').read()).hexdigest()
    assert out.endswith(f'model-{digest[:8]}.pth')
    loaded = torch.load(out, weights_only=True)
    assert set(loaded) == {'state_dict', 'meta'}
    assert loaded['meta'] == {'dataset_meta': {'classes': ('a', 'b')}}
    assert loaded['state_dict']['conv.weight'].dtype == torch.float16
    assert loaded['state_dict']['steps'].dtype == torch.int64  # integers are not cast
    torch.testing.assert_close(loaded['state_dict']['conv.weight'].float(), weight, atol=2e-3,
                               rtol=1e-3)
    assert not list((tmp_path / 'zoo').glob('*.tmp'))


def test_publish_model_refuses_non_checkpoints(repo_root, tmp_path):
    publish = _load_tool(repo_root, 'tools/model_converters/publish_model.py')
    bad = tmp_path / 'notes.pth'
    bad.write_text('not a checkpoint')
    with pytest.raises(ToolInputError, match='not a PyTorch checkpoint'):
        publish.main([str(bad), str(tmp_path / 'out.pth')])
    with pytest.raises(ToolInputError, match='must end with .pth'):
        publish.main([str(bad), str(tmp_path / 'out.bin')])


def _fake_run(work_dir, batch_size, entries_per_start):
    """A work dir as tools/train.py leaves it: the dumped config and one scalars.json per start."""
    work_dir.mkdir()
    cfg = Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=100),
                      train_dataloader=dict(batch_size=batch_size)))
    cfg.dump(str(work_dir / 'run.py'))
    for i, entries in enumerate(entries_per_start):
        vis = work_dir / f'2026120{i}_000000' / 'vis_data'
        vis.mkdir(parents=True)
        (vis / 'scalars.json').write_text(''.join(json.dumps(e) + '\n' for e in entries))


def test_plot_curves_in_image_steps(repo_root, tmp_path):
    curves = _load_tool(repo_root, 'tools/analysis_tools/plot_curves.py')
    # batch 2: validation after iterations 10 and 20, resumed once (the resumed start re-validates 20)
    _fake_run(tmp_path / 'a', 2, [
        [{'loss': 3.0, 'step': 5}, {'pq/bPQ': 0.1, 'step': 10}, {'pq/bPQ': 0.2, 'step': 20}],
        [{'pq/bPQ': 0.25, 'step': 20}, {'pq/bPQ': float('nan'), 'step': 30}],
    ])
    # batch 4: the same image-steps come after half the iterations
    _fake_run(tmp_path / 'b', 4, [[{'pq/bPQ': 0.3, 'step': 5}, {'pq/bPQ': 0.4, 'step': 10}]])
    runs = curves.collect([str(tmp_path / 'a'), str(tmp_path / 'b')], ['pq/bPQ'])
    assert runs[0]['pq/bPQ'] == [(20, 0.1), (40, 0.25)]  # later start wins, NaN dropped
    assert runs[1]['pq/bPQ'] == [(20, 0.3), (40, 0.4)]

    out = tmp_path / 'curves.png'
    curves.main([str(tmp_path / 'a'), str(tmp_path / 'b'), '--metrics', 'pq/bPQ', '--out', str(out)])
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'

    with pytest.raises(ToolInputError, match='no .*scalars.json'):
        (tmp_path / 'c').mkdir()
        Config(dict(train_cfg=dict(type='IterBasedTrainLoop'),
                    train_dataloader=dict(batch_size=1))).dump(str(tmp_path / 'c' / 'run.py'))
        curves.collect([str(tmp_path / 'c')], ['pq/bPQ'])


def test_plot_curves_epochs_count_the_filtered_train_set(repo_root, shared_data, tmp_path):
    """Epoch-based runs: image-steps = epochs x the train set that the run's config builds."""
    curves = _load_tool(repo_root, 'tools/analysis_tools/plot_curves.py')
    cfg = Config.fromfile(str(repo_root / 'configs/a2bis/a2bis-t_a2b_50e_consep-256.py'))
    cfg.train_dataloader.dataset.data_root = str(shared_data / 'consep256') + '/'
    assert curves.images_per_step(cfg) == (411, 'epoch')  # 432 patches, 21 without nuclei
