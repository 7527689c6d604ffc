"""Where the benchmarks keep their data, and what the pages compute from it: reading, writing, merging, averaging.

Committed: ``docs/results/<name>.json`` of each measurement script and ``docs/results/<suite path>/runs.json``
(every finished run's curve) of each suite in ``benchmarks/manifest.py``. Not committed: the learning harness's
working folder ``logs/benchmarks/<suite path>/runs/<run>/`` with the checkpoint and curve of each run in progress.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import statistics
from typing import Any

from trudi.checkpoint import atomic_write_text

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
RESULTS_DIR = os.path.join(REPO_ROOT, "docs", "results")
"""Where the committed results live."""
WORK_DIR = os.environ.get("TRUDI_BENCHMARK_WORK_DIR") or os.path.join(REPO_ROOT, "logs", "benchmarks")
"""The learning harness's checkpoints and unfinished curves (``logs/`` is not committed). ``TRUDI_BENCHMARK_WORK_DIR``
moves them out of the checkout, so that long runs resume from a fresh clone of the repository."""
RUNS_FILE = "runs.json"
"""A suite's data file: the list of its finished runs' curves."""


def cpu_name() -> str:
    """The machine in the words the result tables use, e.g. ``CPU (2 cores, x86_64)``."""
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def read_json(name: str, results_dir: str = RESULTS_DIR) -> Any:
    """The JSON file ``name`` under ``results_dir``."""
    with open(os.path.join(results_dir, name)) as file:
        return json.load(file)


def write_json(name: str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``name`` under :data:`RESULTS_DIR`, atomically."""
    atomic_write_text(os.path.join(RESULTS_DIR, name), json.dumps(data, indent=1))


def run_name(task: str, label: str, seed: int) -> str:
    """The working folder name of one (task, algo or variant, seed) run."""
    return f"{task}_{label}_s{seed}"


def run_key(curve: dict) -> tuple[str, str, int]:
    """What identifies a run within a suite: (task, algo or variant, seed)."""
    return curve["task"], curve["algo"], curve["seed"]


def load_runs(suite_path: str, results_dir: str = RESULTS_DIR) -> list[dict]:
    """Every committed curve of the suite at ``suite_path`` (empty before its first finished run)."""
    path = os.path.join(results_dir, suite_path, RUNS_FILE)
    if not os.path.isfile(path):
        return []
    with open(path) as file:
        return json.load(file)


def merge_runs(suite_path: str, curves: list[dict]) -> None:
    """Put ``curves`` into the suite's ``runs.json``, replacing the runs of the same key.

    Runs of one suite may finish in parallel processes, so the read-modify-write holds a lock (a file in the
    working folder, so that nothing but data appears under docs/results).
    """
    lock_path = os.path.join(WORK_DIR, suite_path, ".runs.lock")
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    with open(lock_path, "w") as lock, _locked(lock):
        runs = {run_key(curve): curve for curve in load_runs(suite_path)}
        runs.update((run_key(curve), curve) for curve in curves)
        ordered = [runs[key] for key in sorted(runs)]
        atomic_write_text(os.path.join(RESULTS_DIR, suite_path, RUNS_FILE), json.dumps(ordered, indent=1))


@contextlib.contextmanager
def _locked(file):
    fcntl.flock(file, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(file, fcntl.LOCK_UN)


mean = statistics.fmean
"""The arithmetic mean."""
std = statistics.pstdev
"""The population standard deviation (over seeds: the spread the tables give after ±)."""


def final_return(curve: dict) -> float:
    """The return at the run's last evaluation."""
    return curve["points"][-1]["return_mean"]


def training_seconds(curve: dict) -> float:
    """The run's training wall-clock (evaluations excluded)."""
    return curve["points"][-1]["wall_s"]


def return_at_seconds(curve: dict, seconds: float) -> float:
    """The return at the last evaluation at or before ``seconds`` of training (a hair of float slack)."""
    reached = [point for point in curve["points"] if point["wall_s"] <= seconds * 1.0001]
    return reached[-1]["return_mean"]


def group(curves: list[dict], task: str, algo: str) -> list[dict]:
    """The runs of ``algo`` (or variant) on ``task``, in seed order."""
    return sorted((c for c in curves if c["task"] == task and c["algo"] == algo), key=lambda c: c["seed"])


def return_at_trudi_seconds(curves: list[dict], runs: list[dict]) -> float | None:
    """Mean over ``runs`` of each one's return at its seed's TruDi training seconds (``None`` without either)."""
    values = []
    for curve in runs:
        trudi = [c for c in group(curves, curve["task"], "trudi") if c["seed"] == curve["seed"]]
        if not trudi:
            return None
        values.append(return_at_seconds(curve, training_seconds(trudi[0])))
    return mean(values) if values else None
