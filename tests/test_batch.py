"""Batch conversion: folders, globs, resume, failures, manifests, sharding, kills."""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import vtcodec
from vtcodec import batch, codec
from vtcodec.errors import InputError
from vtcodec.imageio import IMAGE_SUFFIXES
from vtcodec.jobs import collect_jobs
from vtcodec.zoo import load_model

from .conftest import random_image


def make_tree(root: Path, count: int = 6, size: tuple[int, int] = (70, 45)) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / ("sub" if i % 2 else "") / f"img{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        random_image(size[0] + i, size[1] + 2 * i, seed=i).save(path)
        paths.append(path)
    return paths


def vtk_name(p: Path) -> Path:
    return p.with_suffix(".vtk")


def test_collect_jobs_mirrors_folders_and_globs(tmp_path: Path) -> None:
    paths = make_tree(tmp_path / "in")
    (tmp_path / "in" / "notes.txt").write_text("not an image")
    jobs = collect_jobs([tmp_path / "in"], tmp_path / "out", IMAGE_SUFFIXES, vtk_name)
    assert [j.source for j in jobs] == sorted(paths, key=str)
    assert jobs[-1].output == tmp_path / "out" / "sub" / "img005.vtk"
    pattern = str(tmp_path / "in" / "**" / "*.png")
    globbed = collect_jobs([pattern], tmp_path / "o", IMAGE_SUFFIXES, vtk_name)
    assert {j.output for j in globbed} == {tmp_path / "o" / j.output.relative_to(tmp_path / "out") for j in jobs}
    beside = collect_jobs([paths[0], paths[0]], None, IMAGE_SUFFIXES, vtk_name)
    assert beside == [batch.Job(paths[0], paths[0].with_suffix(".vtk"))]
    with pytest.raises(InputError):
        collect_jobs([tmp_path / "missing"], None, IMAGE_SUFFIXES, vtk_name)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_batched_encode_matches_single_image_encode(tmp_path: Path, tiny_model, batch_size: int) -> None:
    paths = make_tree(tmp_path / "in", count=5)
    jobs = collect_jobs([tmp_path / "in"], tmp_path / "out", IMAGE_SUFFIXES, vtk_name)
    summary = batch.encode_many(jobs, tiny_model, 5, batch_size=batch_size, quiet=True)
    assert summary.converted == 5 and not summary.failed
    for job in jobs:
        expected = codec.compress(Image.open(job.source), 5, model=tiny_model)
        assert job.output.read_bytes() == expected
    assert len(paths) == 5


def test_rerun_skips_complete_redoes_corrupt_and_reports_failures(tmp_path: Path, tiny_model) -> None:
    make_tree(tmp_path / "in", count=4)
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    jobs = collect_jobs([tmp_path / "in"], tmp_path / "out", IMAGE_SUFFIXES, vtk_name)
    manifest = tmp_path / "m.jsonl"
    first = batch.encode_many(jobs, tiny_model, 4, manifest=manifest, quiet=True)
    assert first.converted == 4 and [p.name for p, _ in first.failed] == ["broken.png"]
    good = [j for j in jobs if j.source.name != "broken.png"]
    damaged = good[1].output
    damaged.write_bytes(damaged.read_bytes()[:-3])  # a partial file
    (damaged.parent / f".{damaged.name}.abc123.tmp").write_bytes(b"left by a killed run")
    second = batch.encode_many(jobs, tiny_model, 4, manifest=manifest, quiet=True)
    assert (second.converted, second.skipped, len(second.failed)) == (1, 3, 1)
    assert batch.vtk_is_complete(damaged, tiny_model)
    assert not list(damaged.parent.glob("*.tmp"))
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(lines) == 10
    ok = [line for line in lines if line["status"] == "ok"]
    assert all(line["bytes"] > 0 and line["tokens"] == 4.0 and line["bpp"] > 0 for line in ok)
    assert {line["status"] for line in lines} == {"ok", "skipped", "error"}


def test_decode_many_round_trip_and_token_preview(tmp_path: Path, tiny_model) -> None:
    make_tree(tmp_path / "in", count=3)
    jobs = collect_jobs([tmp_path / "in"], tmp_path / "vtk", IMAGE_SUFFIXES, vtk_name)
    batch.encode_many(jobs, tiny_model, 6, quiet=True)
    vtk_jobs = collect_jobs([tmp_path / "vtk"], tmp_path / "png", frozenset({".vtk"}), lambda p: p.with_suffix(".png"))
    summary = batch.decode_many(vtk_jobs, [tiny_model.path], batch_size=7, tokens=3, quiet=True)
    assert summary.converted == 3
    for job in vtk_jobs:
        data = job.source.read_bytes()
        expected = np.asarray(codec.decompress(data, tokens=3, model=tiny_model))
        assert np.array_equal(np.asarray(Image.open(job.output)), expected)


def test_cli_batch_exit_code_and_summary(tmp_path: Path, tiny_model_path: Path) -> None:
    make_tree(tmp_path / "in", count=2)
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a jpeg")
    result = run_cli(["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)])
    assert result.returncode == 1
    assert "2 converted" in result.stderr and "1 failed" in result.stderr and "bad.jpg" in result.stderr
    assert "Traceback" not in result.stderr


def run_cli(args: list[str], env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vtcodec", *args, "-Q"], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_batch_run_loses_nothing(tmp_path: Path, tiny_model_path: Path, sig: signal.Signals) -> None:
    make_tree(tmp_path / "in", count=60, size=(96, 64))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "vtcodec", "encode", str(tmp_path / "in"), "-o", str(out), "-Q"]
    args += ["--model", str(tiny_model_path), "--batch-size", "1", "-j", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for attempt in range(2):
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        deadline = time.time() + 120
        wanted = random.Random(attempt).randint(1, 40)
        while len(list(out.rglob("*.vtk"))) < wanted and proc.poll() is None and time.time() < deadline:
            time.sleep(0.005)
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert b"Traceback" not in proc.stderr.read()
    rerun = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert rerun.returncode == 0, rerun.stderr
    outputs = sorted(out.rglob("*.vtk"))
    assert len(outputs) == 60
    model = load_model(tiny_model_path)
    assert all(batch.vtk_is_complete(p, model) for p in outputs)
    assert not [p for p in out.rglob("*") if p.is_file() and p.suffix != ".vtk"]


def test_torchrun_two_ranks_convert_every_file_once(tmp_path: Path, tiny_model_path: Path) -> None:
    make_tree(tmp_path / "in", count=9)
    manifest = tmp_path / "m.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "vtcodec"]
    cmd += ["encode", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model_path)]
    cmd += ["--manifest", str(manifest), "--device", "cpu", "-Q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1"}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    parts = sorted(tmp_path.glob("m.rank*-of-2.jsonl"))
    assert [p.name for p in parts] == ["m.rank0-of-2.jsonl", "m.rank1-of-2.jsonl"]
    sources = [json.loads(line)["source"] for part in parts for line in part.read_text().splitlines()]
    assert len(sources) == 9 and len(set(sources)) == 9
    assert len(list((tmp_path / "out").rglob("*.vtk"))) == 9


def test_entropy_decoding_does_not_depend_on_threads_or_network_dtype(tiny_model) -> None:
    """The prior is integer-only: decoding tokens never touches float network state."""
    image = random_image(100, 70, seed=3)
    data = codec.compress(image, 8, model=tiny_model)
    reference = codec.read_tokens(data, tiny_model).ids
    threads = torch.get_num_threads()
    try:
        for count in (1, 2, 3):
            torch.set_num_threads(count)
            assert np.array_equal(codec.read_tokens(data, tiny_model).ids, reference)
    finally:
        torch.set_num_threads(threads)
    loaded = load_model(tiny_model.path)
    assert loaded.context is not None  # the digit-context prior is exercised too
    perturbed = dataclasses.replace(loaded, model=loaded.model.__class__(loaded.config).to(torch.float64))
    assert np.array_equal(codec.read_tokens(data, perturbed).ids, reference)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tokens_decode_on_cpu(tmp_path: Path, tiny_model_path: Path) -> None:
    cpu = load_model(tiny_model_path)
    cuda = load_model(tiny_model_path, "cuda")
    image = random_image(300, 200, seed=5)
    data = codec.compress(image, 8, model=cuda)
    assert codec.read_tokens(data, cpu).ids.shape == (70, 8)
    vtcodec.decompress(data, model=cpu)
