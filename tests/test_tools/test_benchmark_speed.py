"""tools/benchmark_speed.py: peak measurement, ratios and the markdown section (no model runs)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'tools'))
import benchmark_speed  # noqa: E402


def _times(wall: float) -> dict:
    return dict(wall=wall, cpu=wall / 2, step=2 * wall, active=True)


def _predict(total: float) -> dict:
    return dict(backbone=total / 2, heads=total / 4, post=total / 4, total=total, cpu=total,
                batch_total=total, instances=3, input='256x256')


def test_matmul_peak_is_positive():
    peak = benchmark_speed.matmul_peak('cpu', size=128, reps=2)
    assert set(peak) == {'fp32', 'bf16'}
    assert all(v['wall'] > 0 and v['cpu'] > 0 for v in peak.values())


def test_render_ratios_and_peak_fraction():
    args = benchmark_speed.parse_args(['--doc', '', '--train-steps', '3', '--warmup', '1'])
    res = dict(machine='test CPU', load=(0.5, 0.7), load_note='.', reference='ref',
               peak=dict(fp32=dict(wall=100.0, cpu=50.0), bf16=dict(wall=400.0, cpu=200.0)),
               train=dict(a2bis=dict(gflop=300.0, times=dict(fp32=_times(6.0), bf16=_times(1.5))),
                          ref=dict(gflop=450.0, times=dict(fp32=_times(9.0), bf16=_times(6.0)))),
               predict=dict(a2bis=dict(weights='random weights',
                                       times=dict(fp32=_predict(0.5), bf16=_predict(0.2))),
                            ref=dict(weights='random weights',
                                     times=dict(fp32=_predict(2.0), bf16=_predict(1.0)))))
    text = benchmark_speed.render(res, args, 'python tools/benchmark_speed.py')
    assert text.startswith(benchmark_speed.DOC_SECTION)
    # a2bis bf16: 300 GFLOP / 1.5 s = 200 GFLOP/s = 50% of 400 (CPU basis: 300/0.75/200 = 200%)
    assert '| a2bis | bf16 | 3000 | 1.500 | 0.750 | 300 | 200 | 50% (200%) | 4.00x |' in text
    assert '| a2bis | random weights | bf16 | 100 | 50 | 50 | 200 | 200 | 200 | 25.0% | 3 | 0.20 |' \
        in text


def test_parse_args_rejects_mismatched_checkpoints():
    with pytest.raises(SystemExit):
        benchmark_speed.parse_args(['--checkpoints', 'a.pth'])
