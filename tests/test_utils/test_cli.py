"""The command-line checks of a2bis_mm/utils/cli.py, in process (the tools' end-to-end runs are in
tests/test_tools/test_tool_errors.py)."""
import pytest
import torch
from mmengine.config import Config

from a2bis_mm.utils.cli import (
    EXIT_USAGE,
    ToolInputError,
    check_cfg_options,
    check_data_paths,
    check_device,
    run_tool,
)
from a2bis_mm.utils.errors import DatasetError, DatasetNotFoundError


@pytest.fixture(scope='module')
def cfg(repo_root) -> Config:
    return Config.fromfile(repo_root / 'configs/a2bis/a2bis-t_a2b_50e_consep-256.py',
                           import_custom_modules=False)


@pytest.mark.parametrize('key', [
    'train_cfg.max_epochs', 'train_cfg.val_begin', 'train_dataloader.dataset.indices',
    'model.backbone.init_cfg.type', 'val_evaluator.1.type', 'default_hooks.checkpoint.save_best',
    'param_scheduler.0.gamma', 'custom_hooks', 'model.backbone._delete_'])
def test_options_that_name_or_add_keys_pass(cfg, key):
    assert check_cfg_options(cfg, {key: 1}) == {key: 1}


@pytest.mark.parametrize('key,near', [
    ('train_cfg.max_epoch', 'train_cfg.max_epochs'), ('train_dataloder.batch_size', 'train_dataloader'),
    ('model.backbone.arc', 'model.backbone.arch'),
    ('val_dataloader.datset.type', 'val_dataloader.dataset')])
def test_misspelt_option_is_refused_with_the_nearest_key(cfg, key, near):
    with pytest.raises(ToolInputError, match=f"'{key}' matches nothing in the config.*did you mean '{near}'"):
        check_cfg_options(cfg, {key: 1})


def test_plus_adds_a_key_close_to_an_existing_one(cfg):
    with pytest.raises(ToolInputError, match="did you mean 'optim_wrapper.type'"):
        check_cfg_options(cfg, {'optim_wrapper.types': 'bfloat16'})
    assert check_cfg_options(cfg, {'+optim_wrapper.types': 'bfloat16'}) == {'optim_wrapper.types': 'bfloat16'}


def test_list_index_out_of_range(cfg):
    with pytest.raises(ToolInputError,
                       match="'val_evaluator.5.type': val_evaluator is a list of 3 entries"):
        check_cfg_options(cfg, {'val_evaluator.5.type': 'X'})


def test_data_paths(cfg, tmp_path, shared_data, repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)  # data roots are relative to the repository root
    cfg = cfg.copy()
    parts = ('train_dataloader', 'val_dataloader', 'val_evaluator')
    check_data_paths(cfg, parts)  # ../shared/data/consep256 exists
    cfg.val_dataloader.dataset.ann_file = 'missing.json'
    with pytest.raises(ToolInputError, match="val_dataloader.dataset.ann_file: file '../shared/data/"
                       "consep256/missing.json' does not exist; point it at your data with "
                       '--cfg-options val_dataloader.dataset.ann_file=PATH'):
        check_data_paths(cfg, parts)
    check_data_paths(cfg, ('train_dataloader', ))  # only what the tool uses is checked
    cfg.val_evaluator = [dict(type='CocoMetric', ann_file=str(tmp_path / 'val.json'))]
    cfg.val_dataloader.dataset.ann_file = 'val.json'
    with pytest.raises(ToolInputError, match=r"val_evaluator.0.ann_file: file '.*val.json' does not exist"):
        check_data_paths(cfg, parts)


def test_data_paths_of_wrapped_datasets(tmp_path):
    cfg = Config(dict(train_dataloader=dict(dataset=dict(type='ConcatDataset', datasets=[
        dict(type='A', data_root=str(tmp_path)), dict(type='B', data_root=str(tmp_path / 'nope'))]))))
    with pytest.raises(ToolInputError,
                       match=r"train_dataloader.dataset.datasets.1.data_root: folder '.*nope'"):
        check_data_paths(cfg, ('train_dataloader', ))


def test_device(monkeypatch):
    assert check_device('cpu') == 'cpu'
    with pytest.raises(ToolInputError, match="--device 'gpu0' is not a device name"):
        check_device('gpu0')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    with pytest.raises(ToolInputError,
                       match=r'--device cuda: no CUDA GPU is available here \(use --device cpu\)'):
        check_device('cuda')
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert check_device('cuda:1') == 'cuda:1'
    with pytest.raises(ToolInputError, match='has 2 CUDA GPU'):
        check_device('cuda:2')


@pytest.mark.parametrize('error', [ToolInputError('bad thing'), DatasetError('bad thing'),
                                   DatasetNotFoundError('bad thing')])
def test_run_tool_exits_with_one_line(capsys, error):
    def main():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        run_tool(main)
    assert exit_info.value.code == EXIT_USAGE == 2
    assert capsys.readouterr().err == 'error: bad thing\n'


def test_run_tool_keeps_tracebacks_of_bugs():
    def main():
        raise KeyError('a bug')

    with pytest.raises(KeyError):
        run_tool(main)
