"""Training: tokenizers (``vtcodec train``) and decoders of a fixed token space (``vtcodec train-decoder``).

- ``config``: the runs' settings, read from JSON configs (``configs/``);
- ``schedule``: learning rate and tail-token drop lengths;
- ``losses``: reconstruction losses and PSNR;
- ``warm_start``: starting from a model file or a registered decoder;
- ``tokenizer`` and ``decoder``: the two training loops (checkpoints, resume; DDP under torchrun);
- ``export``: checkpoints, model files with fitted priors, decoder files;
- ``run``: the two commands as functions.

``python -m vtcodec.training ARGS`` is ``vtcodec train ARGS`` (for ``torchrun -m``).
"""

from vtcodec.training.config import DecoderTrainConfig, TrainConfig
from vtcodec.training.run import run_decoder, run_tokenizer

__all__ = ["DecoderTrainConfig", "TrainConfig", "run_decoder", "run_tokenizer"]
