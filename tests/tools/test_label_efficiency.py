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
                              bf16=False, weight_decay=0.05, val_interval=0)
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
                              weight_decay=le.DEFAULT_WEIGHT_DECAY)
    # the keys of runs with the default settings stay as they were recorded
    assert le.run_key(args, 'pretrained', 600, 1, 500) == 'light_pretrained-ep8_n600_it500_s1'
    assert le.run_key(args, 'scratch', 600, 1, 500) == 'light_scratch_n600_it500_s1'
    args.lr, args.weight_decay = 3e-3, 0.3
    assert le.run_key(args, 'scratch', 600, 1, 500) == 'light_scratch_n600_it500_lr0.003_wd0.3_s1'


def test_val_interval_evaluates_the_test_images_during_training(tmp_path):
    """--val-interval N: the validation loop runs every N steps on the very dataset the final
    test uses (in bf16 when the test is); 0 switches validation off."""
    import argparse

    from mmengine.config import Config

    from tests.tools_helpers import FASHION_MNIST_SUBSET
    args = argparse.Namespace(data='idx', fashion_mnist_root=str(FASHION_MNIST_SUBSET),
                              data_root='unused', checkpoint='unused.pth', warmup_frac=0.1,
                              batch_size=8, lr=1e-3, weight_decay=0.05, recipe='light',
                              scratch_layer_decay=1.0, bf16=True, val_interval=0)
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
