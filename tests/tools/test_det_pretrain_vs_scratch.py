"""det_pretrain_vs_scratch.py: the schedule options and the over-seeds table (no training)."""
import argparse
import importlib.util
import json
import sys

import pytest
from mmengine.config import Config

from tests.tools_helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    'det_pretrain_vs_scratch', REPO_ROOT / 'tools/analysis_tools/det_pretrain_vs_scratch.py')
det = importlib.util.module_from_spec(spec)
spec.loader.exec_module(det)


def test_train_options_validate_every_interval_and_set_the_init():
    cfg = Config.fromfile(str(REPO_ROOT / det.DEFAULT_CONFIG))
    args = argparse.Namespace(iters=1200, warmup_iters=None, val_interval=300, batch_size=8,
                              checkpoint='ckpt.pth')
    pre = det.train_options(args, cfg, 'pretrained')
    assert pre['train_cfg.max_iters'] == 1200 and pre['train_cfg.val_interval'] == 300
    assert pre['model.backbone.init_cfg.checkpoint'].endswith('ckpt.pth')
    assert pre['param_scheduler'][-1]['end'] == 1200
    scratch = det.train_options(argparse.Namespace(**{**vars(args), 'val_interval': None}), cfg,
                                'scratch')
    assert scratch['model.backbone.init_cfg'] is None and scratch['train_cfg.val_interval'] == 1200
    # the metrics of an iteration-based run are logged at their iteration, for the curve
    assert cfg.default_hooks.logger.log_metric_by_epoch is False


def record(run, seed, box, mask):
    return dict(run=run, seed=seed, iters=600, batch_size=8, checkpoint=None, train_seconds=60.0,
                **{'box AP': box, 'box AP50': 2 * box, 'mask AP': mask, 'mask AP50': 2 * mask},
                curve={'300': box / 2, '600': box})


def test_over_seeds_reads_every_recorded_run_and_pairs_the_gap(tmp_path, monkeypatch, capsys):
    for run, seed, box, mask in (('pretrained', 0, 10.0, 8.0), ('scratch', 0, 7.0, 6.0),
                                 ('pretrained', 1, 12.0, 9.0), ('scratch', 1, 8.0, 6.0)):
        (tmp_path / f's{seed}' / run).mkdir(parents=True)
        (tmp_path / f's{seed}' / run / 'result.json').write_text(json.dumps(record(run, seed, box, mask)))
    out = tmp_path / 'det.md'
    monkeypatch.setattr(sys, 'argv', ['det', '--seeds', '0', '1', '--summarize-only',
                                      '--work-dir', str(tmp_path), '--out', str(out)])
    det.main()
    table = out.read_text()
    assert '| pretrained | 2 | 11.00 ± 1.41 | 22.00 ± 2.83 | 8.50 ± 0.71 | 17.00 ± 1.41 |' in table
    # gaps 3 and 4 (box), 2 and 3 (mask), paired by seed
    assert '| gap, paired | 2 | +3.50 ± 0.71 | +7.00 ± 1.41 | +2.50 ± 0.71 | +5.00 ± 1.41 |' in table
    assert len(json.loads((tmp_path / 'det.json').read_text())) == 4
    monkeypatch.setattr(sys, 'argv', ['det', '--seeds', '7', '--summarize-only',
                                      '--work-dir', str(tmp_path)])
    with pytest.raises(FileNotFoundError, match='for seeds \\[7\\]'):
        det.main()
