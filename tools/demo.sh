#!/usr/bin/env bash
# The main job end to end on real Fashion-MNIST images, on CPU in minutes:
#   1. convert the Debian package's Fashion-MNIST files to an ImageNet-style folder,
#   2. Phase 1: train the dVAE tokenizer (512 codes, 8 x 8 tokens) and test it,
#   3. Phase 2: BEiT masked image modeling with that frozen tokenizer; the log shows
#      the loss falling and mlm_acc rising,
#   4. a picture of the mask and of the masked tokens predicted right.
# FMNIST_SRC: folder with the four *-ubyte.gz files (default: the Debian package's).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || { echo "demo.sh: run 'bash tools/install.sh' first" >&2; exit 1; }
SRC="${FMNIST_SRC:-/usr/share/datasets/fashion-mnist}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

if [ ! -f data/fashion_mnist/meta/val.txt ]; then
  if [ ! -f "$SRC/train-images-idx3-ubyte.gz" ]; then
    echo "demo.sh: no Fashion-MNIST files in $SRC. Install them with" >&2
    echo "  sudo apt-get install dataset-fashion-mnist" >&2
    echo "or set FMNIST_SRC to a folder holding the four *-ubyte.gz files." >&2
    exit 1
  fi
  "$PY" tools/dataset_converters/fashion_mnist.py --src "$SRC" --out data/fashion_mnist
fi

mkdir -p checkpoints
"$PY" tools/train.py configs/dvae/dvae_fashion-mnist.py --work-dir work_dirs/demo/dvae
"$PY" tools/model_converters/extract_tokenizer.py work_dirs/demo/dvae/iter_700.pth \
    checkpoints/dvae_fashion-mnist.pth --config configs/dvae/dvae_fashion-mnist.py
"$PY" tools/test.py configs/dvae/dvae_fashion-mnist.py checkpoints/dvae_fashion-mnist.pth \
    --work-dir work_dirs/demo/dvae_test

"$PY" tools/train.py configs/beit/beit_vit-fmnist_fashion-mnist.py --work-dir work_dirs/demo/beit
"$PY" tools/model_converters/publish_mim_checkpoint.py work_dirs/demo/beit/iter_200.pth \
    checkpoints/beit_fashion-mnist.pth
"$PY" tools/visualization/vis_mim.py configs/beit/beit_vit-fmnist_fashion-mnist.py \
    checkpoints/beit_fashion-mnist.pth --out work_dirs/demo/beit_mim.png \
    --num-images 8 --ann-file meta/val.txt --img-prefix val
grep -h "Iter(train)" work_dirs/demo/beit/*/*.log | sed -n '1p;5p;10p;15p;20p'
echo "demo.sh: done; tokenizer in checkpoints/dvae_fashion-mnist.pth, BEiT in checkpoints/beit_fashion-mnist.pth, picture work_dirs/demo/beit_mim.png"
