#!/usr/bin/env bash
# The same code path on a CUDA GPU: data, tutorial-settings training, evaluation, batch scaling,
# and the library's tests. Usage: bench/gpu_check.sh DATA_DIR OUT_DIR
# (DATA_DIR holds e.g. the offline cifar10-jpg.tar.gz; results land in OUT_DIR).
set -uo pipefail
DATA=${1:?data folder}
OUT=${2:?output folder}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CIFAR_RUNS_DIR="$OUT/runs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision',
torchvision.__version__, 'cuda', torch.cuda.is_available())"
python3 -m cifar_core data --data-dir "$DATA"
echo "== tutorial settings on cuda (batch 4, 2 epochs, seed 0)"
python3 -m cifar_core train --data-dir "$DATA" --device cuda --seed 0 --json \
    --out "$OUT/cifar_net.pth" > "$OUT/train_b4.jsonl"
tail -n 1 "$OUT/train_b4.jsonl"
echo "== evaluate on cuda"
python3 -m cifar_core evaluate "$OUT/cifar_net.pth" --data-dir "$DATA" --device cuda --json \
    | tee "$OUT/eval.json" | cut -c1-200
echo "== batch scaling on cuda (1 epoch each)"
for bs in 4 32 128 512; do
    python3 -m cifar_core train --data-dir "$DATA" --device cuda --seed 0 --epochs 1 \
        --batch-size "$bs" --log-every 100000 --json --out "$OUT/b$bs.pth" | tail -n 1 \
        | python3 -c "import json,sys; s=json.loads(sys.stdin.read()); print('batch $bs:',
round(s['images_per_s']), 'images/s,', round(s['accuracy'], 1), '% after 1 epoch')"
done
echo "== a class-balanced subset on cuda (10,000 images, 1 epoch)"
python3 -m cifar_core train --data-dir "$DATA" --device cuda --seed 0 --epochs 1 \
    --train-size 10000 --batch-size 32 --log-every 100000 --json --out "$OUT/sub.pth" | tail -n 1 \
    | cut -c1-300
echo "== library tests on the GPU machine (device auto = cuda)"
python3 -m pytest -q -p no:cacheprovider tests --ignore=tests/test_app.py \
    --ignore=tests/test_browser.py 2>&1 | tail -n 25
