"""What the experiment scripts of ``tools/analysis_tools/`` share: launching
``tools/train.py`` / ``tools/test.py`` (:func:`train`, :func:`test`), reading what a run
logged (:func:`read_scalars`, :func:`read_test_metrics`), setting a schedule's length by
scheduler type (:func:`schedule_options`), seeds (:func:`seed_options`), class-balanced
label subsets (:func:`balanced_subset`), summaries over seeds (:func:`mean_std`,
:func:`mean_std_text`) and the pre-trained-against-random-init table and curves over seeds
(:func:`seed_summary`, :func:`draw_seed_curves`). Each script keeps only its experimental design.
"""
from .launch import LaunchError, RunResult, cfg_option_words, final_checkpoint, seed_options, test, train
from .scalars import (
    MetricRecord,
    ScalarLog,
    find_run_dirs,
    read_scalars,
    read_scalars_file,
    read_test_metrics,
)
from .schedule import ScheduleLayoutError, schedule_options
from .seeded import draw_seed_curves, seed_summary
from .stats import mean_std, mean_std_text
from .subsets import balanced_subset

__all__ = ['LaunchError', 'MetricRecord', 'RunResult', 'ScalarLog', 'ScheduleLayoutError',
           'balanced_subset', 'cfg_option_words', 'draw_seed_curves', 'final_checkpoint',
           'find_run_dirs', 'mean_std', 'mean_std_text', 'read_scalars', 'read_scalars_file',
           'read_test_metrics', 'schedule_options', 'seed_options', 'seed_summary', 'test', 'train']
