"""The digit-context prior: each FSQ digit of a token coded under its neighbours' digits.

A token is ``len(levels)`` FSQ digits (``id = sum(digit[d] * basis[d])``). The
prior codes them one at a time, digit ``d`` of the token at sequence position
``j`` under an integer frequency row chosen by the context

- ``g``: the token group of ``j`` (grid layout: ``j = g * cells + p``; a model
  with a finer second scale numbers its groups on after the coarse ones);
- ``l``, ``a``, ``u``: digit ``d`` of the same group's token in the cell to the
  left, the cell above, and of the same cell's token in the previous group
  ("up" the group ladder; for the first group of the finer scale, the parent
  cell's token in the last coarse group), each ``0`` when there is none, else digit + 1;
- ``r``: the token's own previous digit ``d - 1`` (``0`` for ``d = 0``).

Every context reads only tokens that come earlier in the tile's sequence, so a
decoder knows it when it needs it, and any prefix of a tile still decodes.

Row ``key`` of table ``d`` (``key = (((g * S + l) * S + a) * S + u) * R + r`` with
``S = levels[d] + 1`` and ``R = levels[d - 1]``, or 1) holds positive integers that
sum to exactly ``2**CONTEXT_FREQ_BITS``. The coder hands ``freq / 2**CONTEXT_FREQ_BITS``
(exact in float64) to the range coder, so both sides see bit-identical
probabilities on every machine, device and thread count: nothing is computed in
floating point at coding time. The tables are fitted once, at export, with
back-off smoothing (``fit``) and stored in the model file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vtcodec.prior import quantize_rows

CONTEXT_FREQ_BITS = 15
CONTEXT_FREQ_TOTAL = 1 << CONTEXT_FREQ_BITS
# Back-off chain of the smoothing, coarse to fine: each level's counts are smoothed
# towards the level before it. The last level is the full context.
FULL_CONTEXT = "glaur"
BACKOFF_CHAIN = ("r", "gr", "gur", "glur", FULL_CONTEXT)


def neighbour_positions(side: int, groups: int, order: np.ndarray) -> np.ndarray:
    """(K, 3) sequence positions of each token's left, above and previous-group token (-1: none).

    ``order[p]`` is the raster index of the cell at in-group position ``p``. A
    neighbour is kept only if it comes earlier in the sequence.
    """
    return token_layout([(side, groups, order)])[1]


def token_layout(scales: list[tuple[int, int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Group of every sequence position (K,) and its neighbour map (K, 3), for grids of cells.

    ``scales`` lists ``(side, groups, order)`` in sequence order: ``groups`` groups
    of ``side * side`` tokens each, ``order[p]`` the raster index of the cell at
    in-group position ``p``. Groups are numbered across scales. Neighbours: the
    left and above cell in the same group (if earlier in the sequence), and "up":
    the same cell in the previous group, or, for the first group of a finer scale,
    the cell's parent in the last group of the scale before it.
    """
    group_of: list[int] = []
    rows: list[list[int]] = []
    start, group = 0, 0
    previous: tuple[int, int, np.ndarray] | None = None  # the scale before: side, its last group's start, inverse order
    for side, groups, order in scales:
        cells = side * side
        order = np.asarray(order)
        inverse = np.argsort(order)
        for g in range(groups):
            base = start + g * cells
            for p in range(cells):
                y, x = divmod(int(order[p]), side)
                row = [-1, -1, -1]
                for k, (ny, nx) in enumerate(((y, x - 1), (y - 1, x))):
                    if ny >= 0 and nx >= 0:
                        q = int(inverse[ny * side + nx])
                        if q < p:
                            row[k] = base + q
                if g > 0:
                    row[2] = base - cells + p
                elif previous is not None:
                    parent_side, parent_base, parent_inverse = previous
                    scale = side // parent_side
                    row[2] = parent_base + int(parent_inverse[(y // scale) * parent_side + x // scale])
                rows.append(row)
                group_of.append(group + g)
        previous = (side, start + (groups - 1) * cells, inverse)
        start += groups * cells
        group += groups
    return np.array(group_of, dtype=np.int64), np.array(rows, dtype=np.int64).reshape(-1, 3)


def token_digits(ids: np.ndarray, levels: tuple[int, ...]) -> np.ndarray:
    """Token ids (...) -> FSQ digits (..., len(levels)); ``id = sum(digit[d] * basis[d])``."""
    basis = np.cumprod([1, *levels[:-1]]).astype(np.int64)
    return (np.asarray(ids, dtype=np.int64)[..., None] // basis) % np.asarray(levels, dtype=np.int64)


def _neighbour_digits(
    ids: np.ndarray,
    positions: np.ndarray,
    neighbours: np.ndarray,
    levels: tuple[int, ...],
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """(tiles, len(positions), 3, digits): each neighbour's digits + 1, or 0 where there is none.

    ``ids`` (tiles, n) must hold every earlier token of each tile at these positions;
    ``rows`` picks some tiles (all by default).
    """
    where = neighbours[positions]
    found = where >= 0
    columns = np.where(found, where, 0)
    ids = np.asarray(ids, dtype=np.int64)
    gathered = ids[:, columns] if rows is None else ids[rows[:, None, None], columns[None]]
    return np.where(found[None, ..., None], token_digits(gathered, levels) + 1, 0)


def equal_groups(k: int, groups: int) -> np.ndarray:
    """Group of each of ``k`` positions split into ``groups`` equal consecutive groups."""
    if groups < 1 or k % groups:
        raise ValueError("neighbour map does not match the groups")
    return np.arange(k) // (k // groups)


def context_rows(levels: tuple[int, ...], groups: int, d: int) -> int:
    """Number of contexts (table rows) of digit ``d``."""
    return groups * (levels[d] + 1) ** 3 * (levels[d - 1] if d else 1)


def _radix(levels: tuple[int, ...], groups: int, d: int) -> dict[str, int]:
    side = levels[d] + 1
    return {"g": groups, "l": side, "a": side, "u": side, "r": levels[d - 1] if d else 1}


def _context_values(
    ids: np.ndarray, levels: tuple[int, ...], group_of: np.ndarray, neighbours: np.ndarray
) -> list[dict[str, np.ndarray]]:
    """Per digit: the context components (g, l, a, u, r) and the digit x of every token of ``ids`` (a prefix)."""
    positions = np.arange(ids.shape[1])
    own = token_digits(ids, levels)
    around = _neighbour_digits(ids, positions, neighbours, levels)
    group = np.broadcast_to(group_of[positions], ids.shape)
    return [
        {
            "g": group,
            "l": around[..., 0, d],
            "a": around[..., 1, d],
            "u": around[..., 2, d],
            "r": own[..., d - 1] if d else np.zeros(ids.shape, dtype=np.int64),
            "x": own[..., d],
        }
        for d in range(len(levels))
    ]


def _key(values: dict[str, np.ndarray], names: str, radix: dict[str, int]) -> np.ndarray:
    key = np.zeros(np.shape(values["r"]), dtype=np.int64)
    for name in names:
        key = key * radix[name] + values[name]
    return key


@dataclass(frozen=True)
class DigitContextPrior:
    """The digit-context prior: integer tables, neighbours and groups.

    ``tables[d]`` has shape (contexts, levels[d]); ``neighbours`` is (K, 3) and
    ``group_of`` the group of every position (K,); without ``group_of``, K splits into
    ``groups`` equal groups.
    """

    levels: tuple[int, ...]
    groups: int
    neighbours: np.ndarray
    tables: tuple[np.ndarray, ...]
    group_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = self.neighbours.shape[0]
        if self.neighbours.shape != (k, 3) or self.groups < 1:
            raise ValueError("neighbour map does not match the groups")
        group_of = equal_groups(k, self.groups) if self.group_of is None else np.asarray(self.group_of, dtype=np.int64)
        if group_of.shape != (k,) or group_of.min() < 0 or group_of.max() >= self.groups:
            raise ValueError("group map does not match the groups")
        object.__setattr__(self, "group_of", group_of)
        if len(self.tables) != len(self.levels):
            raise ValueError("one context table per FSQ digit is required")
        for d, table in enumerate(self.tables):
            expected = (context_rows(self.levels, self.groups, d), self.levels[d])
            if table.shape != expected:
                raise ValueError(f"context table {d} has shape {table.shape}, expected {expected}")
            if table.min() < 1 or np.any(table.sum(axis=1, dtype=np.int64) != CONTEXT_FREQ_TOTAL):
                raise ValueError(f"context rows must be positive integers summing to 2**{CONTEXT_FREQ_BITS}")
        # int16 holds every entry (below 2**CONTEXT_FREQ_BITS); probabilities are derived per row when asked,
        # exactly (a power-of-two denominator), so no float64 copy of the tables is kept.
        tables = tuple(np.asarray(table).astype(np.int16) for table in self.tables)
        for table in tables:
            table.setflags(write=False)
        object.__setattr__(self, "tables", tables)
        strides = []
        for d in range(len(self.levels)):
            side, r = self.levels[d] + 1, (self.levels[d - 1] if d else 1)
            strides.append([side**3 * r, side**2 * r, side * r, r])
        strides = np.array(strides, dtype=np.int64)
        object.__setattr__(self, "_group_strides", strides[:, 0])
        object.__setattr__(self, "_neighbour_strides", strides[None, :, 1:])

    @property
    def max_tokens(self) -> int:
        return self.neighbours.shape[0]

    def keys(self, position: int, around: np.ndarray) -> np.ndarray:
        """(n, digits) table rows at sequence ``position``, before adding the own previous digit.

        ``around`` (n, digits, 3) holds the left, above and previous-group neighbours'
        digits + 1 (0: none), as from :meth:`neighbour_digits`. Digit ``d``'s row is
        ``keys[:, d] + digit[d - 1]`` (plus nothing for ``d = 0``).
        """
        return self.group_of[position] * self._group_strides + (around * self._neighbour_strides).sum(axis=2)

    def neighbour_digits(self, ids: np.ndarray, rows: np.ndarray, position: int) -> np.ndarray:
        """(len(rows), digits, 3): the digits + 1 of the neighbours of ``position`` (0: none).

        ``ids[rows]`` must hold the earlier tokens of those rows.
        """
        around = _neighbour_digits(ids, np.array([position]), self.neighbours, self.levels, rows)
        return around[:, 0].transpose(0, 2, 1)

    def probabilities(self, d: int, keys: np.ndarray) -> np.ndarray:
        """Exact float64 probability rows of digit ``d`` for these table rows."""
        return self.tables[d][keys] / CONTEXT_FREQ_TOTAL

    def token_bits(self, ids: np.ndarray) -> np.ndarray:
        """Ideal code length in bits of every token of ``ids`` (tiles, n): complete prefixes."""
        ids = np.asarray(ids, dtype=np.int64)
        bits = np.zeros(ids.shape)
        for d, values in enumerate(_context_values(ids, self.levels, self.group_of, self.neighbours)):
            rows = _key(values, FULL_CONTEXT, _radix(self.levels, self.groups, d))
            bits -= np.log2(self.tables[d][rows, values["x"]] / CONTEXT_FREQ_TOTAL)
        return bits

    @classmethod
    def fit(
        cls,
        tokens: np.ndarray,
        levels: tuple[int, ...],
        groups: int,
        neighbours: np.ndarray,
        held_out: np.ndarray | None = None,
        strengths: tuple[float, ...] = (2, 8, 32, 128, 512),
        group_of: np.ndarray | None = None,
    ) -> DigitContextPrior:
        """Fit from (tiles, K) token ids by back-off smoothing along :data:`BACKOFF_CHAIN`.

        Each level's probability is ``(n(ctx, x) + s * p_coarser(x)) / (n(ctx) + s)``;
        each level's strength ``s`` is the one that codes ``held_out`` tokens in the
        fewest bits (the middle value without them). The coarsest level backs off to uniform.
        """
        levels = tuple(levels)
        k = neighbours.shape[0]
        group_of = equal_groups(k, groups) if group_of is None else np.asarray(group_of, dtype=np.int64)
        train = _context_values(np.asarray(tokens, dtype=np.int64), levels, group_of, neighbours)
        test = (
            _context_values(np.asarray(held_out, dtype=np.int64), levels, group_of, neighbours)
            if held_out is not None
            else None
        )
        tables = []
        for d, size in enumerate(levels):
            radix = _radix(levels, groups, d)
            rows = context_rows(levels, groups, d)
            components, rest = {}, np.arange(rows)
            for name in reversed(FULL_CONTEXT):
                components[name], rest = rest % radix[name], rest // radix[name]
            row_probs = np.full((rows, size), 1.0 / size)
            test_probs = np.full(test[d]["x"].shape, 1.0 / size) if test else None
            for level in BACKOFF_CHAIN:
                span = int(np.prod([radix[name] for name in level]))
                flat = (_key(train[d], level, radix) * size + train[d]["x"]).ravel()
                counts = np.bincount(flat, minlength=span * size).reshape(span, size).astype(np.float64)
                totals = counts.sum(axis=1)
                strength = strengths[len(strengths) // 2]
                if test:
                    key, x = _key(test[d], level, radix), test[d]["x"]
                    scored = [((counts[key, x] + s * test_probs) / (totals[key] + s), s) for s in strengths]
                    test_probs, strength = min(scored, key=lambda item: -np.log2(item[0]).sum())
                key = _key(components, level, radix)
                row_probs = (counts[key] + strength * row_probs) / (totals[key] + strength)[:, None]
            tables.append(quantize_rows(row_probs, CONTEXT_FREQ_TOTAL))
        return cls(levels, groups, neighbours, tuple(tables), group_of)
