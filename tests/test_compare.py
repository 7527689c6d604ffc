"""scripts/compare.py on a TruDi run and a PPO run writes a PNG and a table with both; bad run dirs are one line."""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trudi.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
COMPARE = runpy.run_path(str(REPO / "scripts" / "compare.py"))
NUM_ENVS, NUM_STEPS, ITERATIONS = 4, 8, 3
TINY = {
    "trudi": ["agent.actor.hidden_dims=[16]", "agent.critic.hidden_dim=16", "agent.algorithm.num_mini_batches=2"],
    "ppo": ["agent.algorithm.num_learning_epochs=1"],
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """A 3-iteration TruDi run and PPO run on InvertedPendulum-v5, trained by scripts/train.py."""
    log_root = tmp_path_factory.mktemp("logs")
    train = runpy.run_path(str(REPO / "scripts" / "train.py"))["main"]
    found = {}
    for algo, overrides in TINY.items():
        torch.manual_seed(0)
        args = ["--task", "InvertedPendulum-v5", "--algo", algo, "--num_envs", str(NUM_ENVS)]
        args += [
            "--max_iterations",
            str(ITERATIONS),
            "--log_root",
            str(log_root),
            f"agent.num_steps_per_env={NUM_STEPS}",
        ]
        found[algo] = Path(train([*args, *overrides]))
    return found


def test_compare_writes_a_png_and_a_table_with_both_runs(runs, tmp_path):
    paths = COMPARE["main"]([str(runs["trudi"]), str(runs["ppo"]), "--out", str(tmp_path / "report")])
    assert Path(paths["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Path(paths["png"]).stat().st_size > 10_000
    table = Path(paths["md"]).read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and "_" in line.split("|")[1]]
    assert len(rows) == 2, table
    loaded = [COMPARE["load_run"](str(runs[algo])) for algo in ("trudi", "ppo")]
    for row, algorithm, run, run_data in zip(rows, ("TruDi", "PPO"), (runs["trudi"], runs["ppo"]), loaded, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0] == f"{run.parent.name}/{run.name}" and cells[1] == algorithm, row
        assert cells[2] == str(ITERATIONS), row
        assert cells[3] == str(ITERATIONS * NUM_ENVS * NUM_STEPS), row  # 3 iterations of 4 envs x 8 steps
        # The seconds cell is the run's measured time, rounded: PPO's 3 tiny iterations can round to 0.0.
        assert run_data.seconds[-1] > 0 and cells[4] == f"{run_data.seconds[-1]:.1f}", row
        assert float(cells[5]) > 0, row
    # The run with the smaller wall-clock budget reaches its final reward at the equal budget by definition.
    fastest = min(loaded, key=lambda run: run.seconds[-1])
    assert COMPARE["reward_at"](fastest, "seconds", fastest.seconds[-1]) == fastest.rewards[-1]


def test_env_steps_are_measured_when_env_yaml_is_missing(runs, tmp_path):
    copy = tmp_path / runs["ppo"].parent.name / runs["ppo"].name
    shutil.copytree(runs["ppo"], copy)
    (copy / "params" / "env.yaml").unlink()
    run = COMPARE["load_run"](str(copy))
    assert run.algorithm == "PPO"
    assert run.steps == COMPARE["load_run"](str(runs["ppo"])).steps
    assert run.steps[-1] == ITERATIONS * NUM_ENVS * NUM_STEPS


def test_default_out_is_the_working_directory(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    COMPARE["main"]([str(runs["trudi"])])
    assert (tmp_path / "compare.png").is_file() and (tmp_path / "compare.md").is_file()


@pytest.mark.parametrize("kind", ["missing", "no-events", "experiment-dir"])
def test_bad_run_dir_is_one_line(runs, tmp_path, kind):
    run_dir = {
        "missing": tmp_path / "nowhere",
        "no-events": runs["trudi"] / "params",
        "experiment-dir": runs["trudi"].parent,
    }[kind]
    with pytest.raises(ConfigError) as info:
        COMPARE["main"]([str(run_dir), "--out", str(tmp_path)])
    message = str(info.value)
    assert "\n" not in message and str(run_dir) in message, message
    if kind == "experiment-dir":
        assert runs["trudi"].name in message, message


def test_script_exits_with_one_line_and_no_traceback(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "source"), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "compare.py"), str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"[trudi] run directory {str(tmp_path / 'nowhere')!r} is invalid: no such directory."
    )
    assert not (tmp_path / "compare.png").exists()
