#!/usr/bin/env bash
# Fixed-budget capacity probes of the decoder (issue 18): each grows the shipped grid decoder
# function-preservingly (configs/probe-*.json) and trains it for the same wall time, encoder frozen.
#
#   bash benchmarks/probes/decoder_probes.sh [MINUTES] [PROBE...]     # default 30, deeper wider attention
#
# Then score them on held-out files at equal bytes:
#   python benchmarks/decoder_eval.py --decoders tiled grid runs/probe-*/decoder.safetensors --json ...
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
shift || true
probes=("${@:-deeper wider attention}")
data=../shared/data/train
for probe in ${probes[*]}; do
  vtcodec train-decoder "$data/bsds500/train" "$data/bsds500/test" "$data/imagenet-sample" \
    --val "$data/bsds500/val" --init vtcodec/weights/v3.safetensors --init-decoder grid \
    --config "configs/probe-$probe.json" --out "runs/probe-$probe" --minutes "$minutes" --name "grid-$probe"
done
