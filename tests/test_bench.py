"""The benchmark: equal-bytes bisection, Bjøntegaard delta rate, and the results schema."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from vtcodec import bench
from vtcodec.models import build_model

from .conftest import random_image


def test_bisection_finds_the_largest_file_that_fits():
    sizes = {q: 100 + 10 * q for q in range(0, 51)}
    calls = []

    def encode(q: int) -> bytes:
        calls.append(q)
        return bytes(sizes[q])

    assert bench.largest_fitting(encode, 0, 50, 355)[0] == 25
    assert bench.largest_fitting(encode, 0, 50, 360)[0] == 26
    assert bench.largest_fitting(encode, 0, 50, 10_000)[0] == 50
    assert bench.largest_fitting(encode, 0, 50, 99) is None  # unreachable: never extrapolated
    assert len(calls) < 4 * 12  # bisection, not a scan


def test_bisection_tolerates_a_small_non_monotone_step():
    sizes = [100, 120, 140, 139, 160, 180]  # quality 3 is smaller than quality 2
    found = bench.largest_fitting(lambda q: bytes(sizes[q]), 0, 5, 150)
    assert found is not None and len(found[1]) == 140


def test_bd_rate_of_a_curve_with_half_the_rate_is_minus_50_percent():
    quality = [28.0, 30.0, 32.0, 34.0]
    rate = [0.1, 0.2, 0.4, 0.8]
    assert bench.bd_rate(rate, quality, [r / 2 for r in rate], quality) == pytest.approx(-50.0, abs=1e-9)
    assert bench.bd_rate(rate, quality, [r * 1.25 for r in rate], quality) == pytest.approx(25.0, abs=1e-9)


def test_bd_rate_hand_computed_with_partial_overlap():
    # A: log r = (q - 20) / 5 on q in [20, 30]; B: log r = (q - 20) / 5 - 0.1 on q in [25, 35].
    qa = [20.0, 22.5, 25.0, 27.5, 30.0]
    qb = [25.0, 27.5, 30.0, 32.5, 35.0]
    ra = [math.exp((q - 20) / 5) for q in qa]
    rb = [math.exp((q - 20) / 5 - 0.1) for q in qb]
    assert bench.bd_rate(ra, qa, rb, qb) == pytest.approx((math.exp(-0.1) - 1) * 100, abs=1e-6)
    assert bench.bd_rate(ra, qa, rb, [q + 20 for q in qb]) is None  # no overlap


def test_bench_writes_the_compressai_schema_csv_and_plots(tmp_path, tiny_model):
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        random_image(170, 165, seed=i).save(images / f"{i}.png")
    out = tmp_path / "results"
    result = bench.run_bench(sorted(images.iterdir()), out, tiny_model, ["vtcodec", "jpeg"], [2, 8], quiet=True)
    entries = json.loads((out / "results.json").read_text())
    assert {e["name"] for e in entries} == {"vtcodec", "jpeg", "jpeg-down", "jpeg-sweep"}
    for entry in entries:
        assert set(entry) == {"name", "description", "results"}
        results = entry["results"]
        assert {"bpp", "psnr-rgb", "ms-ssim", "haarpsi"} <= set(results)
        assert len(results["bpp"]) == len(results["psnr-rgb"]) == len(results["ms-ssim"]) == len(results["haarpsi"])
    ours = next(e for e in entries if e["name"] == "vtcodec")["results"]
    assert ours["tokens"] == [2, 8] and ours["bpp"][0] <= ours["bpp"][1]
    rows = list(csv.DictReader((out / "results.csv").open()))
    vt = [r for r in rows if r["codec"] == "vtcodec"]
    assert len(vt) == 4
    for r in rows:
        if r["codec"] == "jpeg" and r["bytes"]:
            match = next(v for v in vt if v["image"] == r["image"] and v["vtcodec_tokens"] == r["vtcodec_tokens"])
            assert int(r["bytes"]) <= int(match["bytes"])  # equal bytes: never larger
    for name in ("rd-psnr.png", "rd-msssim.png", "rd-haarpsi.png", "bd-rate.md", "side-by-side.png"):
        assert (out / name).stat().st_size > 0
    assert "haarpsi" in rows[0] and "BD-rate (HaarPSI)" in (out / "bd-rate.md").read_text()
    assert all(0 < float(r["haarpsi"]) <= 1 for r in rows if r["bytes"])
    assert np.isfinite(result["seconds"])


def test_bench_measures_the_metrics_it_is_given(tmp_path, tiny_model, cli_run, tiny_model_path):
    images = tmp_path / "images"
    images.mkdir()
    random_image(40, 30).save(images / "0.png")
    result = bench.run_bench(
        sorted(images.iterdir()), tmp_path / "r", tiny_model, ["vtcodec"], [2], quiet=True, metric_names=["haarpsi"]
    )
    assert result["metrics"] == ["haarpsi"]
    ours = next(e for e in result["entries"] if e["name"] == "vtcodec")["results"]
    assert set(ours) == {"bpp", "haarpsi", "tokens"}
    assert result["bd_rate"] == {} and "no reference in this run" in (tmp_path / "r" / "bd-rate.md").read_text()
    code, _, err = cli_run("bench", images, "--out", tmp_path / "x", "--metrics", "lpips", "--model", tiny_model_path)
    assert code != 0 and "unknown metric 'lpips'" in err and "\n" not in err.strip()


def test_bench_decodes_with_the_chosen_decoder(tmp_path, tiny_model, monkeypatch):
    from vtcodec import decoders
    from vtcodec.bench import codecs

    images = tmp_path / "images"
    images.mkdir()
    random_image(170, 165).save(images / "0.png")
    chosen = []
    real = decoders.load_decoder

    def spy(model, name=None):
        chosen.append(name)
        return real(model, name)

    monkeypatch.setattr(codecs, "load_decoder", spy)
    bench.run_bench(
        sorted(images.iterdir()), tmp_path / "r", tiny_model, ["vtcodec"], [2], quiet=True, decoders=["tiled"]
    )
    entries = json.loads((tmp_path / "r" / "results.json").read_text())
    assert "decoder tiled" in next(e for e in entries if e["name"] == "vtcodec")["description"]
    assert chosen == ["tiled"]


def test_bench_scores_several_decoders_on_the_same_files(tmp_path, tiny_model):
    from vtcodec.decoders.files import save_decoder

    images = tmp_path / "images"
    images.mkdir()
    random_image(100, 70).save(images / "0.png")
    other = tmp_path / "other.decoder.safetensors"
    network = build_model(tiny_model.config)
    network.load_state_dict(tiny_model.model.state_dict())
    with torch.no_grad():
        last = [m for m in network.decoder.modules() if isinstance(m, torch.nn.Conv2d)][-1]
        last.bias.add_(0.05)  # a visibly different decoder
    save_decoder(network, "brighter", tiny_model.model_id, other, context="tile")
    result = bench.run_bench(
        sorted(images.iterdir()), tmp_path / "r", tiny_model, ["vtcodec", "jpeg"], [2, 8], quiet=True,
        decoders=["tiled", other], metric_names=["psnr-rgb"],
    )  # fmt: skip
    curves = {e["name"]: e["results"] for e in result["entries"]}
    assert curves["vtcodec"]["bpp"] == curves["vtcodec-brighter"]["bpp"]  # equal bytes: the same files
    assert curves["vtcodec"]["psnr-rgb"] != curves["vtcodec-brighter"]["psnr-rgb"]
    assert set(result["bd_rate_by_decoder"]) == {"vtcodec", "vtcodec-brighter"}
    assert "| vtcodec-brighter against |" in result["bd_table"]
    assert "vtcodec" in result["bd_rate_by_decoder"]["vtcodec-brighter"]  # measured against the default too
    assert "vtcodec" not in result["bd_rate_by_decoder"]["vtcodec"]
    rows = (tmp_path / "r" / "results.csv").read_text()
    assert rows.count(",vtcodec-brighter,") == 2


def test_bench_measures_the_token_counts_it_is_given(tmp_path, cli_run, tiny_model_path):
    images = tmp_path / "images"
    images.mkdir()
    random_image(40, 30).save(images / "0.png")
    args = ["bench", images, "--codecs", "vtcodec", "--metrics", "psnr-rgb", "--model", tiny_model_path, "--quiet"]
    code, _, _ = cli_run(*args, "--out", tmp_path / "r", "--tokens", "2,5")
    assert code == 0
    entries = json.loads((tmp_path / "r" / "results.json").read_text())
    assert next(e for e in entries if e["name"] == "vtcodec")["results"]["tokens"] == [2, 5]
    for bad in ("2,x", "0", "99"):
        code, _, err = cli_run(*args, "--out", tmp_path / "s", "--tokens", bad)
        assert code != 0 and "--tokens" in err and "\n" not in err.strip()
