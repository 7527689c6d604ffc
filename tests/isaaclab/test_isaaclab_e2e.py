"""End to end on real Isaac Lab 3 (kit-less, Newton physics, CPU): scripts/train.py and scripts/play.py.

The runs share one working directory and build on each other (train -> play -> resume), so they are one test each
in file order. Measured on the 2-core CPU (2026-12-02, defaults of that day): TruDi on Isaac-Cartpole, 256 envs x 30
iterations, raised the deterministic return from -14.4 (untrained, model_0) to 3.7 in about 2 minutes of training
(100 iterations, as this test ran before, took 8 minutes of the CI's time for the same verdict).
"""

from __future__ import annotations

import glob
import os
import re

import pytest
from conftest import played_return, run_script

from trudi.from_ppo import TORCH_COMPILE_MODE

pytest.importorskip("isaaclab_rl")

CPU = ["--device", "cpu"]
EAGER = ["agent.torch_compile_mode=null"]
"""The registered configs compile the update (a long run's default). These runs of a few iterations would spend most
of their time compiling, each for its own shapes, so they run eager; the Isaac-Ant run keeps the registered default."""


def _latest_run(workdir: str, experiment: str) -> str:
    runs = sorted(glob.glob(os.path.join(workdir, "logs", "rsl_rl", experiment, "*")))
    assert runs, f"no run of {experiment} under {workdir}"
    return runs[-1]


def test_trudi_trains_on_cartpole_and_beats_the_untrained_policy(workdir, asset_root):
    output = run_script(
        "train.py",
        ["--task", "Isaac-Cartpole", "--algo", "trudi", "--num_envs", "256", *CPU, "--max_iterations", "30", *EAGER],
        workdir,
        asset_root,
    )
    assert "Learning iteration 29/30" in output
    run = _latest_run(workdir, "cartpole_trudi")
    assert os.path.isfile(os.path.join(run, "params", "agent.yaml"))
    assert {"model_0.pt", "model_29.pt"} <= set(os.listdir(run))

    play = ["--task", "Isaac-Cartpole", "--algo", "trudi", "--num_envs", "64", "--episodes", "64", *CPU]
    untrained = played_return(run_script("play.py", [*play, "--checkpoint", "model_0.pt"], workdir, asset_root))
    trained_output = run_script("play.py", [*play, "--checkpoint", "latest"], workdir, asset_root)
    trained = played_return(trained_output)
    print(f"deterministic return: untrained {untrained:.2f}, trained {trained:.2f}")
    assert trained > untrained + 8.0

    # play exported both formats next to the checkpoint, and both reproduce the torch policy
    exported = os.path.join(run, "exported")
    assert os.path.isfile(os.path.join(exported, "policy.pt")) and os.path.isfile(os.path.join(exported, "policy.onnx"))
    parity = re.search(r"max abs diff vs torch: \{'jit': ([\d.e+-]+), 'onnx': ([\d.e+-]+)\}", trained_output)
    assert parity, trained_output[-2000:]
    assert float(parity.group(1)) <= 1e-5 and float(parity.group(2)) <= 1e-5


def test_resume_continues_the_iteration_count(workdir, asset_root):
    previous = _latest_run(workdir, "cartpole_trudi")
    run_script(
        "train.py",
        ["--task", "Isaac-Cartpole", "--algo", "trudi", "--num_envs", "64", *CPU, "--max_iterations", "2"]
        + ["--checkpoint", "latest", *EAGER],
        workdir,
        asset_root,
    )
    resumed = _latest_run(workdir, "cartpole_trudi")
    assert resumed != previous
    iterations = [int(re.findall(r"\d+", name)[0]) for name in os.listdir(resumed) if name.startswith("model_")]
    # RSL-RL resumes at the saved iteration (29) and runs iterations 29 and 30, saving model_30.pt
    assert max(iterations) == 30


def test_ppo_runs_through_the_same_script(workdir, asset_root):
    output = run_script(
        "train.py",
        ["--task", "Isaac-Cartpole", "--algo", "ppo", "--num_envs", "64", *CPU, "--max_iterations", "3"],
        workdir,
        asset_root,
    )
    assert "Learning iteration 2/3" in output
    assert os.path.isfile(os.path.join(_latest_run(workdir, "cartpole"), "model_2.pt"))


@pytest.mark.parametrize(
    ("task", "experiment", "compiled"), [("Isaac-Ant", "ant_trudi", True), ("Isaac-Humanoid", "humanoid_trudi", False)]
)
def test_trudi_runs_a_couple_of_iterations(workdir, asset_root, task, experiment, compiled):
    overrides = [] if compiled else EAGER
    output = run_script(
        "train.py",
        ["--task", task, "--algo", "trudi", "--num_envs", "64", *CPU, "--max_iterations", "2", *overrides],
        workdir,
        asset_root,
    )
    assert "Learning iteration 1/2" in output
    assert "Mean critic loss" in output and "Mean trust_region/kl_mean loss" in output
    run = _latest_run(workdir, experiment)
    assert os.path.isfile(os.path.join(run, "model_1.pt"))
    with open(os.path.join(run, "params", "agent.yaml")) as agent_yaml:
        assert f"torch_compile_mode: {TORCH_COMPILE_MODE if compiled else 'null'}\n" in agent_yaml.read()


def test_bad_agent_value_fails_before_the_simulator_starts(workdir, asset_root):
    import subprocess
    import sys

    from conftest import SCRIPTS

    result = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, "train.py"), "--task", "Isaac-Cartpole", *CPU]
        + ["agent.algorithm.kl_bound=-0.5"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "ISAACSIM_ASSET_ROOT": asset_root},
    )
    assert result.returncode != 0
    assert "algorithm.kl_bound=-0.5 is invalid" in result.stderr
    assert "Learning iteration" not in result.stdout
