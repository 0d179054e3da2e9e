"""Held-out code lengths of FSQ digits under context models: which neighbours predict a token?

    python benchmarks/digit_context_entropy.py [--model PATH] [--train-tiles 8192] [--test-tiles 2048]

Tokens of random training crops (bsds500 train/test + imagenet-sample) fit count
tables; tokens of held-out crops (bsds500/val) are scored in bits per token (the
sum over a token's digits). Every digit ``d`` is coded under a context made of:

- ``g``: the token group; ``c``: the cell (so ``gc`` = the sequence position);
- ``L``, ``A``, ``P``: digit ``d`` of the left / above neighbour in the same group,
  and of the same cell in the previous group (0 = none), as the shipped prior's
  neighbour map (``vtcodec.zoo.context_layout``) defines them;
- ``1``: the token's own previous digit; ``q``: all its previous digits.

A chain ``X,Y,...`` smooths each context's counts towards the one before it
(``(n(ctx, x) + s p_prev(x)) / (n(ctx) + s)``, ``s`` picked on the first half of
the held-out tiles, bits reported on the second half). A chain starting with ``!``
starts from ``p(digit | q)`` over all positions; otherwise it refines the
per-position table (``gcq``, i.e. the per-position prior written digit by digit).
The shipped digit-context prior is ``!1,g1,gP1,gLP1,gLAP1``
(``vtcodec/context_prior.py``). Kodak is not used.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from context_entropy import DATA, tokens_of

import vtcodec
from vtcodec.zoo import context_layout

CHAINS = ["gP", "gL", "gA", "gLAP", "gq,gLAPq", "gP,gLP1,gLAP1", "!1,g1,gP1,gLP1,gLAP1", "!B1,BP1,BLP1,BLAP1"]
STRENGTHS = (0.5, 2.0, 8.0, 32.0, 128.0, 512.0)


class Tokens:
    """Digits and context components of a (tiles, K) token array of a grid-layout model."""

    def __init__(self, ids: np.ndarray, levels: list[int], group_of: np.ndarray, neighbours: np.ndarray) -> None:
        self.levels = levels
        basis = np.cumprod([1, *levels[:-1]])
        self.digits = np.stack([(ids // basis[d]) % levels[d] for d in range(len(levels))], -1)
        k = ids.shape[1]
        self.groups = int(group_of.max()) + 1
        self.neighbour = {name: neighbours[:, i] for i, name in enumerate("LAP")}
        self.position = np.broadcast_to(np.arange(k), ids.shape)
        first = np.searchsorted(group_of, group_of)  # first position of each position's group
        self.group = np.broadcast_to(group_of, ids.shape)
        self.cell = np.broadcast_to(np.arange(k) - first, ids.shape)
        self.cells = int(self.cell.max()) + 1

    def part(self, name: str, d: int) -> tuple[np.ndarray, int]:
        """(values, radix) of one context component for digit ``d``."""
        if name in "LAP":
            where = self.neighbour[name]
            values = np.where(where >= 0, self.digits[:, np.maximum(where, 0), d] + 1, 0)
            return values, self.levels[d] + 1
        if name == "g":
            return self.group, self.groups
        if name == "B":  # groups bucketed 0, 1, 2-3, 4-7, 8+
            bucket = np.minimum(np.floor(np.log2(self.group + 1)).astype(int), 4)
            return bucket, 5
        if name == "c":
            return self.cell, self.cells
        if name == "1":
            return (self.digits[..., d - 1], self.levels[d - 1]) if d else (np.zeros_like(self.position), 1)
        if name == "q":
            return prefix(self.digits, self.levels, d)
        raise ValueError(name)

    def key(self, parts: str, d: int) -> np.ndarray:
        key = np.zeros(self.position.shape, dtype=np.int64)
        for name in parts:
            values, radix = self.part(name, d)
            key = key * radix + values
        return key


def prefix(digits: np.ndarray, levels: list[int], d: int) -> tuple[np.ndarray, int]:
    value, radix = np.zeros(digits.shape[:2], dtype=np.int64), 1
    for e in range(d):
        value += digits[..., e] * radix
        radix *= levels[e]
    return value, radix


def refine(train: Tokens, test: Tokens, parts: str, d: int, base: np.ndarray, half: int) -> np.ndarray:
    """Held-out probabilities of digit ``d`` under context ``parts`` smoothed towards ``base``."""
    size = train.levels[d]
    key_train, key_test = train.key(parts, d), test.key(parts, d)
    span = int(max(key_train.max(), key_test.max())) + 1
    counts = np.bincount((key_train * size + train.digits[..., d]).ravel(), minlength=span * size)
    counts = counts.reshape(span, size).astype(np.float64)
    totals = counts.sum(1)
    x = test.digits[..., d]
    options = [(counts[key_test, x] + s * base) / (totals[key_test] + s) for s in STRENGTHS]
    return min(options, key=lambda p: -np.log2(p[:half]).sum())


def chain_bits(train: Tokens, test: Tokens, chain: str | None, half: int) -> float:
    bits = np.zeros(test.position.shape)
    for d, size in enumerate(train.levels):
        p = refine(train, test, "q", d, np.full(test.position.shape, 1.0 / size), half)
        if chain is None or not chain.startswith("!"):
            p = refine(train, test, "gcq", d, p, half)
        for parts in (chain or "").lstrip("!").split(","):
            if parts:
                p = refine(train, test, parts, d, p, half)
        bits -= np.log2(p)
    return float(bits[half:].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("--train-tiles", type=int, default=8192)
    parser.add_argument("--test-tiles", type=int, default=2048)
    parser.add_argument("--chains", nargs="*", default=CHAINS)
    args = parser.parse_args()
    model = vtcodec.load_model(args.model)
    if model.config.layout != "grid":
        raise SystemExit("digit contexts need a grid-layout model")
    folders = [DATA / "bsds500" / "train", DATA / "bsds500" / "test", DATA / "imagenet-sample"]
    train_ids = tokens_of(model, folders, args.train_tiles, seed=1)
    test_ids = tokens_of(model, [DATA / "bsds500" / "val"], args.test_tiles, seed=2)
    levels = list(model.config.fsq_levels)
    _, group_of, neighbours = context_layout(model.model)
    train = Tokens(train_ids, levels, group_of, neighbours)
    test = Tokens(test_ids, levels, group_of, neighbours)
    half = test_ids.shape[0] // 2
    positions = np.arange(test_ids.shape[1])
    shipped = float(-np.log2(model.prior.probabilities(positions)[positions, test_ids[half:]]).mean())
    base = chain_bits(train, test, None, half)
    print(f"model {model.model_id.hex()}: K={test_ids.shape[1]}, raw {np.log2(model.codebook_size):.2f} bits/token")
    print("| context chain | bits/token | vs per-position, digit-wise | vs shipped per-position table |")
    print("|---|---|---|---|")
    print(f"| shipped per-position table | {shipped:.3f} | | - |")
    print(f"| per-position, digit-wise (gcq) | {base:.3f} | - | {100 * (1 - base / shipped):+.1f} % |")
    for chain in args.chains:
        value = chain_bits(train, test, chain, half)
        print(
            f"| {chain} | {value:.3f} | {100 * (1 - value / base):+.1f} % | {100 * (1 - value / shipped):+.1f} % |",
            flush=True,
        )


if __name__ == "__main__":
    main()
