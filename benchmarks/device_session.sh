#!/usr/bin/env bash
# One call on a lent GPU machine (at most 10 minutes): train the whole-grid decoder
# under CUDA, export it, then check the CUDA encode/decode path against the CPU.
#   run: bash benchmarks/device_session.sh [MINUTES]      (files come back under $OUT)
# Carry runs/gpu/last.ckpt to resume an earlier device run; else it warm-starts
# from the shipped model's decoder (or the shipped grid decoder when there is one).
set -euo pipefail
MINUTES=${1:-6}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT" runs/gpu
python -m pip install --quiet torch==2.13.0 2>/dev/null || python -m pip install --quiet torch
python -m pip install --quiet -e ".[dev]"
D=../shared/data/train
RESUME=()
[ -f runs/gpu/last.ckpt ] && RESUME=(--resume)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
vtcodec train-decoder "$D/bsds500/train" "$D/bsds500/test" "$D/imagenet-sample" --val "$D/bsds500/val" \
  --init vtcodec/weights/default.safetensors --config configs/dec1.json --out runs/gpu \
  --minutes "$MINUTES" "${RESUME[@]}" 2>&1 | grep -v "s/s\]" | tail -40
cp runs/gpu/log.jsonl runs/gpu/decoder.safetensors "$OUT"/
python benchmarks/cuda_check.py --images samples --tokens 64 | tee "$OUT/cuda_check.txt"
python benchmarks/cuda_check.py --images samples --tokens 64 --decoder runs/gpu/decoder.safetensors \
  | tee -a "$OUT/cuda_check.txt"
