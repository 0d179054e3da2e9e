"""The grid tokenizer with a finer second token scale (``fine_groups``)."""

import numpy as np
import pytest
import torch

from vtcodec.context_prior import DigitContextPrior, token_layout
from vtcodec.models import TokenizerConfig, build_model, declared_network, inference_network
from vtcodec.prior import TokenPrior
from vtcodec.training.warm_start import warm_start
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


def test_growing_depth_starts_as_the_source(tmp_path):
    torch.manual_seed(2)
    source = build_model(FINE).eval()
    with torch.no_grad():  # a trained network: its residual blocks are not the identity
        for name, tensor in source.named_parameters():
            if ".conv2." in name:
                tensor.normal_(0, 0.1)
    path = tmp_path / "shallow.safetensors"
    save_model(source, TokenPrior.fit(source.encode(torch.rand(8, 3, 64, 64)).numpy(), source.codebook_size), path)
    source = load_model(path).model
    deeper = build_model(TokenizerConfig(**{**FINE.to_dict(), "encoder_blocks": 2, "decoder_blocks": 3}))
    assert len(deeper.decoder) == len(source.decoder) + 2 * 4 and len(deeper.encoder) == len(source.encoder) + 4
    warm_start(deeper, str(path))
    deeper.eval()
    tiles = torch.rand(2, 3, 64, 64)
    ids = deeper.encode(tiles)
    assert torch.equal(ids, source.encode(tiles))
    for n in (3, 8, 40):  # the added residual blocks start as the identity
        assert torch.allclose(deeper.decode(ids[:, :n]), source.decode(ids[:, :n]))
    # The source's first decoder block (decoder.1) stays, its second (decoder.3) moves past two new ones.
    assert torch.equal(deeper.decoder[1].conv2.weight, source.decoder[1].conv2.weight)
    assert torch.equal(deeper.decoder[5].conv2.weight, source.decoder[3].conv2.weight)
    assert not deeper.decoder[3].conv2.weight.any()


def test_loaded_networks_hold_the_given_tensors_for_inference_and_absent_ones_take_no_memory():
    torch.manual_seed(3)
    source = build_model(FINE).eval()
    state = {k: v.clone() for k, v in source.state_dict().items() if not k.startswith("decoder")}
    network = inference_network(declared_network(FINE), state, absent_ok=("decoder",))
    assert all(network.state_dict()[k].data_ptr() == v.data_ptr() for k, v in state.items())  # no copy
    assert not network.training and not any(p.requires_grad for p in network.parameters())
    placeholders = [p for name, p in network.named_parameters() if name.startswith("decoder")]
    assert placeholders and all(p.stride() == (0,) * p.dim() and not p.any() for p in placeholders)
    assert torch.equal(network.order, source.order)  # constant buffers computed, not left on meta
    tiles = torch.rand(2, 3, 64, 64)
    assert torch.equal(network.encode(tiles), source.encode(tiles))
    with pytest.raises(ValueError, match="do not fit"):
        inference_network(declared_network(FINE), state)  # the decoder may not be absent unless allowed
