"""What both training loops share: the stop rule, random streams, the progress log and timed checkpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from vtcodec.training.data import CropSampler


def should_stop(run: Path, elapsed: float, budget: float, step: int, max_steps: int | None) -> bool:
    """True once the time budget or the step limit is spent, or when the file ``RUN/STOP`` exists."""
    return elapsed >= budget or (run / "STOP").exists() or bool(max_steps and step >= max_steps)


def random_streams(sampler: CropSampler, gen: torch.Generator) -> dict:
    """The states of a run's random streams (crops, prefix lengths, torch), for an exact resume."""
    return {"sampler_rng": sampler.state(), "length_rng": gen.get_state(), "torch_rng": torch.get_rng_state()}


def restore_streams(streams: dict, sampler: CropSampler, gen: torch.Generator) -> None:
    """Continue the random streams where :func:`random_streams` saved them."""
    sampler.set_state(streams["sampler_rng"])
    gen.set_state(streams["length_rng"])
    torch.set_rng_state(streams["torch_rng"])


class RunLog:
    """Running means of per-step values, logged every ``every`` steps to ``log.jsonl`` and above a tqdm bar.

    The bar counts seconds of step time against the run's budget. ``enabled=False`` (the
    extra ranks of a DDP run) keeps the means but writes and shows nothing.
    """

    def __init__(self, path: Path, budget: float, elapsed: float, every: int, enabled: bool = True) -> None:
        self.path, self.budget, self.every, self.enabled = path, budget, every, enabled
        self._window: list[dict[str, float]] = []
        self.bar = tqdm(
            total=round(budget),
            initial=min(round(elapsed), round(budget)),
            unit="s",
            disable=not enabled,
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}{postfix}]",
            dynamic_ncols=True,
        )

    def step(self, step: int, elapsed: float, **values: float) -> dict | None:
        """Add one step's values; every ``every`` steps, the record of their means (else None)."""
        self._window.append(values)
        self.bar.update(min(round(elapsed), round(self.budget)) - self.bar.n)
        if step % self.every:
            return None
        means = {key: round(float(np.mean([v[key] for v in self._window])), 5) for key in self._window[0]}
        self._window.clear()
        self.bar.set_postfix_str(f"step {step}, " + ", ".join(f"{k} {v:.4g}" for k, v in means.items()))
        return {"step": step, "min": round(elapsed / 60, 2), **means}

    def write(self, record: dict) -> None:
        """One record: a JSON line in the log file, and above the progress bar."""
        if not self.enabled:
            return
        line = json.dumps(record)
        self.bar.write(line)
        with self.path.open("a") as fh:
            fh.write(line + "\n")

    def finish(self, step: int, elapsed: float, scores: dict[str, float]) -> None:
        """Close the bar and write the final record, with the held-out ``scores``."""
        self.bar.close()
        self.write({"step": step, "min": round(elapsed / 60, 2), "final": True, **scores})


class TimedCheckpoints:
    """Calls ``save`` whenever ``minutes`` of wall time have passed since the last save."""

    def __init__(self, minutes: float, save: Callable[[], None]) -> None:
        self.interval, self.save, self._last = minutes * 60, save, time.time()

    def tick(self) -> None:
        if time.time() - self._last > self.interval:
            self.save()
            self._last = time.time()
