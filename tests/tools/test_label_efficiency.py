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
