"""Missing, truncated, garbage and foreign checkpoints end play.py and train.py --resume in one line naming them."""

from __future__ import annotations

import os
import runpy
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg
from trudi.workflow import CheckpointError, load_checkpoint, read_checkpoint, resolve_checkpoint

REPO = Path(__file__).resolve().parents[1]
TASK_ARGS = ["--task", "TwoModeBandit", "--num_envs", "8"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A real TruDi run on the bandit with model_0.pt, model_1.pt and model_2.pt."""
    log_root = tmp_path_factory.mktemp("logs")
    train = runpy.run_path(str(REPO / "scripts" / "train.py"))["main"]
    torch.manual_seed(0)
    log_dir = train([*TASK_ARGS, "--max_iterations", "3", "--log_root", str(log_root), "agent.save_interval=1"])
    assert {"model_0.pt", "model_1.pt", "model_2.pt"} <= set(os.listdir(log_dir))
    return Path(log_dir)


@pytest.fixture
def log_root(run_dir, tmp_path) -> Path:
    """A copy of the run's log tree, for tests that damage its checkpoints."""
    root = tmp_path / "logs"
    shutil.copytree(run_dir.parents[1], root)
    return root


def _newest(log_root: Path) -> Path:
    return Path(resolve_checkpoint(str(log_root / "two_mode_bandit_trudi"), ".*", "latest"))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "source"), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _one_line_error(result: subprocess.CompletedProcess, *names: str) -> str:
    """The script failed with a single error line naming ``names``, and no traceback."""
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("[trudi] "), result.stderr[-3000:]
    for name in names:
        assert name in last_line, last_line
    return last_line


def test_play_latest_names_the_truncated_file_and_the_earlier_checkpoint(log_root):
    newest = _newest(log_root)
    _truncate(newest)
    result = _run("play.py", *TASK_ARGS, "--episodes", "2", "--log_root", str(log_root), cwd=log_root.parent)
    line = _one_line_error(result, str(newest), str(newest.with_name("model_1.pt")))
    assert "not a complete torch file" in line


def test_play_names_a_garbage_file(log_root, tmp_path):
    garbage = tmp_path / "model_7.pt"
    garbage.write_bytes(os.urandom(4096))
    result = _run("play.py", *TASK_ARGS, "--checkpoint", str(garbage), "--log_root", str(log_root), cwd=tmp_path)
    assert "not a complete torch file" in _one_line_error(result, str(garbage))


def test_play_names_a_missing_file(log_root, tmp_path):
    play = runpy.run_path(str(REPO / "scripts" / "play.py"))["main"]
    missing = tmp_path / "nowhere" / "model_3.pt"
    with pytest.raises(CheckpointError, match="no such file") as info:
        play([*TASK_ARGS, "--checkpoint", str(missing), "--log_root", str(log_root)])
    assert str(missing) in str(info.value)
    with pytest.raises(CheckpointError, match=r"no file in .* matches it; there: model_0.pt, model_1.pt"):
        play([*TASK_ARGS, "--checkpoint", "model_9.pt", "--log_root", str(log_root)])


def test_resume_names_the_truncated_file_and_starts_no_run(log_root):
    newest = _newest(log_root)
    _truncate(newest)
    runs_before = sorted(os.listdir(log_root / "two_mode_bandit_trudi"))
    result = _run(
        "train.py", *TASK_ARGS, "--max_iterations", "1", "--resume", "--log_root", str(log_root), cwd=log_root.parent
    )
    _one_line_error(result, str(newest), str(newest.with_name("model_1.pt")))
    assert sorted(os.listdir(log_root / "two_mode_bandit_trudi")) == runs_before


# In-process: the same helper, on the other kinds of bad file.


def _runner() -> OnPolicyRunner:
    return OnPolicyRunner(TwoModeBandit(num_envs=8), train_cfg("TwoModeBandit", "trudi"), log_dir=None)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "not a complete torch file"),
        (b"hello, I am not a checkpoint\n", "not a complete torch file"),
        ({"weights": torch.ones(2)}, "lacks 'actor_state_dict'"),
        (torch.ones(2), "holds a Tensor"),
    ],
    ids=["empty", "text", "foreign-dict", "tensor"],
)
def test_bad_file_is_one_line_naming_it(tmp_path, content, expected):
    path = tmp_path / "model_5.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(_runner(), str(path), load_cfg={"actor": True})
    message = str(info.value)
    assert "\n" not in message and str(path) in message and expected in message, message
    assert "there is no earlier checkpoint" in message


def test_checkpoint_of_other_models_is_one_line(run_dir, tmp_path):
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"]["hidden_dims"] = [8]
    runner = OnPolicyRunner(TwoModeBandit(num_envs=8), cfg, log_dir=None)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(runner, str(run_dir / "model_2.pt"))
    message = str(info.value)
    assert "\n" not in message and "does not fit the configured models" in message, message


def test_a_good_checkpoint_loads_and_reads(run_dir):
    runner = _runner()
    load_checkpoint(runner, str(run_dir / "model_2.pt"))
    assert runner.current_learning_iteration == 2
    assert "actor_state_dict" in read_checkpoint(str(run_dir / "model_1.pt"))


# A real kill in the middle of a save. The child process writes model_0.pt, then caps its file size at half of that
# (RLIMIT_FSIZE) and restores SIGXFSZ's default action, which CPython ignores: the kernel kills the process with that
# signal at the write that crosses the cap, halfway through writing model_1.pt. This is how the stock runner's
# torch.save, which Isaac Lab's and mjlab's own flows use, behaves under a kill, against TruDi's runner.
_KILLED_SAVE = """
import os, resource, signal, sys
import torch
from rsl_rl.runners import OnPolicyRunner as StockRunner
from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner as TruDiRunner
from trudi.tasks import train_cfg

runner_class, run_dir = {"stock": StockRunner, "trudi": TruDiRunner}[sys.argv[1]], sys.argv[2]
torch.manual_seed(0)
runner = runner_class(TwoModeBandit(num_envs=8), train_cfg("TwoModeBandit", "trudi"), log_dir=None)
runner.learn(1)
runner.save(os.path.join(run_dir, "model_0.pt"))
cap = os.path.getsize(os.path.join(run_dir, "model_0.pt")) // 2
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
runner.current_learning_iteration = 1
runner.save(os.path.join(run_dir, "model_1.pt"))
"""


@pytest.mark.parametrize("runner", ["stock", "trudi"])
def test_kill_during_save(runner, tmp_path):
    run_dir = tmp_path / "two_mode_bandit_trudi" / "run"
    run_dir.mkdir(parents=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "source"), os.environ.get("PYTHONPATH")])),
    }
    child = subprocess.run(
        [sys.executable, "-c", _KILLED_SAVE, runner, str(run_dir)], capture_output=True, text=True, env=env, timeout=300
    )
    assert child.returncode == -signal.SIGXFSZ, child.stderr[-3000:]  # killed by the kernel, inside the second save
    first = run_dir / "model_0.pt"
    assert read_checkpoint(str(first))["iter"] == 0  # the earlier checkpoint is whole either way
    second = run_dir / "model_1.pt"
    if runner == "stock":
        # torch.save writes in place: the kill leaves a truncated model_1.pt, which `latest` picks and which the
        # one-line error names together with the earlier checkpoint.
        assert 0 < second.stat().st_size <= first.stat().st_size // 2
        assert _newest(tmp_path) == second
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(_runner(), str(second))
        message = str(info.value)
        assert "not a complete torch file" in message and str(first) in message, message
    else:
        # TruDi's runner writes a temporary file and renames it: no model_1.pt, and `latest` is the whole model_0.pt.
        assert not second.exists()
        assert [name for name in os.listdir(run_dir) if name.startswith(".tmp_")]  # the interrupted write
        assert _newest(tmp_path) == first
