"""The weights shipped in zoo/ (docs/model_zoo.md): small files with their recorded SHA-256,
each loading strictly into its config and reproducing the metric recorded for it on the
shipped Fashion-MNIST subset (tools/misc/zoo_check.py)."""
import importlib.util
import os.path as osp

import pytest

from tests.tools_helpers import REPO_ROOT

_spec = importlib.util.spec_from_file_location('zoo_check', REPO_ROOT / 'tools' / 'misc' / 'zoo_check.py')
zoo_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(zoo_check)

ENTRIES = zoo_check.read_index()
MIB = 2 ** 20


def test_zoo_files_are_small_and_match_their_digests() -> None:
    assert ENTRIES, 'zoo/zoo.json lists no weights'
    total = 0
    for entry in ENTRIES:
        path = osp.join(REPO_ROOT, 'zoo', entry['file'])
        size = osp.getsize(path)
        assert size < 20 * MIB, f'{entry["file"]} is {size / MIB:.1f} MiB'
        total += size
        assert zoo_check.sha256(path) == entry['sha256'], entry['file']
        assert osp.isfile(osp.join(REPO_ROOT, entry['config'])), entry['config']
        assert entry['kind'] in zoo_check.KINDS
    assert total < 60 * MIB


@pytest.mark.parametrize('entry', ENTRIES, ids=[e['file'] for e in ENTRIES])
def test_zoo_entry_loads_strictly_and_reproduces_its_subset_metric(entry: dict) -> None:
    metric = zoo_check.subset_metric(entry)   # strict loading: a differing tensor raises
    assert metric.keys() == entry['subset_metric'].keys()
    for key, recorded in entry['subset_metric'].items():
        assert abs(metric[key] - recorded) <= 0.5, (key, metric[key], recorded)
