"""``python -m vtcodec.training ARGS`` runs ``vtcodec train ARGS``: the entry point for ``torchrun -m``."""

import sys

from vtcodec.cli import main

if __name__ == "__main__":
    sys.argv = ["vtcodec", "train", *sys.argv[1:]]
    main()
