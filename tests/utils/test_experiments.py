"""beitlab.utils.experiments: the schedule setter on the configs the experiment scripts use,
the scalars reader (resumed runs included), cfg options through the command line, and the
launcher's errors."""
import argparse
import json
from pathlib import Path
from typing import List, Optional

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import PARAM_SCHEDULERS

from beitlab.utils import experiments
from beitlab.utils.experiments import LaunchError, ScheduleLayoutError, read_scalars, schedule_options
from tests.tools_helpers import REPO_ROOT

# config -> (main LR scheduler, whether it runs alongside the warm-up from 0, has T_max)
SCRIPT_CONFIGS = {
    'configs/beit_finetune/beit_vit-fmnist_finetune-lrd0.65_fashion-mnist.py':
        ('CosineAnnealingLR', False, False),
    'configs/upernet_beit/upernet_beit-fmnist_1xb8-300it_fashion-mnist-scenes-48x48.py':
        ('PolyLR', False, False),
    'configs/mask-rcnn_beit/mask-rcnn_beit-fmnist-p4_sfp_1xb8-600it_fashion-mnist-scenes-48x48.py':
        ('CosineAnnealingLR', True, False),
    'configs/dvae/dvae_fashion-mnist.py': ('CosineAnnealingLR', False, False),
    'configs/vqkd/vqkd_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, False),
    'configs/beit/beit_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, True),
    'configs/beitv2/beitv2_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, True),
    'configs/mae/mae_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, True),
    'configs/simmim/simmim_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, True),
    'configs/maskfeat/maskfeat_vit-fmnist_fashion-mnist.py': ('CosineAnnealingLR', False, True),
}


def load(config: str) -> Config:
    return Config.fromfile(str(REPO_ROOT / config))


def lr_trajectory(schedulers: List[dict], iters: int) -> List[float]:
    """The lr of each of ``iters`` iterations under mmengine's schedulers, base lr 1."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    built = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer)) for s in schedulers]
    lrs = []
    for _ in range(iters):
        lrs.append(optimizer.param_groups[0]['lr'])
        optimizer.step()
        for scheduler in built:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('config', sorted(SCRIPT_CONFIGS))
def test_schedule_options_on_the_script_configs(config: str) -> None:
    main_type, alongside, has_t_max = SCRIPT_CONFIGS[config]
    cfg = load(config)
    options = schedule_options(cfg, 400, warmup_iters=40)
    assert options['train_cfg.max_iters'] == 400
    warmup, main = options['param_scheduler']
    assert warmup['type'] == 'LinearLR' and main['type'] == main_type
    assert (warmup['begin'], warmup['end']) == (0, 40)
    assert (main['begin'], main['end']) == ((0 if alongside else 40), 400)
    assert main.get('T_max') == ((360 if has_t_max else None))
    # nothing else changed
    old_warmup, old_main = cfg.param_scheduler
    assert {k: v for k, v in warmup.items() if k != 'end'} == \
        {k: v for k, v in old_warmup.items() if k != 'end'}
    assert {k: v for k, v in main.items() if k not in ('begin', 'end', 'T_max')} == \
        {k: v for k, v in old_main.items() if k not in ('begin', 'end', 'T_max')}
    # the config's warm-up length is kept when none is given
    kept = schedule_options(cfg, 400)['param_scheduler']
    assert kept[0]['end'] == old_warmup['end']
    assert kept[1]['begin'] == (0 if alongside else old_warmup['end'])

    # merged as --cfg-options would merge them, mmengine's schedulers peak at the end of
    # the warm-up and reach their floor at the new end
    cfg.merge_from_dict(options)
    assert cfg.train_cfg.max_iters == 400
    lrs = lr_trajectory(cfg.param_scheduler, 400)
    assert abs(max(range(400), key=lrs.__getitem__) - 40) <= 1
    floor = main.get('eta_min_ratio', main.get('eta_min', 0.0))
    assert lrs[-1] == pytest.approx(floor, abs=0.01)
    assert all(b <= a + 1e-12 for a, b in zip(lrs[41:], lrs[42:]))


def test_a_scheduler_added_before_the_warmup_does_not_retarget() -> None:
    cfg = load('configs/beit/beit_vit-fmnist_fashion-mnist.py')
    plain = schedule_options(cfg, 400, warmup_iters=40)['param_scheduler']
    # a momentum schedule ahead of the lr warm-up: list positions 0 and 1 now name other
    # schedulers than before (param_scheduler.1.end would move the lr warm-up's end)
    momentum = dict(type='CosineAnnealingMomentum', eta_min=0.85, by_epoch=False, begin=0,
                    end=cfg.train_cfg.max_iters)
    cfg.param_scheduler = [momentum, *cfg.param_scheduler]
    shifted = schedule_options(cfg, 400, warmup_iters=40)['param_scheduler']
    assert [s['type'] for s in shifted] == ['CosineAnnealingMomentum', 'LinearLR',
                                            'CosineAnnealingLR']
    assert shifted[1:] == plain
    assert (shifted[0]['begin'], shifted[0]['end']) == (0, 400)
    # and the order of the list does not matter either
    cfg.param_scheduler = cfg.param_scheduler[::-1]
    assert schedule_options(cfg, 400, warmup_iters=40)['param_scheduler'] == shifted[::-1]


def iteration_config(schedulers: List[dict], max_iters: int = 100) -> Config:
    return Config(dict(train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
                       param_scheduler=schedulers))


WARMUP = dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10)
COSINE = dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=100)


@pytest.mark.parametrize('schedulers, message', [
    ([dict(type='StepLR', step_size=10, by_epoch=False), WARMUP, COSINE],
     "unknown scheduler 'StepLR' (position 0) in param_scheduler types "
     "['StepLR', 'LinearLR', 'CosineAnnealingLR']"),
    ([WARMUP, dict(WARMUP, end=5), COSINE], "two warmup schedulers for 'lr' (positions 0 and 1)"),
    ([WARMUP], "no main scheduler for 'lr'"),
    ([WARMUP, dict(COSINE, by_epoch=True)], 'CosineAnnealingLR (position 1) counts epochs'),
    ([WARMUP, dict(COSINE, begin=20)], 'begins at 20, neither 0 nor where the warm-up ends (10)'),
    ([WARMUP, dict(COSINE, end=90)], 'ends at 90, not at train_cfg.max_iters=100'),
    ([WARMUP, dict(COSINE, T_max=50)], 'has T_max=50, not its span end - begin = 90'),
])
def test_schedule_layouts_it_cannot_resize_are_named(schedulers: List[dict], message: str) -> None:
    with pytest.raises(ScheduleLayoutError) as err:
        schedule_options(iteration_config(schedulers), 200)
    assert message in str(err.value)


def test_schedule_options_refuses_epoch_loops_and_long_warmups() -> None:
    epochs = Config(dict(train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=12),
                         param_scheduler=[WARMUP, COSINE]))
    with pytest.raises(ScheduleLayoutError, match='EpochBasedTrainLoop'):
        schedule_options(epochs, 200)
    pauseless = iteration_config([WARMUP, COSINE])
    pauseless.train_cfg.type = 'PauselessIterBasedTrainLoop'  # a subclass: iteration-based too
    assert schedule_options(pauseless, 200)['train_cfg.max_iters'] == 200
    with pytest.raises(ScheduleLayoutError, match="'NoSuchLoop'"):
        schedule_options(Config(dict(train_cfg=dict(type='NoSuchLoop', max_iters=5))), 200)
    with pytest.raises(ScheduleLayoutError, match='warm-up of 10 iterations is not shorter than '
                                                  'max_iters=10'):
        schedule_options(iteration_config([WARMUP, COSINE]), 10)
    with pytest.raises(ValueError, match=r'warmup_iters must be in \[1, max_iters=50\), got 50'):
        schedule_options(iteration_config([WARMUP, COSINE]), 50, warmup_iters=50)
    with pytest.raises(ScheduleLayoutError, match='has no warm-up'):
        schedule_options(iteration_config([dict(COSINE, begin=0)]), 50, warmup_iters=5)


def test_multistep_milestones_stretch_with_the_schedule() -> None:
    steps = dict(type='MultiStepLR', by_epoch=False, begin=0, end=100, milestones=[60, 90])
    options = schedule_options(iteration_config([WARMUP, steps]), 200)
    assert options['param_scheduler'][1]['milestones'] == [120, 180]
    with pytest.raises(ScheduleLayoutError, match='not increasing'):
        schedule_options(iteration_config([WARMUP, dict(steps, milestones=[98, 99])]), 11)


# ---------------------------------------------------------------------------- scalars
def write_run(work_dir: Path, timestamp: str, entries: List[dict],
              resumed_from: Optional[int] = None, tail: str = '') -> Path:
    """A run dir as mmengine leaves it: ``<timestamp>/<timestamp>.log`` and
    ``<timestamp>/vis_data/scalars.json``."""
    run = work_dir / timestamp
    (run / 'vis_data').mkdir(parents=True)
    log = 'mmengine - INFO - Checkpoints will be saved to ...\n'
    if resumed_from is not None:
        log += f'mmengine - INFO - resumed epoch: 0, iter: {resumed_from}\n'
    (run / f'{timestamp}.log').write_text(log)
    lines = ''.join(json.dumps(e) + '\n' for e in entries)
    (run / 'vis_data' / 'scalars.json').write_text(lines + tail)
    return run / 'vis_data' / 'scalars.json'


def train_entry(step: int, loss: float) -> dict:
    return dict(lr=0.001, loss=loss, time=0.5, iter=step, step=step)


def test_read_scalars_joins_a_resumed_run_to_the_run_it_resumed(tmp_path: Path) -> None:
    first = [train_entry(s, 10.0 - s / 10) for s in (10, 20, 30, 40, 50, 60, 70)]
    first.insert(5, {'mIoU': 30.0, 'aAcc': 70.0, 'step': 50})
    write_run(tmp_path, '20250101_000000', first)
    # killed after iteration 70; resumed from the checkpoint of iteration 50
    write_run(tmp_path, '20250101_010000',
              [train_entry(s, 1.0 - s / 1000) for s in (60, 70, 80)]
              + [{'mIoU': 40.0, 'aAcc': 80.0, 'step': 80}], resumed_from=50)
    log = read_scalars(str(tmp_path))
    assert [Path(f).parts[-3] for f in log.files] == ['20250101_000000', '20250101_010000']
    loss = log.curve('loss')
    assert list(loss) == [10, 20, 30, 40, 50, 60, 70, 80]
    assert loss[50] == pytest.approx(5.0) and loss[60] == pytest.approx(0.94)  # 60: the resumed run
    assert log.curve('mIoU') == {50: 30.0, 80: 40.0}
    final = log.last('mIoU')
    assert (final.step, final.iteration, final['aAcc']) == (80, None, 80.0)
    assert log.last('loss').iteration == 80 and 'iter' not in log.last('loss').values
    with pytest.raises(KeyError, match=r"has no 'bbox_mAP' entries; keys logged: \['aAcc', 'loss'"):
        log.last('bbox_mAP')
    with pytest.raises(KeyError, match=r"has no 'mAcc'; it has \['aAcc', 'mIoU'\]"):
        final['mAcc']

    # a fresh start in the same work dir hides the older runs
    write_run(tmp_path, '20250102_000000', [train_entry(s, 2.0) for s in (10, 20)])
    fresh = read_scalars(str(tmp_path))
    assert list(fresh.curve('loss')) == [10, 20] and len(fresh.files) == 1
    # a run dir or a file is read alone
    only = read_scalars(str(tmp_path / '20250101_010000'))
    assert list(only.curve('loss')) == [60, 70, 80]
    assert read_scalars(only.files[0]).records == only.records


def test_read_scalars_file_lines(tmp_path: Path) -> None:
    entries = [train_entry(1, 3.0), {'knn/top1_layer2': 0.25, 'step': 2},
               {'knn/top1_layer2': 0.5, 'step': 4}, {'knn/top1_layer2': 0.4, 'step': 2}]
    # a rollback logs step 2 again (the later value counts); the last line is cut short
    path = write_run(tmp_path, '20250101_000000', entries, tail='{"loss": 2.')
    log = read_scalars(str(tmp_path))
    assert log.curve('knn/top1_layer2') == {2: 0.4, 4: 0.5}
    assert log.keys() == ['knn/top1_layer2', 'loss', 'lr', 'time']
    assert log.records[0].source == f'{path}:1'
    path.write_text(json.dumps(train_entry(1, 3.0)) + '\nnot json\n')
    with pytest.raises(ValueError, match=f'{path}:2: not a JSON line'):
        read_scalars(str(tmp_path))
    path.write_text('{"loss": 1.0}\n')
    with pytest.raises(ValueError, match=f'{path}:1: expected a JSON object with a "step"'):
        read_scalars(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='no <timestamp>/vis_data/scalars.json under'):
        read_scalars(str(tmp_path / 'empty'))


def test_read_test_metrics(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match='no metrics.json in'):
        experiments.read_test_metrics(str(tmp_path))
    (tmp_path / 'metrics.json').write_text(json.dumps({'accuracy/top1': 81.5, 'note': 'x'}))
    record = experiments.read_test_metrics(str(tmp_path))
    assert dict(record.values) == {'accuracy/top1': 81.5} and record.step is None


# ---------------------------------------------------------------------------- launching
def test_cfg_options_reach_the_tool_as_given() -> None:
    from beitlab.utils.runtime import ConfigOptionsAction
    options = {'model.pretrained': 'checkpoints/beit.pth', 'model.backbone.init_cfg': None,
               'optim_wrapper.optimizer.lr': 1e-3, 'train_cfg.max_iters': 40,
               'train_dataloader.dataset.pipeline': [dict(type='mmcv.Pad', size=(32, 32), pad_val=0),
                                                     dict(type='PackImageInputs')],
               'val_interval': [1, 2], 'flag': True, 'test_cfg': dict(type='TestLoop', fp16=True)}
    words = experiments.cfg_option_words(options)
    parser = argparse.ArgumentParser()
    parser.add_argument('--cfg-options', nargs='+', action=ConfigOptionsAction)
    assert parser.parse_args(['--cfg-options', *words]).cfg_options == options
    for value in ('a b', '12', 'None', 'a,b'):
        with pytest.raises(ValueError, match=f"cfg option name={value!r} would reach tools/train.py"):
            experiments.cfg_option_words({'name': value})


def test_seed_options_and_clashes(tmp_path: Path) -> None:
    assert experiments.seed_options(3) == {'randomness.seed': 3}
    assert experiments.seed_options(3, deterministic=True) == {'randomness.seed': 3,
                                                               'randomness.deterministic': True}
    with pytest.raises(ValueError, match='seed must be a non-negative int'):
        experiments.seed_options(-1)
    with pytest.raises(ValueError, match=r"cfg options \['randomness.seed'\] both set randomness"):
        experiments.train('configs/none.py', str(tmp_path), {'randomness.seed': 1}, seed=2)


def test_a_failed_launch_names_command_status_and_log(tmp_path: Path) -> None:
    with pytest.raises(LaunchError) as err:
        experiments.train('configs/does_not_exist.py', str(tmp_path / 'run'),
                          {'train_cfg.max_iters': 3}, seed=1)
    error = err.value
    assert error.returncode == 1 and error.log_file == str(tmp_path / 'run' / 'train.log')
    text = str(error)
    assert 'tools/train.py configs/does_not_exist.py --work-dir' in text
    assert '--cfg-options train_cfg.max_iters=3 randomness.seed=1' in text
    assert 'exited with 1' in text and str(tmp_path / 'run' / 'train.log') in text
    assert any("config file 'configs/does_not_exist.py' does not exist" in h for h in error.hints)
    with pytest.raises(LaunchError, match='tools/test.py .* exited with 1'):
        experiments.test('tests/data/configs/toy_regression.py', str(tmp_path / 'none.pth'),
                         str(tmp_path / 'test'))


def test_train_runs_the_tool_with_schedule_and_seed(tmp_path: Path) -> None:
    """tools/train.py on the toy config: the options arrive (the run's dumped config), the
    scalars are read back and the final checkpoint found."""
    config = 'tests/data/configs/toy_regression.py'
    schedule = [dict(WARMUP, end=2), dict(COSINE, begin=2, end=4, eta_min=0.0)]
    run = experiments.train(config, str(tmp_path / 'run'),
                            {'train_cfg.max_iters': 4, 'param_scheduler': schedule}, seed=7,
                            threads=1)
    assert run.log_file == str(tmp_path / 'run' / 'train.log')
    assert run.checkpoint().endswith('iter_4.pth')
    log = run.scalars()
    assert list(log.curve('loss')) == [1, 2, 3, 4]
    # the lr of each iteration: mmengine's LinearLR reaches the peak in its last iteration
    # (0.1 x, then 1 x), then the cosine over iterations 2-3 of 4
    assert log.curve('lr') == pytest.approx({1: 0.001, 2: 0.01, 3: 0.01, 4: 0.005})
    dumped = Config.fromfile(next((tmp_path / 'run').glob('*/vis_data/config.py')))
    assert dumped.randomness.seed == 7
    assert [dict(s) for s in dumped.param_scheduler] == schedule


def test_mean_std_text_over_seeds() -> None:
    assert experiments.mean_std_text([]) == 'n/a'
    assert experiments.mean_std_text([3.0]) == '3.00'
    assert experiments.mean_std_text([-1.0, -3.0], signed=True) == '-2.00 ± 1.41'
    assert experiments.mean_std_text([1.0, 3.0], signed=True) == '+2.00 ± 1.41'
    mean, std = experiments.mean_std([1.0])
    assert mean == 1.0 and std != std  # one seed: no spread (NaN)
    with pytest.raises(ValueError, match='at least one value'):
        experiments.mean_std([])
