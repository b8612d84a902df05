#!/usr/bin/env bash
# The main job end to end on real Fashion-MNIST images, on CPU in minutes, from a bare
# machine:
#   0. installs what is missing (tools/install.sh, only when .venv is absent or incomplete)
#      and gets Fashion-MNIST (the Debian package dataset-fashion-mnist through apt-get),
#   1. converts the four idx files to an ImageNet-style folder (data/fashion_mnist),
#   2. Phase 1: trains the dVAE tokenizer (512 codes, 8 x 8 tokens) and tests it,
#   3. Phase 2: BEiT masked image modeling with that frozen tokenizer; the log shows
#      the loss falling and mlm_acc rising,
#   4. draws the mask and the masked tokens predicted right (work_dirs/demo/beit_mim.png).
# BEITLAB_FASHION_MNIST_ROOT: a folder with the four *-ubyte.gz files, used instead of the
# Debian package (default: /usr/share/datasets/fashion-mnist).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. "$ROOT/tools/install_stamp.sh"
ensure_installed
PY="$ROOT/.venv/bin/python"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
DEBIAN_FMNIST=/usr/share/datasets/fashion-mnist
SRC="${BEITLAB_FASHION_MNIST_ROOT:-$DEBIAN_FMNIST}"

have_fmnist() {
  for f in train-images-idx3 train-labels-idx1 t10k-images-idx3 t10k-labels-idx1; do
    [ -f "$SRC/$f-ubyte.gz" ] || [ -f "$SRC/$f-ubyte" ] || return 1
  done
}

install_fmnist_package() {
  # apt-get as root, or through sudo without a password prompt; a fresh machine may have
  # no package lists yet, hence the update on a first failure.
  local apt=(apt-get)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || return 1
    apt=(sudo -n apt-get)
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  echo ">>> installing Fashion-MNIST: ${apt[*]} install -y dataset-fashion-mnist"
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q dataset-fashion-mnist \
    || { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update -q \
         && DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -q dataset-fashion-mnist; }
}

if [ ! -f data/fashion_mnist/meta/val.txt ]; then
  if ! have_fmnist; then
    if [ -n "${BEITLAB_FASHION_MNIST_ROOT:-}" ] || ! install_fmnist_package >&2 || ! have_fmnist; then
      echo "demo.sh: error: no Fashion-MNIST files in $SRC (expected {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz)." >&2
      echo "  Install them with 'sudo apt-get install dataset-fashion-mnist' (Debian/Ubuntu), or download the four" >&2
      echo "  files from github.com/zalandoresearch/fashion-mnist and run: BEITLAB_FASHION_MNIST_ROOT=<folder> bash tools/demo.sh" >&2
      exit 1
    fi
  fi
  # --force: a conversion interrupted earlier left a partial folder without meta/val.txt
  "$PY" tools/dataset_converters/fashion_mnist.py --src "$SRC" --out data/fashion_mnist --force
fi

mkdir -p checkpoints
"$PY" tools/train.py configs/dvae/dvae_fashion-mnist.py --work-dir work_dirs/demo/dvae
# --force: a rerun of the demo replaces the checkpoints it made before
"$PY" tools/model_converters/extract_tokenizer.py work_dirs/demo/dvae/iter_700.pth \
    checkpoints/dvae_fashion-mnist.pth --force --config configs/dvae/dvae_fashion-mnist.py
"$PY" tools/test.py configs/dvae/dvae_fashion-mnist.py checkpoints/dvae_fashion-mnist.pth \
    --work-dir work_dirs/demo/dvae_test

"$PY" tools/train.py configs/beit/beit_vit-fmnist_fashion-mnist.py --work-dir work_dirs/demo/beit
"$PY" tools/model_converters/publish_mim_checkpoint.py work_dirs/demo/beit/iter_200.pth \
    checkpoints/beit_fashion-mnist.pth --force
"$PY" tools/visualization/vis_mim.py configs/beit/beit_vit-fmnist_fashion-mnist.py \
    checkpoints/beit_fashion-mnist.pth --out work_dirs/demo/beit_mim.png \
    --num-images 8 --cfg-options train_dataloader.dataset.split=test
# the newest run's log (a rerun adds a new timestamped folder)
LOG="$(ls -t work_dirs/demo/beit/*/*.log | head -n 1)"
grep -h "Iter(train)" "$LOG" | sed -n '1p;5p;10p;15p;20p'
echo "demo.sh: done; tokenizer in checkpoints/dvae_fashion-mnist.pth, BEiT in checkpoints/beit_fashion-mnist.pth, picture work_dirs/demo/beit_mim.png"
