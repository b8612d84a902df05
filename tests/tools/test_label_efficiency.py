"""label_efficiency.py helpers: class-balanced subsets and the paired-gap report."""
import importlib.util

from tests.tools_helpers import REPO_ROOT

spec = importlib.util.spec_from_file_location(
    'label_efficiency', REPO_ROOT / 'tools/analysis_tools/label_efficiency.py')
le = importlib.util.module_from_spec(spec)
spec.loader.exec_module(le)


def test_balanced_subset_is_balanced_seeded_and_distinct():
    lines = [f'c{i % 10}/{i:05d}.png {i % 10}' for i in range(1000)]
    a = le.balanced_subset(lines, 60, seed=0)
    assert len(a) == 60 and len(set(a)) == 60
    assert all(sum(line.endswith(f' {c}') for line in a) == 6 for c in range(10))
    assert a == le.balanced_subset(lines, 60, seed=0)
    assert a != le.balanced_subset(lines, 60, seed=1)
    assert le.balanced_subset(lines, 5000, seed=0) == lines


def test_report_pairs_gaps_by_seed(tmp_path):
    runs = [dict(init=i, size=600, iters=200, batch_size=32, seed=s, top1=t, tag='x')
            for i, s, t in (('pretrained', 0, 40.0), ('pretrained', 1, 44.0),
                            ('scratch', 0, 30.0), ('scratch', 1, 38.0),
                            ('pretrained', 0, 99.0))]
    runs[-1]['tag'] = 'other'  # another checkpoint: not in this report
    table = le.write_report(runs, str(tmp_path / 'r'), tag='x')
    row = table.splitlines()[2]
    # gaps 10 and 6 -> mean 8, sample std 2.83
    assert '42.00 ± 2.83' in row and '34.00 ± 5.66' in row and '8.00 ± 2.83' in row
    assert '+6.00 / +10.00' in row
    assert (tmp_path / 'r.md').exists()


def test_report_names_each_inits_seed_count_when_they_differ(tmp_path):
    runs = [dict(init=i, size=600, iters=200, batch_size=32, seed=s, top1=t, tag='x')
            for i, s, t in (('pretrained', 0, 40.0), ('pretrained', 1, 44.0),
                            ('scratch', 0, 30.0), ('pretrained', 0, 50.0))]
    runs[-1].update(size=6000)  # a row only one init ran
    rows = le.write_report(runs, str(tmp_path / 'r'), tag='x').splitlines()[2:]
    assert rows[0].split(' | ')[2] == '2 / 1'  # means over 2 and 1 seeds, the gap over seed 0
    assert '+10.00 / +10.00' in rows[0]
    assert rows[1].split(' | ')[2] == '1'


def test_idx_data_picks_the_same_images_as_the_png_folder_and_reaches_the_tool(tmp_path):
    """--data idx: the subset of a seed is the PNG folder's (same order and labels), passed as
    FashionMNISTDataset indices, with all test images; the options survive the command line."""
    import argparse

    from mmengine.config import Config

    from beitlab.datasets.fashion_mnist_files import load_fashion_mnist
    from beitlab.utils.experiments import cfg_option_words
    from tests.tools_helpers import FASHION_MNIST_SUBSET
    args = argparse.Namespace(data='idx', fashion_mnist_root=str(FASHION_MNIST_SUBSET),
                              data_root='unused', checkpoint='unused.pth', warmup_frac=0.1,
                              batch_size=8, lr=1e-3, recipe='light', scratch_layer_decay=1.0,
                              bf16=False, weight_decay=0.05, val_interval=0,
                              scratch_lr=None, scratch_weight_decay=None, eval='test')
    lines = le.training_lines(args)
    _, labels = load_fashion_mnist(str(FASHION_MNIST_SUBSET), 'train')
    assert lines == [f'{i} {int(c)}' for i, c in enumerate(labels)]
    # the folder's list names file i of class c as '<class>/<i:05d>.png c': same picks
    folder_lines = [f'class{c}/{i:05d}.png {c}' for i, c in enumerate(labels)]
    picked = le.balanced_subset(lines, 50, seed=3)
    assert [int(x.split()[0]) for x in picked] == \
        [int(x.split('/')[1][:5]) for x in le.balanced_subset(folder_lines, 50, seed=3)]

    cfg = Config.fromfile(REPO_ROOT / le.DEFAULT_CONFIG)
    indices = [int(x.split()[0]) for x in picked]
    options = le.run_options(args, cfg, 'scratch', 20, le.Subset('unused.txt', indices))
    train, test = options['train_dataloader.dataset'], options['test_dataloader.dataset']
    assert train['type'] == test['type'] == 'FashionMNISTDataset' and train['_delete_']
    assert train['indices'] == indices and (train['split'], test['split']) == ('train', 'test')
    assert train['pipeline'] == le.LIGHT_TRAIN_PIPELINE
    cfg.merge_from_dict(options)
    assert 'ann_file' not in cfg.train_dataloader.dataset
    assert len(cfg_option_words(options)) == len(options)


def test_run_key_names_only_non_default_optimiser_settings():
    import argparse
    args = argparse.Namespace(tag='ep8', recipe='light', lr=le.DEFAULT_LR,
                              weight_decay=le.DEFAULT_WEIGHT_DECAY, scratch_lr=None,
                              scratch_weight_decay=None, eval='test')
    # the keys of runs with the default settings stay as they were recorded
    assert le.run_key(args, 'pretrained', 600, 1, 500) == 'light_pretrained-ep8_n600_it500_s1'
    assert le.run_key(args, 'scratch', 600, 1, 500) == 'light_scratch_n600_it500_s1'
    args.lr, args.weight_decay = 3e-3, 0.3
    assert le.run_key(args, 'scratch', 600, 1, 500) == 'light_scratch_n600_it500_lr0.003_wd0.3_s1'
    # random init may get its own settings; held-out evaluation is part of the name
    args.scratch_lr, args.eval = 1e-3, 'heldout'
    assert le.run_key(args, 'scratch', 600, 1, 500) == 'light_scratch_n600_it500_wd0.3_heldout_s1'
    assert le.run_key(args, 'pretrained', 600, 1, 500) == \
        'light_pretrained-ep8_n600_it500_lr0.003_wd0.3_heldout_s1'
    # the report keeps only the runs made with this invocation's settings
    assert le.same_settings(args, dict(init='scratch', lr=1e-3, weight_decay=0.3, eval='heldout'))
    assert not le.same_settings(args, dict(init='scratch', lr=3e-3, weight_decay=0.3,
                                           eval='heldout'))
    assert not le.same_settings(args, dict(init='pretrained'))   # old record: defaults, test


def test_heldout_images_are_outside_the_subset_and_replace_the_test_set(tmp_path):
    """--eval heldout: the evaluation images are class-balanced training images the run
    does not train on; the test images are not touched."""
    import argparse

    from mmengine.config import Config
    args = argparse.Namespace(data='idx', fashion_mnist_root='unused', data_root='unused',
                              checkpoint='unused.pth', warmup_frac=0.1, batch_size=8,
                              lr=1e-3, weight_decay=0.05, scratch_lr=None,
                              scratch_weight_decay=None, recipe='light',
                              scratch_layer_decay=1.0, bf16=False, val_interval=0,
                              eval='heldout', heldout_size=200)
    lines = [f'{i} {i % 10}' for i in range(1000)]
    chosen = le.balanced_subset(lines, 100, seed=1)
    subset = le.make_subset(args, lines, chosen, str(tmp_path / 'train_n100_s1.txt'), seed=1)
    assert len(subset.heldout_indices) == 200 and not set(subset.heldout_indices) & set(
        subset.indices)
    assert [int(i) % 10 for i in subset.heldout_indices].count(3) == 20     # balanced
    assert (tmp_path / 'train_n100_s1_heldout200.txt').read_text().count('\n') == 200
    cfg = Config.fromfile(REPO_ROOT / le.DEFAULT_CONFIG)
    test = le.run_options(args, cfg, 'scratch', 20, subset)['test_dataloader.dataset']
    assert test['split'] == 'train' and test['indices'] == subset.heldout_indices
    args.heldout_size = 901
    try:
        le.make_subset(args, lines, chosen, str(tmp_path / 'x.txt'), seed=1)
    except ValueError as e:
        assert '901' in str(e) and '900' in str(e)
    else:
        raise AssertionError('a held-out set larger than what is left must fail')


def test_sweep_report_marks_the_best_settings_of_each_init(tmp_path):
    runs = [dict(init=i, size=600, iters=500, lr=lr, weight_decay=0.05, seed=s, top1=t,
                 eval='heldout', tag='x')
            for i, lr, s, t in (('scratch', 1e-3, 0, 50.0), ('scratch', 1e-3, 1, 54.0),
                                ('scratch', 3e-3, 0, 60.0), ('pretrained', 1e-3, 0, 80.0),
                                ('pretrained', 3e-3, 0, 78.0))]
    runs.append(dict(runs[0], eval='test', top1=99.0))          # a test-set run: not here
    table = le.write_sweep_report(runs, str(tmp_path / 's'), tag='x').splitlines()
    assert len(table) == 2 + 4
    assert '| scratch | 600 | 500 | 0.001 | 0.05 | 2 | 52.00 ± 2.83 |' in table
    assert '| scratch | 600 | 500 | 0.003 | 0.05 | 1 | **60.00** |' in table
    assert '| pretrained | 600 | 500 | 0.001 | 0.05 | 1 | **80.00** |' in table


def test_val_interval_evaluates_the_test_images_during_training(tmp_path):
    """--val-interval N: the validation loop runs every N steps on the very dataset the final
    test uses (in bf16 when the test is); 0 switches validation off."""
    import argparse

    from mmengine.config import Config

    from tests.tools_helpers import FASHION_MNIST_SUBSET
    args = argparse.Namespace(data='idx', fashion_mnist_root=str(FASHION_MNIST_SUBSET),
                              data_root='unused', checkpoint='unused.pth', warmup_frac=0.1,
                              batch_size=8, lr=1e-3, weight_decay=0.05, recipe='light',
                              scratch_layer_decay=1.0, bf16=True, val_interval=0,
                              scratch_lr=None, scratch_weight_decay=None, eval='test')
    cfg = Config.fromfile(REPO_ROOT / le.DEFAULT_CONFIG)
    subset = le.Subset('unused.txt', [0, 1, 2])
    off = le.run_options(args, cfg, 'scratch', 20, subset)
    assert off['val_dataloader'] is None and off['train_cfg.val_interval'] == 21
    args.val_interval = 5
    on = le.run_options(args, cfg, 'scratch', 20, subset)
    assert on['train_cfg.val_interval'] == 5 and on['val_cfg'] == dict(type='ValLoop', fp16=True)
    assert on['val_dataloader.dataset'] == on['test_dataloader.dataset']
    assert on['default_hooks.logger.log_metric_by_epoch'] is False   # step = iteration
    assert on['optim_wrapper.optimizer.weight_decay'] == 0.05
    cfg.merge_from_dict(on)
    assert cfg.val_dataloader.dataset.type == 'FashionMNISTDataset'
    assert cfg.val_dataloader.dataset.split == 'test' and cfg.val_evaluator.type == 'Accuracy'


def test_length_report_averages_only_the_seeds_every_row_has(tmp_path):
    """One row per pre-training tag, random init first; a column keeps the seeds all its rows
    ran (ep8's seed 1 is left out, ep1 has none), and the gains are paired by seed."""
    import pytest

    def run(init, tag, seed, top1, size=600):
        return dict(init=init, tag=tag, size=size, iters=500, seed=seed, top1=top1)

    runs = [run('scratch', 'ep8', 0, 40.0), run('scratch', 'ep8', 1, 50.0),
            run('pretrained', 'ep1', 0, 70.0),
            run('pretrained', 'ep8', 0, 80.0), run('pretrained', 'ep8', 1, 99.0),
            run('pretrained', 'ep8', 0, 90.0, size=6000)]  # no scratch / ep1: no column
    table = le.write_length_report(runs, str(tmp_path / 'len'), ['ep1', 'ep8'])
    head, _, scratch, ep1, ep8 = table.splitlines()
    assert '600 labels, 500 steps, seeds 0 |' in head and '6000' not in head
    assert scratch == '| none (random init) | 40.00 |'
    assert ep1 == '| ep1 | 70.00 (+30.00) |'
    assert ep8 == '| ep8 | 80.00 (+40.00) |'
    assert (tmp_path / 'len.md').read_text().endswith(table + '\n')
    with pytest.raises(ValueError, match="every tag in \\['ep2'\\]"):
        le.write_length_report(runs, str(tmp_path / 'none'), ['ep2'])
