"""Decoders for a token space: whole-grid and windowed decoding, decoder files, --decoder."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import vtcodec
from vtcodec import decoders
from vtcodec.codec import fit_bytes, tokenize
from vtcodec.decoders import load_decoder, rendering
from vtcodec.decoders.files import save_decoder
from vtcodec.decoders.rendering import Decoder, receptive_radius
from vtcodec.errors import InputError, UnknownModelError
from vtcodec.models import TokenizerConfig, build_model
from vtcodec.models.growth import grow_decoder, layer_keys, map_index
from vtcodec.pipeline import TokenImage, read_tokens
from vtcodec.registry import DECODER_PREFIXES
from vtcodec.tile_grid import TileGrid
from vtcodec.zoo import load_model

from .conftest import TINY_CONFIG, assert_one_line_error, image_folder, random_image


@pytest.fixture(scope="module")
def trained_looking(tiny_model):
    """The tiny model's network with every weight random (no identity blocks), so that it reaches far."""
    torch.manual_seed(1)
    network = build_model(TINY_CONFIG)
    network.load_state_dict(tiny_model.model.state_dict())
    with torch.no_grad():
        for name, p in network.named_parameters():
            if name.startswith(DECODER_PREFIXES):
                p.copy_(torch.randn_like(p) * 0.15)
    return network.eval()


@pytest.fixture(scope="module")
def grid_decoder(tiny_model, trained_looking):
    return Decoder("grid", tiny_model.model_id, trained_looking, "grid")


def _tokens(tiny_model, width, height, seed=0):
    image = tokenize(random_image(width, height, seed), tiny_model)
    counts = np.random.default_rng(seed).integers(0, tiny_model.config.max_tokens + 1, image.grid.count)
    return image, counts


def test_a_one_tile_mosaic_is_the_tile_decoder(tiny_model):
    net = tiny_model.model
    codes = net.quantizer.ids_to_codes(torch.randint(0, net.codebook_size, (5, net.max_tokens)))
    keep = torch.rand(5, net.max_tokens) < 0.6
    tiles = net._render(codes, keep)
    mosaic = torch.cat([net.render_mosaic(codes[i : i + 1, None], keep[i : i + 1, None], 1, 1) for i in range(5)])
    assert torch.allclose(tiles, mosaic, atol=1e-6)


def test_a_tile_changes_nothing_beyond_the_receptive_radius(tiny_model, grid_decoder):
    image, counts = _tokens(tiny_model, 32 * 9, 32 * 9)
    counts[:] = tiny_model.config.max_tokens
    changed = image.ids.copy()
    centre = 4 * 9 + 4
    changed[centre] = (changed[centre] + 1) % tiny_model.codebook_size
    a = grid_decoder.render(image.ids, counts, image.grid).astype(int)
    b = grid_decoder.render(changed, counts, image.grid).astype(int)
    diff = np.abs(a - b).max(axis=2)
    ys, xs = np.nonzero(diff)
    assert len(ys), "the change must show near its tile"
    radius = receptive_radius(grid_decoder.network)
    assert radius == 122  # 32 + 2*16 + 16 + 2*8 + 8 + 2*4 + 4 + 2*2 + 2 for the tiny decoder
    lo, hi = 4 * 32, 5 * 32 - 1
    assert ys.min() >= lo - radius and ys.max() <= hi + radius
    assert xs.min() >= lo - radius and xs.max() <= hi + radius
    assert ys.min() < lo and ys.max() > hi, "a grid decoder sees across tile borders"


@pytest.mark.parametrize(("grid_from", "margin"), [(0, 4), (2, 2)])
def test_windowed_decode_equals_the_whole_image_decode(tiny_model, trained_looking, grid_from, margin):
    decoder = Decoder("grid", tiny_model.model_id, trained_looking, "grid", grid_from=grid_from)
    image, counts = _tokens(tiny_model, 32 * 12 - 7, 32 * 10 - 3)  # edge tiles padded too
    assert decoder.margin_tiles == margin
    whole = decoder.render(image.ids, counts, image.grid, window=64).astype(int)
    windowed = decoder.render(image.ids, counts, image.grid, window=2 * margin + 1).astype(int)  # one-tile cores
    assert windowed.shape == (32 * 10 - 3, 32 * 12 - 7, 3)
    assert np.abs(whole - windowed).max() <= 1  # within 1/255


def test_grid_from_splits_the_decoder_between_tiles_and_grid(tiny_model, trained_looking):
    image, counts = _tokens(tiny_model, 32 * 5, 32 * 4)
    exact = {"precision": "float32"}  # the same arithmetic on both paths (bfloat16 rounds by batch shape)
    tiled = Decoder("tiled", tiny_model.model_id, trained_looking, "tile", **exact).render(
        image.ids, counts, image.grid
    )
    layers = len(trained_looking.decoder)
    last = Decoder("g", tiny_model.model_id, trained_looking, "grid", grid_from=layers, **exact)
    assert np.array_equal(last.render(image.ids, counts, image.grid), tiled)  # nothing sees the grid: tiled
    assert receptive_radius(trained_looking, layers) == 0
    # the later the grid starts, the less far a tile reaches: 122 px from the token maps on, 58 from layer 2
    assert [receptive_radius(trained_looking, g) for g in (0, 1, 2)] == [122, 90, 58]
    split = Decoder("g", tiny_model.model_id, trained_looking, "grid", grid_from=2, **exact)
    assert not np.array_equal(split.render(image.ids, counts, image.grid), tiled)


def test_windows_cover_every_tile_once():
    for n, window, margin in [(1, 12, 2), (12, 12, 2), (13, 12, 2), (40, 12, 2), (7, 3, 2)]:
        spans = rendering._spans(n, window, margin)
        covered = [i for start, stop, _, _ in spans for i in range(start, stop)]
        assert covered == list(range(n))
        for start, stop, c0, c1 in spans:
            assert (c0, c1) == (0, n) if n <= window else (c0, c1) == (max(start - margin, 0), min(stop + margin, n))
            assert c1 - c0 <= max(window, 2 * margin + 1)  # memory stays bounded


def test_tiled_decoder_is_the_model_files_own(tiny_model):
    data = vtcodec.compress(random_image(70, 50), 5, model=tiny_model)
    default = np.asarray(vtcodec.decompress(data, model=tiny_model))
    tiled = np.asarray(vtcodec.decompress(data, model=tiny_model, decoder="tiled"))
    assert np.array_equal(default, tiled)  # the tiny model ships no other decoder
    assert decoders.decoder_names(tiny_model) == ["tiled"]


def test_decoder_file_round_trip(tiny_model, trained_looking, tmp_path):
    path = tmp_path / "grid.decoder.safetensors"
    save_decoder(trained_looking, "grid", tiny_model.model_id, path)
    loaded = load_decoder(tiny_model, path)
    assert (loaded.name, loaded.context, loaded.token_space) == ("grid", "grid", tiny_model.model_id)
    image, counts = _tokens(tiny_model, 100, 70)
    rounded = build_model(TINY_CONFIG)  # the file holds fp16 weights
    rounded.load_state_dict({k: v.half().float() for k, v in trained_looking.state_dict().items()})
    reference = Decoder("grid", tiny_model.model_id, rounded.eval(), "grid").render(image.ids, counts, image.grid)
    assert np.array_equal(loaded.render(image.ids, counts, image.grid), reference)
    data = vtcodec.compress(random_image(100, 70), 6, model=tiny_model)
    tiled = np.asarray(vtcodec.decompress(data, model=tiny_model)).astype(int)
    grid = np.asarray(vtcodec.decompress(data, model=tiny_model, decoder=path)).astype(int)
    assert grid.shape == tiled.shape and np.abs(grid - tiled).max() > 0


@pytest.mark.parametrize("weights", ["fp16", "int8"])
def test_a_decoder_that_decodes_in_bfloat16_keeps_its_weights_in_bfloat16(
    tiny_model, trained_looking, tmp_path, weights
):
    from vtcodec.decoders.rendering import low_precision_names

    path = tmp_path / "grid.decoder.safetensors"
    save_decoder(trained_looking, "grid", tiny_model.model_id, path, weights=weights)
    exact = load_decoder(tiny_model, path, precision="float32")
    low = load_decoder(tiny_model, path, precision="bfloat16")
    exact_weights, low_weights = exact.network.state_dict(), low.network.state_dict()
    convolutions = [k for k in low_weights if k.startswith(("decoder.", "fine_in.")) and low_weights[k].dim() > 1]
    assert convolutions and all(low_weights[k].dtype == torch.bfloat16 for k in convolutions)
    assert all(exact_weights[k].dtype == torch.float32 for k in exact_weights if exact_weights[k].is_floating_point())
    assert all(torch.equal(low_weights[k], exact_weights[k].to(low_weights[k].dtype)) for k in low_weights)
    assert not any(v.dtype == torch.bfloat16 for k, v in low_weights.items() if k.startswith("encoder."))
    assert {k for k, v in low_weights.items() if v.dtype == torch.bfloat16} == low_precision_names(low.network)
    image, counts = _tokens(tiny_model, 100, 70)
    cast_per_call = dataclasses.replace(exact, precision="bfloat16")  # autocast casts the same weights each call
    picture = low.render(image.ids, counts, image.grid)
    assert np.array_equal(picture, cast_per_call.render(image.ids, counts, image.grid))
    with pytest.raises(ValueError, match="loaded for bfloat16"):
        dataclasses.replace(low, precision="float32").render(image.ids, counts, image.grid)


def test_decoder_for_another_token_space_is_refused(tiny_model, trained_looking, tmp_path):
    path = tmp_path / "other.decoder.safetensors"
    save_decoder(trained_looking, "grid", b"\x00" * 8, path)
    with pytest.raises(UnknownModelError, match="is for model 0000000000000000"):
        load_decoder(tiny_model, path)


def test_corrupt_or_foreign_decoder_files_are_refused(tiny_model, tiny_model_path, trained_looking, tmp_path):
    bad = tmp_path / "junk.decoder.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(InputError, match="not a valid vtcodec decoder file"):
        load_decoder(tiny_model, bad)
    with pytest.raises(InputError, match="not a valid vtcodec decoder file"):
        load_decoder(tiny_model, tiny_model_path)  # a model file is no decoder file
    with pytest.raises(InputError, match="no decoder 'sharp'"):
        load_decoder(tiny_model, "sharp")


def test_rate_control_measures_with_the_grid_decoder(tiny_model, grid_decoder):
    pixels = np.asarray(random_image(130, 90, seed=3))
    tokens = tokenize(pixels, tiny_model)
    budget = 200
    result = fit_bytes(pixels, tokens, tiny_model, budget, decoder=grid_decoder)
    assert len(result.data) <= budget
    stream = read_tokens(result.data, tiny_model)
    assert stream.header.token_counts.tolist() == result.counts.tolist()
    # the allocation saw the grid decoder's distortions, not the tiled one's
    from vtcodec import rate

    grid_table = rate.measure(pixels, tokens, tiny_model, grid_decoder)
    tiled_table = rate.measure(pixels, tokens, tiny_model, decoders.tiled(tiny_model))
    assert not np.allclose(grid_table.sse, tiled_table.sse)
    whole = grid_decoder.render(tokens.ids, np.full(tokens.grid.count, 4), tokens.grid).astype(np.int64)
    col = list(grid_table.lengths).index(4)
    assert grid_table.sse[:, col].sum() == ((whole - pixels.astype(np.int64)) ** 2).sum()


def test_cli_decode_with_a_decoder(cli_run, tiny_model_path, tiny_model, trained_looking, tmp_path):
    decoder_path = tmp_path / "grid.decoder.safetensors"
    save_decoder(trained_looking, "grid", tiny_model.model_id, decoder_path)
    random_image(90, 60).save(tmp_path / "a.png")
    vtk = tmp_path / "a.vtk"
    assert cli_run("encode", tmp_path / "a.png", "-o", vtk, "--tokens", "6", "--model", tiny_model_path)[0] == 0
    out = tmp_path / "grid.png"
    code, _, _ = cli_run("decode", vtk, "-o", out, "--model", tiny_model_path, "--decoder", decoder_path)
    assert code == 0
    expected = vtcodec.decompress(vtk.read_bytes(), model=tiny_model, decoder=decoder_path)
    from PIL import Image

    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))
    # batch decode with the same decoder gives the same picture
    folder = tmp_path / "pngs"
    code, _, _ = cli_run("decode", vtk, "-o", folder, "--manifest", tmp_path / "m.jsonl", "--quiet",
                         "--model", tiny_model_path, "--decoder", decoder_path)  # fmt: skip
    assert code == 0
    assert np.array_equal(np.asarray(Image.open(folder / "a.png")), np.asarray(expected))
    code, _, err = cli_run("decode", vtk, "-o", tmp_path / "x.png", "--model", tiny_model_path, "--decoder", "nope")
    assert_one_line_error(code, err)
    assert "no decoder 'nope'" in err and "tiled" in err
    code, out_text, _ = cli_run("info", vtk, "--json", "--model", tiny_model_path)
    assert json.loads(out_text)["decoders"] == ["tiled"]


def test_token_image_grid_matches_render_shape(tiny_model):
    grid = TileGrid(33, 65, tiny_model.config.tile_size)
    image = TokenImage(grid, np.zeros((grid.count, 0), dtype=np.int64))
    out = decoders.tiled(tiny_model).render(image.ids, np.zeros(grid.count, dtype=np.int64), grid)
    assert out.shape == (65, 33, 3)


def test_train_decoder_resume_export_and_decode(cli_run, tiny_model_path, tiny_model, tmp_path):
    data = image_folder(tmp_path / "data", 4, 100, 70)
    config = tmp_path / "dec.json"
    config.write_text(json.dumps({"decoder_train": {"batch_size": 2, "log_every": 2, "eval_every": 4}}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--val", data, "--config", config]
    assert cli_run(*args, "--steps", "4")[0] == 0
    first = torch.load(run / "last.ckpt", weights_only=False)
    assert first["step"] == 4 and first["token_space"] == tiny_model.model_id.hex()
    assert cli_run(*args, "--steps", "6", "--resume")[0] == 0
    second = torch.load(run / "last.ckpt", weights_only=False)
    assert second["step"] == 6
    # only the decoder learned: the encoder and so every token are unchanged
    for name, value in second["model"].items():
        if not name.startswith(DECODER_PREFIXES):
            assert torch.equal(value, tiny_model.model.state_dict()[name]), name
    assert any(not torch.equal(second["model"][k], first["model"][k]) for k in first["model"])
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "seam@16" in r]
    assert evals and all(np.isfinite(r["lattice@16"]) and r["lattice@16"] > 0 for r in evals)
    assert all(np.isfinite(r.get("loss", 0)) for r in log)
    decoder = load_decoder(tiny_model, run / "decoder.safetensors")
    assert decoder.context == "grid" and decoder.name == "grid"
    encoded = vtcodec.compress(random_image(70, 50), 6, model=tiny_model)
    assert vtcodec.decompress(encoded, model=tiny_model, decoder=decoder).size == (70, 50)


def test_train_decoder_errors_are_one_line(cli_run, tiny_model_path, tmp_path):
    code, _, err = cli_run("train-decoder", tmp_path, "--init", tmp_path / "missing.safetensors", "--out", tmp_path)
    assert_one_line_error(code, err)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2")
    code, _, err = cli_run("train-decoder", tmp_path, "--init", tiny_model_path, "--out", tmp_path, "--config", bad)
    assert_one_line_error(code, err)
    code, _, err = cli_run("train-decoder", tmp_path, "--init", tiny_model_path, "--out", tmp_path / "r")
    assert_one_line_error(code, err)
    assert "no training images" in err


GROWTHS = [
    {"decoder_blocks": (2, 1, 2, 1)},
    {"decoder_hidden": (12, 8, 16, 8)},
    {"decoder_attention": 2},
    {"decoder_blocks": (1, 2, 1, 2), "decoder_hidden": (8, 16, 8, 12), "decoder_attention": 1},
]


@pytest.mark.parametrize("architecture", GROWTHS)
def test_growing_the_decoder_keeps_its_output(tiny_model, trained_looking, architecture):
    grown = grow_decoder(trained_looking, **architecture).eval()
    assert sum(p.numel() for p in grown.decoder.parameters()) > sum(
        p.numel() for p in trained_looking.decoder.parameters()
    )
    torch.manual_seed(2)
    codes = trained_looking.quantizer.ids_to_codes(torch.randint(0, tiny_model.codebook_size, (6, 8))).view(1, 6, 8, -1)
    keep = torch.arange(8) < torch.tensor([8, 3, 0, 5, 8, 1]).view(1, 6, 1)
    with torch.no_grad():
        for grid_from in (0, 3):
            new_from = map_index(trained_looking, grown, grid_from)
            if architecture.get("decoder_attention") and grid_from == 0:
                continue  # attention must run per tile
            before = trained_looking.render_mosaic(codes, keep, 2, 3, grid_from)
            after = grown.render_mosaic(codes, keep, 2, 3, new_from)
            assert torch.allclose(before, after, atol=1e-6)
    # the encoder, and so the token space, is untouched
    for name, value in trained_looking.state_dict().items():
        if not name.startswith(DECODER_PREFIXES):
            assert torch.equal(value, grown.state_dict()[name])


def _perturbed(network, seed, scale=0.05):
    torch.manual_seed(seed)
    copy = build_model(network.config)
    copy.load_state_dict(network.state_dict())
    with torch.no_grad():
        for p in copy.decoder.parameters():
            p.add_(torch.randn_like(p) * scale)
    return copy.eval()


@pytest.mark.parametrize("growth", [None, {"decoder_attention": 1}, {"decoder_blocks": (1, 2, 1, 1)}])
def test_carry_blend_moves_a_blend_onto_a_retrained_or_grown_base(tiny_model, trained_looking, growth):
    old, realism = trained_looking, _perturbed(trained_looking, 3)
    new = _perturbed(grow_decoder(old, **growth) if growth else old, 4)
    grid_from = map_index(old, new, 3)
    share = 0.65
    point_net = build_model(old.config)
    a, r = old.state_dict(), realism.state_dict()
    point_net.load_state_dict({k: share * a[k] + (1 - share) * r[k] if a[k].is_floating_point() else a[k] for k in a})

    def decoder(name, network, at=3):
        return Decoder(name, tiny_model.model_id, network.eval(), "grid", grid_from=at)

    point, old_base, new_base = decoder("point", point_net), decoder("old", old), decoder("new", new, grid_from)
    moved = decoders.carry_blend(point, old_base, new_base, share)
    assert moved.grid_from == grid_from and moved.name == "point"
    b, m = new.state_dict(), moved.network.state_dict()
    old_keys, new_keys = layer_keys(old.decoder), layer_keys(new.decoder)
    added = {i for i, key in enumerate(new_keys) if key not in old_keys}
    assert bool(added) == bool(growth)
    for key, value in m.items():
        parts = key.split(".")
        if parts[0] == "decoder" and int(parts[1]) in added:
            expected = b[key]  # only the new base has this block
        else:
            source = key
            if parts[0] == "decoder":  # the same layer in the old network
                source = ".".join(["decoder", str(old_keys.index(new_keys[int(parts[1])])), *parts[2:]])
            expected = share * b[key] + (1 - share) * r[source] if value.is_floating_point() else b[key]
        assert torch.allclose(value, expected, atol=1e-6), key
    image, counts = _tokens(tiny_model, 70, 40)
    assert moved.render(image.ids, counts, image.grid).shape == (40, 70, 3)


def test_carry_blend_refuses_a_base_that_was_not_grown_by_added_blocks(tiny_model, trained_looking):
    wider = _perturbed(grow_decoder(trained_looking, decoder_hidden=(12, 8, 16, 8)), 5)
    base = Decoder("old", tiny_model.model_id, trained_looking, "grid", grid_from=3)
    with pytest.raises(InputError, match="not grown"):
        decoders.carry_blend(base, base, Decoder("new", tiny_model.model_id, wider, "grid", grid_from=3), 0.5)


def test_a_decoder_cannot_shrink(trained_looking):
    with pytest.raises(ValueError, match="can only grow"):
        grow_decoder(trained_looking, decoder_hidden=(4, 8, 8, 8))
    with pytest.raises(ValueError, match="only the decoder"):
        grow_decoder(trained_looking, channels=(8, 8, 8, 16))


def test_grown_decoder_file_keeps_its_architecture(tiny_model, trained_looking, tmp_path):
    torch.manual_seed(2)  # the same fresh layers and noise whichever tests ran before
    grown = grow_decoder(trained_looking, decoder_blocks=(2, 1, 1, 2), decoder_attention=1).eval()
    with torch.no_grad():
        for p in grown.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # the added layers no longer the identity
    path = tmp_path / "deep.decoder.safetensors"
    grid_from = map_index(trained_looking, grown, 3)
    save_decoder(grown, "deep", tiny_model.model_id, path, grid_from=grid_from)
    loaded = load_decoder(tiny_model, path)
    assert loaded.network.config.decoder_stage_blocks() == (2, 1, 1, 2)
    assert loaded.network.config.decoder_attention == 1 and loaded.grid_from == grid_from
    rounded = build_model(grown.config)
    # The file stores the decoder's weights in fp16; the token space's stay the model file's.
    weights = grown.state_dict().items()
    rounded.load_state_dict({k: v.half().float() if k.startswith(DECODER_PREFIXES) else v for k, v in weights})
    image, counts = _tokens(tiny_model, 100, 70)
    reference = Decoder("deep", tiny_model.model_id, rounded.eval(), "grid", grid_from=grid_from)
    assert np.array_equal(loaded.render(image.ids, counts, image.grid), reference.render(image.ids, counts, image.grid))
    with pytest.raises(ValueError, match="attention"):
        save_decoder(grown, "deep", tiny_model.model_id, tmp_path / "x.safetensors", grid_from=0)


def test_train_decoder_grows_and_resumes(cli_run, tiny_model_path, tiny_model, trained_looking, tmp_path):
    data = image_folder(tmp_path / "data", 3, 80, 70)
    start = tmp_path / "start.decoder.safetensors"
    save_decoder(trained_looking, "grid", tiny_model.model_id, start, grid_from=3)
    config = tmp_path / "grow.json"
    spec = {"batch_size": 2, "grid_from": 3, "architecture": {"decoder_attention": 1}, "fresh_lr_scale": 4.0}
    config.write_text(json.dumps({"decoder_train": spec}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--config", config]
    assert cli_run(*args, "--init-decoder", start, "--steps", "2")[0] == 0
    first = torch.load(run / "last.ckpt", weights_only=False)
    assert first["model_config"]["decoder_attention"] == 1 and first["train_config"]["grid_from"] == 4
    assert first["fresh_parameters"] and all(
        ".qkv." in n or "norm" in n or "mlp" in n or "proj" in n for n in first["fresh_parameters"]
    )
    # warm-started from the decoder file, not from the model file's own decoder
    start_weights = load_decoder(tiny_model, start, precision="float32").network.state_dict()
    assert not torch.equal(
        first["model"]["decoder.1.conv2.weight"], tiny_model.model.state_dict()["decoder.1.conv2.weight"]
    )
    assert torch.allclose(first["model"]["decoder.1.conv2.weight"], start_weights["decoder.1.conv2.weight"], atol=0.05)
    assert cli_run(*args, "--steps", "3", "--resume")[0] == 0
    assert torch.load(run / "last.ckpt", weights_only=False)["step"] == 3
    decoder = load_decoder(tiny_model, run / "decoder.safetensors")
    assert decoder.network.config.decoder_attention == 1 and decoder.grid_from == 4
    encoded = vtcodec.compress(random_image(70, 50), 6, model=tiny_model)
    assert vtcodec.decompress(encoded, model=tiny_model, decoder=decoder).size == (70, 50)


def test_training_from_a_grown_decoder_keeps_its_grid_split(tiny_model, tiny_model_path, trained_looking, tmp_path):
    from vtcodec.training.config import DecoderTrainConfig
    from vtcodec.training.warm_start import starting_network

    grown = grow_decoder(trained_looking, decoder_attention=1).eval()
    path = tmp_path / "attn.decoder.safetensors"
    save_decoder(grown, "attn", tiny_model.model_id, path, grid_from=map_index(trained_looking, grown, 3))
    # the config's grid_from counts the layers of the ungrown decoder; the file's split replaces it
    network, cfg, fresh = starting_network(tiny_model_path, str(path), DecoderTrainConfig(grid_from=3))
    assert cfg.grid_from == load_decoder(tiny_model, path).grid_from == 4 and not fresh
    assert network.config.decoder_attention == 1


def test_train_decoder_with_the_perceptual_loss(cli_run, tiny_model_path, tiny_model, tmp_path):
    from vtcodec.perceptual import STLPIPS

    data = image_folder(tmp_path / "data", 3, 70, 70)
    torch.manual_seed(0)
    weights = tmp_path / "alex_shift_tolerant.pth"
    torch.save({k: v for k, v in STLPIPS().state_dict().items() if not k.endswith("filt")}, weights)
    config = tmp_path / "perceptual.json"
    spec = {"batch_size": 2, "grid_from": 3, "loss": "perceptual", "gan_weight": 0.1, "gan_start_step": 1}
    spec |= {"spectral_weight": 0.1, "spectral_patch": 8}
    spec |= {"lattice_weight": 0.5, "lattice_period": 8, "lattice_window": 16}
    config.write_text(json.dumps({"decoder_train": spec}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--config", config, "--name", "perceptual"]
    code, _, err = cli_run(*args, "--steps", "2")
    assert code != 0 and "--perceptual-weights" in err  # the loss needs its weights
    assert cli_run(*args, "--steps", "2", "--perceptual-weights", weights)[0] == 0
    first = torch.load(run / "last.ckpt", weights_only=False)
    assert "discriminator" in first and first["train_config"]["loss"] == "perceptual"
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) for r in log if "loss" in r)
    for bad_lattice in ({"lattice_window": 12}, {"lattice_window": 4096, "lattice_period": 8}, {"lpips_net": "x"}):
        bad_config = tmp_path / "bad-lattice.json"
        bad_config.write_text(json.dumps({"decoder_train": spec | bad_lattice}))
        bad_args = ["train-decoder", data, "--init", tiny_model_path, "--out", tmp_path / "bad-run"]
        code, _, err = cli_run(*bad_args, "--config", bad_config, "--steps", "1", "--perceptual-weights", weights)
        assert_one_line_error(code, err)
        assert next(iter(bad_lattice)) in err
    assert cli_run(*args, "--steps", "3", "--resume", "--perceptual-weights", weights)[0] == 0
    decoder = load_decoder(tiny_model, run / "decoder.safetensors")
    assert decoder.name == "perceptual"
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"junk")
    code, _, err = cli_run(*args, "--steps", "4", "--resume", "--perceptual-weights", bad)
    assert_one_line_error(code, err)


def test_joint_run_grows_the_encoder_and_exports_a_new_token_space(cli_run, tiny_model_path, tiny_model, tmp_path):
    """train_encoder: the encoder learns (here grown by a block per stage, starting as the old one), and the
    run exports a model file with refitted priors and a decoder file that serves it."""
    data = image_folder(tmp_path / "data", 4, 100, 70)
    config = tmp_path / "joint.json"
    architecture = {"encoder_blocks": 2}
    spec = {"batch_size": 2, "log_every": 2, "train_encoder": True, "architecture": architecture, "lr": 1e-3}
    config.write_text(json.dumps({"decoder_train": spec}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--config", config, "--name", "joint"]
    assert cli_run(*args, "--steps", "3")[0] == 0
    state = torch.load(run / "last.ckpt", weights_only=True)
    assert state["model_config"]["encoder_blocks"] == 2
    assert any(name.startswith("encoder.") and name in state["fresh_parameters"] for name in state["model"])
    joint = load_model(run / "model.safetensors")
    assert joint.model_id != tiny_model.model_id and joint.config.encoder_blocks == 2
    data_vtk = vtcodec.compress(random_image(64, 40), 4, model=joint)
    decoder = load_decoder(joint, run / "decoder.safetensors")
    assert decoder.name == "joint" and decoder.token_space == joint.model_id
    assert vtcodec.decompress(data_vtk, model=joint, decoder=decoder).size == (64, 40)
    # Growing the encoder without training it would leave a decoder for tokens that no file has.
    config.write_text(json.dumps({"decoder_train": {**spec, "train_encoder": False}}))
    code, _, err = cli_run(*args, "--steps", "1")
    assert code == 1 and 'needs "train_encoder": true' in err


def test_the_rate_term_prices_digits_and_pulls_them_toward_likely_levels():
    from vtcodec.training.rate_term import DigitRate

    rate = DigitRate(max_tokens=2, levels=[4, 3])
    with torch.no_grad():
        rate.logits[:, 0, :4] = torch.tensor([0.0, 3.0, 0.0, 0.0])  # level 1 of digit 0 is likely
    # Digit values before rounding: level = bounded + L // 2, so bounded -1 is level 1 of 4.
    bounded = torch.tensor([[[-1.0, 0.0], [0.4, -1.0]]], requires_grad=True)
    keep = torch.tensor([[True, False]])
    bits, nll = rate(bounded, keep)
    p = torch.softmax(torch.tensor([0.0, 3.0, 0.0, 0.0]), 0)
    expected = -torch.log2(p[1]) + torch.log2(torch.tensor(3.0))  # digit 1: uniform over 3 levels
    assert torch.isclose(bits, expected) and torch.isclose(nll, expected)
    bits.backward()
    assert bounded.grad[0, 1].abs().sum() == 0  # not kept: free
    # Between levels 1 and 2 (position 1.4) the likely level 1 is cheaper: the gradient pulls toward it.
    moved = torch.tensor([[[-0.6, 0.0]]], requires_grad=True)
    rate(moved, torch.tensor([[True]]))[0].backward()
    assert moved.grad[0, 0, 0] > 0


def test_a_joint_run_with_a_rate_term_logs_bits_and_needs_the_encoder(cli_run, tiny_model_path, tmp_path):
    data = image_folder(tmp_path / "data", 3, 80, 70)
    config = tmp_path / "rate.json"
    spec = {"batch_size": 2, "log_every": 1, "train_encoder": True, "rate_weight": 0.05}
    config.write_text(json.dumps({"decoder_train": spec}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--config", config]
    assert cli_run(*args, "--steps", "2")[0] == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all(r["bpp"] > 0 for r in log if "bpp" in r) and any("bpp" in r for r in log)
    assert "rate_table" in torch.load(run / "last.ckpt", weights_only=True)
    assert cli_run(*args, "--steps", "3", "--resume")[0] == 0
    config.write_text(json.dumps({"decoder_train": {**spec, "train_encoder": False}}))
    code, _, err = cli_run(*args, "--steps", "1")
    assert code == 1 and "rate_weight needs" in err


def test_bfloat16_decoding_changes_pixels_by_little(tiny_model, trained_looking):
    image, counts = _tokens(tiny_model, 32 * 5, 32 * 4)
    pictures = {
        precision: Decoder("g", tiny_model.model_id, trained_looking, "grid", grid_from=2, precision=precision)
        .render(image.ids, counts, image.grid)
        .astype(int)
        for precision in ("float32", "bfloat16")
    }
    assert np.abs(pictures["float32"] - pictures["bfloat16"]).max() <= 8  # a random network: tolerant
    with pytest.raises(ValueError, match="precision"):
        with Decoder("g", tiny_model.model_id, trained_looking, "grid", precision="fp8").autocast():
            pass


def test_train_decoder_starts_a_narrower_decoder_for_the_same_tokens(
    cli_run, tiny_model_path, tiny_model, trained_looking, tmp_path
):
    data = image_folder(tmp_path / "data", 3, 80, 70)
    start = tmp_path / "start.decoder.safetensors"
    save_decoder(trained_looking, "grid", tiny_model.model_id, start, grid_from=3)  # its split is not the new one's
    config = tmp_path / "narrow.json"
    narrow = {"decoder_channels": [4, 4, 6, 6], "decoder_hidden": [6, 6, 4, 4], "decoder_blocks": [1, 1, 1, 1]}
    config.write_text(json.dumps({"decoder_train": {"batch_size": 2, "grid_from": 2, "architecture": narrow}}))
    run = tmp_path / "run"
    args = ["train-decoder", data, "--init", tiny_model_path, "--out", run, "--config", config, "--name", "narrow"]
    assert cli_run(*args, "--init-decoder", start, "--steps", "2")[0] == 0
    checkpoint = torch.load(run / "last.ckpt", weights_only=False)
    assert tuple(checkpoint["model_config"]["decoder_channels"]) == (4, 4, 6, 6)
    assert checkpoint["train_config"]["grid_from"] == 2
    fresh = set(checkpoint["fresh_parameters"])
    assert fresh and all(name.startswith(("decoder.", "fine_in.")) for name in fresh)
    for name, value in checkpoint["model"].items():  # the token space is copied: the same tokens
        if not name.startswith(DECODER_PREFIXES):
            assert torch.equal(value, tiny_model.model.state_dict()[name]), name
    decoder = load_decoder(tiny_model, run / "decoder.safetensors")
    assert decoder.network.config.decoder_widths() == (4, 4, 6, 6) and decoder.grid_from == 2
    narrow_size = sum(p.numel() for p in decoder.network.decoder.parameters())
    assert narrow_size < sum(p.numel() for p in tiny_model.model.decoder.parameters())
    encoded = vtcodec.compress(random_image(70, 50), 6, model=tiny_model)
    assert vtcodec.decompress(encoded, model=tiny_model, decoder=decoder).size == (70, 50)


def test_configs_without_decoder_widths_store_as_before():
    assert "decoder_channels" not in TINY_CONFIG.to_dict()  # so earlier model ids and files stay the same
    narrow = TokenizerConfig.from_dict({**TINY_CONFIG.to_dict(), "decoder_channels": [4, 4, 4, 4]})
    assert narrow.decoder_widths() == (4, 4, 4, 4) and TokenizerConfig.from_dict(narrow.to_dict()) == narrow
    with pytest.raises(ValueError, match="one positive width per stage"):
        build_model(TokenizerConfig.from_dict({**TINY_CONFIG.to_dict(), "decoder_channels": [4, 4]}))
