"""seg_pretrain_vs_scratch.py: budgets, per-seed work dirs and the paired table."""
import importlib.util

import pytest

from tests.tools_helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    'seg_pretrain_vs_scratch', REPO_ROOT / 'tools/analysis_tools/seg_pretrain_vs_scratch.py')
seg = importlib.util.module_from_spec(spec)
spec.loader.exec_module(seg)
CONFIG = str(REPO_ROOT / seg.DEFAULT_CONFIG)


def test_budget_validates_every_interval_and_at_the_end():
    options = seg.budget_options(CONFIG, 1500, None, val_interval=250)
    assert options['train_cfg.max_iters'] == 1500
    assert options['train_cfg.val_interval'] == 250
    assert options['default_hooks.checkpoint.interval'] == 1500
    # the poly decay ends with the run, found by type
    assert options['param_scheduler'][-1]['type'] == 'PolyLR'
    assert options['param_scheduler'][-1]['end'] == 1500
    assert seg.budget_options(CONFIG, 1500, None)['train_cfg.val_interval'] == 1500
    with pytest.raises(ValueError, match='must divide'):
        seg.budget_options(CONFIG, 1500, None, val_interval=400)
    with pytest.raises(ValueError, match='need --iters'):
        seg.budget_options(CONFIG, None, None, val_interval=100)


def test_run_dirs_keep_the_single_seed_layout():
    assert seg.run_dir('w', 'scratch', None) == 'w/scratch'
    assert seg.run_dir('w', 'scratch', 2) == 'w/s2/scratch'


def test_table_gives_the_gap_paired_by_seed():
    results = [dict(run=run, seed=s, iters=100, mIoU=m, mAcc=m + 10, aAcc=m + 50,
                    final_train_loss=0.5, train_seconds=60)
               for run, s, m in (('pretrained', 0, 30.0), ('pretrained', 1, 34.0),
                                 ('scratch', 0, 20.0), ('scratch', 1, 28.0))]
    text = seg.table(results)
    assert '| pretrained | 2 | 32.00 ± 2.83 | 42.00 ± 2.83 | 82.00 ± 2.83 |' in text
    assert '| scratch | 2 | 24.00 ± 5.66 |' in text
    # gaps 10 and 6
    assert '| gap, paired | 2 | +8.00 ± 2.83 |' in text
    # one seed: the per-run rows only
    assert 'over seeds' not in seg.table(results[::2])


def test_recorded_options_hold_no_path_of_this_checkout():
    word = f'model.backbone.init_cfg.checkpoint={seg.REPO_ROOT}/checkpoints/x.pth'
    assert seg.recorded_word(word) == 'model.backbone.init_cfg.checkpoint=checkpoints/x.pth'
    assert seg.recorded_word('train_cfg.max_iters=4') == 'train_cfg.max_iters=4'
