"""The weights under models/ load strictly into their configs and reproduce models/README.md on real data.

Each file is ``models/<config name>-<sha256[:8]>.pth`` (``tools/model_converters/publish_model.py``);
the test runs ``tools/test.py``'s Runner on the first validation images and compares with the values
measured with the same command when the weights were published.
"""
import hashlib
from pathlib import Path

import pytest

from tools import test as test_tool

ROOT = Path(__file__).resolve().parents[2]
# config -> (validation images tested here, metric -> value on them, measured with these weights)
ZOO = {
    'configs/a2bis/a2bis-t_a2b_12e_consep-256.py': (16, {
        'ap50/mask_mAP50': 0.0239, 'err/pred': 2}),
    'configs/a2bis/a2bis-t_a2b_40e_chromosome-256.py': (9, {
        'pq/bPQ': 0.2742, 'ap50/mask_mAP50': 0.2494, 'err/tp': 9}),
}


def _weights(config: str) -> Path:
    stem = Path(config).stem
    found = sorted((ROOT / 'models').glob(f'{stem}-*.pth'))
    assert len(found) == 1, f'expected one models/{stem}-<sha>.pth, found {found}'
    return found[0]


def test_every_shipped_file_is_tested_documented_and_named_by_its_hash():
    shipped = sorted((ROOT / 'models').glob('*.pth'))
    assert {p.name for p in shipped} == {_weights(c).name for c in ZOO}
    table = (ROOT / 'models' / 'README.md').read_text()
    for path in shipped:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert path.stem.endswith(digest[:8]) and digest in table, path.name
        assert path.stat().st_size < 20 * 2**20  # weights only, fp16


@pytest.mark.parametrize('config', sorted(ZOO))
def test_shipped_weights_reproduce_their_metrics(shared_data, tmp_path, monkeypatch, config):
    images, expected = ZOO[config]
    monkeypatch.chdir(ROOT)  # the configs' data paths are relative to the repository root
    runner = test_tool.build_runner([
        config, str(_weights(config)), '--work-dir', str(tmp_path), '--cfg-options',
        f'test_dataloader.dataset.indices={images}', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'])
    metrics = runner.test()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, rel=0.1, abs=0.003), key
