"""Token export (`vtcodec tokens`) and the PyTorch datasets: round trip, labels, resume, corruption, workers."""

import json
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import vtcodec
from vtcodec.datasets import TokenShards, VtkFolder
from vtcodec.datasets import shards as token_shards
from vtcodec.errors import InputError
from vtcodec.pipeline import read_tokens

from .conftest import assert_one_line_error, random_image

SIZES = [(70, 40), (33, 65), (100, 100), (40, 40), (64, 30)]


@pytest.fixture
def vtk_tree(tmp_path, tiny_model):
    """.vtk files in two class folders and one at the top, with mixed per-tile counts."""
    root = tmp_path / "vtk"
    rng = np.random.default_rng(0)
    paths = []
    for i, (w, h) in enumerate(SIZES):
        folder = root / ("cats" if i < 2 else "dogs" if i < 4 else "")
        folder.mkdir(parents=True, exist_ok=True)
        grid_count = -(-w // 32) * -(-h // 32)
        counts = rng.integers(0, tiny_model.config.max_tokens + 1, grid_count).tolist()
        path = folder / f"img{i}.vtk"
        path.write_bytes(vtcodec.compress(random_image(w, h, seed=i), counts, model=tiny_model))
        paths.append(path)
    return root, paths


def _by_key(dataset):
    return {sample["key"]: sample for sample in dataset}


def test_shards_round_trip_tokens_labels_and_grid(vtk_tree, tiny_model, tmp_path):
    root, paths = vtk_tree
    out = tmp_path / "shards"
    summary = token_shards.export_shards([root], out, model=tiny_model, shard_size=2, quiet=True)
    assert summary.samples == len(paths) and not summary.failed
    index = json.loads((out / "index.json").read_text())
    assert index["classes"] == ["cats", "dogs"] and len(index["shards"]) == 3
    dataset = TokenShards(out)
    assert len(dataset) == len(paths)
    longest = max(int(read_tokens(p.read_bytes(), tiny_model).header.token_counts.max()) for p in paths)
    assert (dataset.length, dataset.max_tiles) == (longest, max(-(-w // 32) * -(-h // 32) for w, h in SIZES))
    samples = list(dataset)
    # sorted source order: cats/img0, cats/img1, dogs/img2, dogs/img3, img4
    ordered = sorted(paths, key=str)
    for sample, path in zip(samples, ordered, strict=True):
        stream = read_tokens(path.read_bytes(), tiny_model)
        counts = stream.header.token_counts
        tiles = len(counts)
        assert sample["counts"][:tiles].tolist() == counts.tolist()
        assert not sample["counts"][tiles:].any() and not sample["mask"][tiles:].any()
        for t, n in enumerate(counts):
            assert sample["tokens"][t, :n].tolist() == stream.ids[t, :n].tolist()
            assert sample["mask"][t].sum() == n and not sample["tokens"][t, n:].any()
        assert sample["grid"].tolist() == list(stream.header.grid)
        assert sample["size"].tolist() == [stream.header.width, stream.header.height]
        label = path.parent.name if path.parent != root else None
        assert sample["label"] == (index["classes"].index(label) if label else -1)


def test_vtk_folder_gives_the_same_samples_as_its_shards(vtk_tree, tiny_model, tiny_model_path, tmp_path):
    root, _ = vtk_tree
    token_shards.export_shards([root], tmp_path / "s", model=tiny_model, quiet=True)
    shards = list(TokenShards(tmp_path / "s", max_tiles=16, length=8))
    folder = list(VtkFolder(root, max_tiles=16, length=8, models=[tiny_model_path]))
    assert len(shards) == len(folder) == len(SIZES)
    for a, b in zip(shards, folder, strict=True):
        for key in ("tokens", "mask", "counts", "grid", "size"):
            assert torch.equal(a[key], b[key]), key
        assert a["label"] == b["label"]


def test_images_are_encoded_at_the_given_tokens(tiny_model, tmp_path):
    src = tmp_path / "src" / "birds"
    src.mkdir(parents=True)
    random_image(50, 40).save(src / "a.png")
    token_shards.export_shards([tmp_path / "src"], tmp_path / "s", model=tiny_model, tokens=3, quiet=True)
    (sample,) = list(TokenShards(tmp_path / "s"))
    assert sample["counts"].tolist() == [3, 3, 3, 3] and sample["label"] == 0
    expected = vtcodec.tokenize(random_image(50, 40), tiny_model).ids[:, :3]
    assert sample["tokens"][:4, :3].tolist() == expected.tolist()


def test_decoded_images_match_decompress(vtk_tree, tiny_model, tiny_model_path, tmp_path):
    root, paths = vtk_tree
    token_shards.export_shards([root], tmp_path / "s", model=tiny_model, quiet=True)
    samples = list(TokenShards(tmp_path / "s", output="image", models=[tiny_model_path]))
    for sample, path in zip(samples, sorted(paths, key=str), strict=True):
        expected = np.asarray(vtcodec.decompress(path.read_bytes(), model=tiny_model))
        assert sample["image"].permute(1, 2, 0).numpy().tolist() == expected.tolist()


def test_dataloader_with_workers_sees_every_sample_once(vtk_tree, tiny_model, tmp_path):
    root, _ = vtk_tree
    token_shards.export_shards([root], tmp_path / "s", model=tiny_model, shard_size=2, quiet=True)
    dataset = TokenShards(tmp_path / "s", shuffle=True, seed=3)
    single = _by_key(dataset)
    keys = []
    for batch in DataLoader(dataset, batch_size=2, num_workers=2):
        assert batch["tokens"].shape[1:] == (dataset.max_tiles, dataset.length)
        for key, tokens in zip(batch["key"], batch["tokens"], strict=True):
            assert torch.equal(tokens, single[key]["tokens"])
            keys.append(key)
    assert sorted(keys) == sorted(single)


def test_export_resumes_after_a_kill(vtk_tree, tiny_model, tmp_path, monkeypatch):
    root, _ = vtk_tree
    clean = tmp_path / "clean"
    token_shards.export_shards([root], clean, model=tiny_model, shard_size=2, quiet=True)
    killed = tmp_path / "killed"
    real = token_shards.sample_tokens
    calls = []

    def dies_on_the_fourth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(token_shards, "sample_tokens", dies_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        token_shards.export_shards([root], killed, model=tiny_model, shard_size=2, quiet=True)
    monkeypatch.setattr(token_shards, "sample_tokens", real)
    assert (killed / "tokens-000000.index.json").exists() and not (killed / "tokens-000001.index.json").exists()
    assert not (killed / "index.json").exists()
    first = (killed / "tokens-000000.npy").stat().st_mtime_ns
    summary = token_shards.export_shards([root], killed, model=tiny_model, shard_size=2, quiet=True)
    assert summary.skipped_shards == 1 and summary.samples == len(SIZES)
    assert (killed / "tokens-000000.npy").stat().st_mtime_ns == first  # the complete shard was kept
    for name in sorted(p.name for p in clean.iterdir()):
        assert (killed / name).read_bytes() == (clean / name).read_bytes(), name
    assert not list(killed.glob("*.tmp"))


def test_a_corrupt_shard_sample_is_reported_and_skipped(vtk_tree, tiny_model, tmp_path):
    root, _ = vtk_tree
    out = tmp_path / "s"
    token_shards.export_shards([root], out, model=tiny_model, shard_size=10, quiet=True)
    part = json.loads((out / "tokens-000000.index.json").read_text())
    victim = part["samples"][1]
    data = bytearray((out / "tokens-000000.npy").read_bytes())
    header = len(data) - 2 * sum(s["shape"][0] * s["shape"][1] for s in part["samples"])
    data[header + 2 * victim["offset"]] ^= 0x01
    (out / "tokens-000000.npy").write_bytes(bytes(data))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        keys = [s["key"] for s in TokenShards(out)]
    assert victim["key"] not in keys and len(keys) == len(SIZES) - 1
    assert any("corrupt" in str(w.message) and "CRC-32" in str(w.message) for w in caught)


def test_a_corrupt_vtk_file_is_reported_and_skipped(vtk_tree, tiny_model_path):
    root, paths = vtk_tree
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:-3])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        samples = list(VtkFolder(root, models=[tiny_model_path]))
    assert len(samples) == len(SIZES) - 1
    assert any("corrupt" in str(w.message) and "img2" in str(w.message) for w in caught)


def test_cli_tokens_reports_a_bad_file_and_goes_on(cli_run, vtk_tree, tiny_model_path, tmp_path):
    root, _ = vtk_tree
    (root / "cats" / "broken.vtk").write_bytes(b"VTK\x01 this is not a vtk file")
    out = tmp_path / "cli"
    code, _, err = cli_run("tokens", root, "-o", out, "--model", tiny_model_path, "--quiet")
    assert code == 1
    assert "broken.vtk" in err and "Traceback" not in err
    assert json.loads((out / "index.json").read_text())["samples"] == len(SIZES)
    code, _, err = cli_run("tokens", tmp_path / "nothing-here", "-o", out)
    assert_one_line_error(code, err)


def test_not_a_shard_folder_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="not a complete token-shard folder"):
        TokenShards(tmp_path)
    with pytest.raises(InputError, match="output must be one of"):
        VtkFolder(tmp_path, output="pixels")
