#!/usr/bin/env bash
# The test suite, from a bare machine: installs what is missing (tools/install.sh, only
# when .venv is absent or incomplete), runs the linter (ruff, settings in pyproject.toml),
# then pytest on tests/. Extra arguments go to pytest:
#   bash tools/run_tests.sh                      # everything
#   bash tools/run_tests.sh tests/models -x -q   # one folder, stop at the first failure
# The tests read Fashion-MNIST from the subset in tests/data/fashion_mnist only; they pass
# with BEITLAB_FASHION_MNIST_ROOT pointing at an empty folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. "$ROOT/tools/install_stamp.sh"
ensure_installed

echo ">>> ruff check beitlab tools tests projects configs"
.venv/bin/ruff check beitlab tools tests projects configs

echo ">>> pytest"
# Without a path pytest collects tests/ (testpaths in pyproject.toml); it exits 5 when it
# collects nothing, so an empty run fails too. -rfEs lists every failure, error and skip
# (with its reason) at the end.
exec .venv/bin/python -m pytest -q -rfEs -p no:cacheprovider "$@"
