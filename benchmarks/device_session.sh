#!/usr/bin/env bash
# One call on a lent GPU machine (at most 10 minutes): go on with the token-space campaign
# (issue 40: encoder and attention decoder trained together with a rate term, from the
# shipped v4) under CUDA, export it, then check the CUDA encode and decode path against the CPU.
#
# The device image has torch, numpy, pillow, safetensors, typer and tqdm, but not
# constriction and no network, so carry its wheel. Once, here, in the repo root:
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl constriction==0.5.0
# Then: run(command="bash benchmarks/device_session.sh 6", carry=[".whl"], timeout_s=600)
# (add "runs/gpu" to carry to resume an earlier device run from its checkpoint).
# The data sets are not in the repo: copy a subset into an ignored folder and carry it,
# or point DATA at one (default ../shared/data/train, which does not travel).
set -euo pipefail
MINUTES=${1:-6}
OUT=${OUT:-/tmp/out}
DATA=${DATA:-../shared/data/train}
mkdir -p "$OUT" runs/gpu
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="$PWD:/tmp/site" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, vtcodec; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
RESUME=()
[ -f runs/gpu/last.ckpt ] && RESUME=(--resume)
if [ -d "$DATA" ]; then
  python3 -m vtcodec train-decoder "$DATA"/* --init vtcodec/weights/v4.safetensors --init-decoder attention \
    --config configs/campaign-v4.json --name attention --out runs/gpu --minutes "$MINUTES" "${RESUME[@]}" \
    2>&1 | grep -v "s/s\]" | tail -40
  cp runs/gpu/log.jsonl runs/gpu/decoder.safetensors "$OUT"/
  # the new token space without decoder tensors (11 MB; the full export is over the 16 MiB a file may bring back)
  python3 -c "import sys, vtcodec; from vtcodec.zoo import serialize_model as cut; m = vtcodec.load_model(sys.argv[1]); \
open(sys.argv[2], 'wb').write(cut(m.model, m.prior, m.context, token_space_of=m.model_id))" \
    runs/gpu/model.safetensors "$OUT/token-space.safetensors"
else
  echo "no training data at $DATA: skipping the training run"
fi
python3 benchmarks/cuda_check.py --images samples --tokens 64 | tee "$OUT/cuda_check.txt"
python3 benchmarks/cuda_check.py --images samples --tokens 64 --decoder perceptual | tee -a "$OUT/cuda_check.txt"
