"""Tests of tools/benchmark.py: budget applied to configs, doc section, outputs and resume."""
import csv
import json

import pytest

from tools import benchmark

MASK_RCNN = 'configs/baselines/mask-rcnn_r50_fpn_50e_consep-256.py'
RTMDET = 'configs/baselines/rtmdet-ins_s_50e_consep-256.py'


def _args(tmp_path, *extra):
    return benchmark.parse_args(['--configs', MASK_RCNN, '--data', 'consep256', '--work-dir',
                                 str(tmp_path / 'wd'), '--doc', str(tmp_path / 'doc.md'), *extra])


def test_budget_is_applied_to_the_config(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    cfg = benchmark.benchmark_config(_args(tmp_path, '--budget-iters', '30', '--smoke'),
                                     MASK_RCNN, str(tmp_path / 'x'))
    assert cfg.train_cfg == dict(type='IterBasedTrainLoop', max_iters=30,
                                 val_interval=benchmark.NEVER)
    assert cfg.param_scheduler[0].end == 6  # warm-up capped at a fifth of the budget
    assert cfg.custom_hooks[-1] == dict(type='BenchmarkHook', max_minutes=None)
    assert cfg.train_dataloader.dataset.indices == 4 and cfg.test_dataloader.dataset.indices == 2
    assert cfg.val_dataloader is None and cfg.val_cfg is None  # no validation inside the budget
    assert cfg.default_hooks.checkpoint.save_last and not cfg.default_hooks.checkpoint.by_epoch

    cfg = benchmark.benchmark_config(_args(tmp_path, '--budget-minutes', '1.5'), MASK_RCNN,
                                     str(tmp_path / 'x'))
    assert cfg.train_cfg.max_iters == benchmark.NEVER
    assert cfg.custom_hooks[-1].max_minutes == 1.5 and cfg.param_scheduler[0].end == 50
    assert 'indices' not in cfg.train_dataloader.dataset

    with pytest.raises(ValueError, match='not on --data cpm15'):
        args = _args(tmp_path, '--budget-iters', '2')
        args.data = 'cpm15'
        benchmark.benchmark_config(args, MASK_RCNN, str(tmp_path / 'x'))


def test_bad_arguments_fail_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _args(tmp_path, '--budget-iters', '0')
    assert '--budget-iters must be positive, got 0' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--configs', 'nope.py', '--data', 'x', '--budget-iters', '1'])
    assert "config file 'nope.py' does not exist" in capsys.readouterr().err


def test_doc_section_is_replaced_and_others_kept(tmp_path):
    doc = tmp_path / 'doc.md'
    doc.write_text('# Benchmarks\n\n## Other benchmark\n\nkeep me\n')
    benchmark.replace_doc_section(str(doc), benchmark.DOC_SECTION + '\n\nfirst\n')
    benchmark.replace_doc_section(str(doc), benchmark.DOC_SECTION + '\n\nsecond\n')
    text = doc.read_text()
    assert text.count(benchmark.DOC_SECTION) == 1 and 'second' in text and 'first' not in text
    assert '## Other benchmark\n\nkeep me' in text


def test_resume_skips_finished_entries(tmp_path, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    calls = []

    def fake_entry(args, config, work_dir):
        calls.append(config)
        return dict(config=config, name='fake', status='done', iters=2, mask_AP50=0.25,
                    rbox_AP50=0.5, mPQ=0.125, bPQ=0.75, params_MB=1.0, gflops=2.0)

    monkeypatch.setattr(benchmark, 'run_entry', fake_entry)
    argv = ['--configs', MASK_RCNN, RTMDET, '--data', 'consep256', '--budget-iters', '2',
            '--work-dir', str(tmp_path / 'wd'), '--doc', str(tmp_path / 'doc.md')]
    benchmark.main(argv)
    assert calls == [MASK_RCNN, RTMDET]
    store = json.loads((tmp_path / 'wd' / 'results.json').read_text())
    del store['entries'][benchmark.run_key(benchmark.parse_args(argv), RTMDET)]
    (tmp_path / 'wd' / 'results.json').write_text(json.dumps(store))  # as if interrupted
    benchmark.main(argv)
    assert calls == [MASK_RCNN, RTMDET, RTMDET]
    assert '| fake | 2 | 0.250 | 0.500 | 0.125 | 0.750 | 1.0 | 2.0 |' in (tmp_path / 'doc.md'
                                                                          ).read_text()


def test_smoke_run_on_real_data_writes_table_csv_json(tmp_path, repo_root, shared_data,
                                                       monkeypatch, capsys):
    """Trains Mask R-CNN for 2 iterations on 4 consep256 images and tests on 2 (a few min)."""
    if not (shared_data / 'consep256' / 'val.json').is_file():
        pytest.skip('consep256 is absent from the shared data')
    monkeypatch.chdir(repo_root)
    doc = tmp_path / 'doc.md'
    doc.write_text('# Benchmarks\n\n## Speed\n\nother section\n')
    argv = ['--configs', MASK_RCNN, '--data', 'consep256', '--budget-iters', '2', '--smoke',
            '--work-dir', str(tmp_path / 'wd'), '--doc', str(doc)]
    assert benchmark.main(argv) == 0
    store = json.loads((tmp_path / 'wd' / 'results.json').read_text())
    (entry, ) = store['entries'].values()
    assert entry['status'] == 'done' and entry['iters'] == 2 and entry['test_images'] == 2
    for key in ('mask_AP50', 'rbox_AP50', 'mPQ', 'bPQ'):
        assert 0.0 <= entry[key] <= 1.0
    assert 43.0 < entry['params_M'] < 45.0  # Mask R-CNN R50-FPN with 4 classes: 44.0 M
    assert entry['params_MB'] == pytest.approx(entry['params_M'] * 1e6 * 4 / 2**20)
    assert entry['gflops'] > 0 and entry['train_s_per_iter'] > 0 and entry['infer_img_per_s'] > 0
    assert entry['train_peak_mem_mib'] > 100
    rows = list(csv.DictReader(open(tmp_path / 'wd' / 'results.csv')))
    assert [r['name'] for r in rows] == ['mask-rcnn_r50_fpn_50e_consep-256']
    text = doc.read_text()
    assert 'other section' in text and 'SMOKE RUN' in text
    assert '| mask-rcnn_r50_fpn_50e_consep-256 | 2 |' in text
    capsys.readouterr()
    benchmark.main(argv)  # rerun: nothing is trained again
    assert 'done in an earlier run, skipped' in capsys.readouterr().out
