"""The grid tokenizer with a finer second token scale (``fine_groups``)."""

import numpy as np
import torch

from vtcodec.context_prior import DigitContextPrior, token_layout
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.prior import TokenPrior
from vtcodec.train import warm_start
from vtcodec.zoo import context_layout, load_model, save_model

COARSE = TokenizerConfig(tile_size=64, max_tokens=8, channels=(8, 8, 8, 8), fsq_levels=(3, 3), cell_size=32)
FINE = TokenizerConfig(**{**COARSE.to_dict(), "max_tokens": 8 + 2 * 16, "fine_groups": 2})


def test_fine_tokens_follow_the_coarse_ones():
    torch.manual_seed(0)
    model = build_model(FINE).eval()
    assert (model.groups, model.fine_groups, model.max_tokens) == (2, 2, 40)
    tiles = torch.rand(3, 3, 64, 64)
    ids = model.encode(tiles)
    assert ids.shape == (3, 40)
    # A prefix inside the coarse groups does not depend on the fine tokens.
    other = ids.clone()
    other[:, 8:] = (other[:, 8:] + 1) % model.codebook_size
    assert torch.equal(model.decode(ids[:, :8]), model.decode(other[:, :8]))
    assert model.decode(ids).shape == (3, 3, 64, 64)


def test_growing_fine_groups_starts_as_the_source(tmp_path):
    torch.manual_seed(1)
    source = build_model(COARSE).eval()
    tokens = source.encode(torch.rand(16, 3, 64, 64)).numpy()
    path = tmp_path / "coarse.safetensors"
    save_model(source, TokenPrior.fit(tokens, source.codebook_size), path)
    source = load_model(path).model  # the weights as stored (fp16)
    grown = build_model(FINE)
    warm_start(grown, str(path))
    grown.eval()
    tiles = torch.rand(2, 3, 64, 64)
    ids = grown.encode(tiles)
    assert torch.equal(ids[:, :8], source.encode(tiles))
    for n in (3, 8, 40):  # the fine branch's input convolution starts at zero
        assert torch.allclose(grown.decode(ids[:, :n]), source.decode(ids[:, : min(n, 8)]))


def test_two_scale_context_layout_points_backwards():
    model = build_model(FINE)
    groups, group_of, neighbours = context_layout(model)
    assert groups == 4
    assert group_of.tolist() == [0] * 4 + [1] * 4 + [2] * 16 + [3] * 16
    rows, cols = np.nonzero(neighbours >= 0)
    assert (neighbours[rows, cols] < rows).all()
    # First fine group: "up" is the parent cell in the last coarse group (positions 4..7).
    fine_order = model.fine_order.numpy()
    for p in range(16):
        y, x = divmod(int(fine_order[p]), 4)
        assert neighbours[8 + p, 2] == 4 + (y // 2) * 2 + x // 2
    assert neighbours[24:, 2].tolist() == list(range(8, 24))


def test_single_scale_layout_is_the_plain_grid():
    group_of, neighbours = token_layout([(2, 3, np.arange(4))])
    assert group_of.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    prior_groups = DigitContextPrior.fit(
        np.zeros((4, 12), dtype=np.int64), (3, 3), 3, neighbours, group_of=group_of
    ).group_of
    assert np.array_equal(prior_groups, group_of)
