#!/usr/bin/env bash
# Install beitlab and its pinned OpenMMLab stack into .venv at the repository root.
#
# Idempotent: rerunning it reuses .venv and skips what is already installed.
#
# Variables:
#   PYTHON        interpreter used to create .venv (default: python3.11, else python3)
#   TORCH_INDEX   extra index URL for a CUDA torch build, e.g.
#                 https://download.pytorch.org/whl/cu124 (default: the CPU build)
#   MMCV_WHEELS   folder searched first for a prebuilt mmcv 2.1.0 wheel (then .wheels/,
#                 where a source build leaves its wheel); without one, mmcv is built
#                 from source (about 18 minutes on 2 cores)
#   MAX_JOBS      compile jobs when mmcv must be built from source (default: nproc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
TORCH_VERSION=2.13.0
MMCV_VERSION=2.1.0

die() { echo "install.sh: ERROR: $*" >&2; exit 1; }
# shellcheck source=tools/install_stamp.sh
. "$ROOT/tools/install_stamp.sh"

PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi
command -v "$PYTHON" >/dev/null 2>&1 || die "no Python interpreter '$PYTHON'. Install Python 3.11 (e.g. 'apt-get install python3.11 python3.11-venv python3.11-dev') or set PYTHON=/path/to/python3.11."
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[ "$PYVER" = "3.11" ] || die "Python 3.11 is required (the pinned torch $TORCH_VERSION and mmcv $MMCV_VERSION wheels are cp311), found $PYVER at $(command -v "$PYTHON"). Install python3.11 or set PYTHON."

if [ ! -x "$VENV/bin/python" ]; then
  echo ">>> creating $VENV"
  "$PYTHON" -m venv "$VENV" || die "could not create a venv; install the venv module (e.g. 'apt-get install python3.11-venv')."
fi
PY="$VENV/bin/python"
# mmengine 0.10.7 and mmcv's setup.py import pkg_resources (removed in setuptools 82);
# torch itself requires setuptools, so every install below carries this constraint.
CONSTRAINTS="$VENV/beitlab-constraints.txt"
printf 'setuptools<82\n' > "$CONSTRAINTS"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

"${PIP[@]}" -q "setuptools<82" wheel

echo ">>> torch $TORCH_VERSION"
if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  if [ -n "${TORCH_INDEX:-}" ]; then
    "${PIP[@]}" "torch==$TORCH_VERSION" --extra-index-url "$TORCH_INDEX"
  else
    "${PIP[@]}" "torch==$TORCH_VERSION"
  fi
fi

echo ">>> mmengine, numpy, pycocotools and the undeclared needs of mmseg"
"${PIP[@]}" -q "mmengine==0.10.7" "numpy>=1.24" "pycocotools==2.0.11" ftfy regex "opencv-python-headless" "pillow" "scipy" "tqdm" "terminaltables" "shapely" "prettytable" "matplotlib"

have_mmcv_ops() { "$PY" -c "import mmcv, sys; assert mmcv.__version__ == '$MMCV_VERSION'; import mmcv.ops; from mmcv.ops import RoIAlign, nms" >/dev/null 2>&1; }

if ! have_mmcv_ops; then
  echo ">>> mmcv $MMCV_VERSION with compiled ops"
  FIND=()
  for d in "${MMCV_WHEELS:-}" "$ROOT/.wheels"; do
    [ -n "$d" ] && [ -d "$d" ] && FIND+=(--find-links "$d")
  done
  # A wheel in a local folder (or one built by an earlier run into .wheels/) is reused as is.
  if ! "${PIP[@]}" --no-index "${FIND[@]}" --force-reinstall --no-deps "mmcv==$MMCV_VERSION" 2>/dev/null || ! have_mmcv_ops; then
    echo ">>> no usable prebuilt mmcv wheel; building from source (about 18 minutes on 2 cores)"
    command -v gcc >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || die "building mmcv needs gcc and g++ (e.g. 'apt-get install build-essential')."
    "$PY" -c "import sysconfig, os, sys; sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')) else 1)" || die "building mmcv needs the Python headers (e.g. 'apt-get install python3.11-dev')."
    "${PIP[@]}" -q ninja
    SRC="$(mktemp -d)"
    # --no-build-isolation here too: mmcv's setup.py needs pkg_resources (setuptools<82) already in .venv.
    "$PY" -m pip download --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$SRC"
    mkdir -p "$ROOT/.wheels"
    # --no-build-isolation: otherwise the build cannot see torch and silently drops the ops.
    MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" "$PY" -m pip wheel --no-deps --no-build-isolation -w "$ROOT/.wheels" "$SRC"/mmcv-$MMCV_VERSION.tar.gz
    "${PIP[@]}" --no-deps --force-reinstall "$ROOT"/.wheels/mmcv-$MMCV_VERSION-*.whl
    rm -rf "$SRC"
  fi
fi
# mmcv's own runtime needs (installed with --no-deps above).
"${PIP[@]}" -q addict packaging "pyyaml" yapf

echo ">>> mmdet 3.3.0 and mmsegmentation 1.2.2"
"${PIP[@]}" -q "mmdet==3.3.0" "mmsegmentation==1.2.2"

echo ">>> beitlab (editable, with test extras)"
"${PIP[@]}" -q -e ".[tests]"

echo ">>> checking the stack"
"$PY" - <<'PYCHECK' || die "the stack does not import: mmcv.ops must load (see the traceback above)."
import pkg_resources  # mmengine needs it (setuptools<82)
import torch, mmengine, mmcv, mmdet, mmseg
import mmcv.ops
from mmcv.ops import RoIAlign, nms
import beitlab
print(f"torch {torch.__version__}, mmengine {mmengine.__version__}, mmcv {mmcv.__version__} (ops ok), "
      f"mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, beitlab {beitlab.__version__}")
PYCHECK
# tools/run_tests.sh and tools/demo.sh rerun this script when the stamp does not match.
install_stamp > "$VENV/.beitlab-install-stamp"
echo ">>> done. Use $VENV/bin/python"
