"""The mjlab extension: ``-TruDi`` task registration, its configs, and a real train -> play round trip on CPU.

Runs in ``.venv-mjlab`` (recipe in exts/trudi_mjlab/README.md); skipped where mjlab is not installed. Training runs
through mjlab's own ``train`` console script in a subprocess, so the task is found the way a user finds it: through
the ``mjlab.tasks`` entry point. Play runs mjlab's ``play`` entry point in-process with its interactive viewer
replaced by a bounded headless loop.
"""

# ruff: noqa: E402  (the imports below need mjlab, so they follow the importorskip)

from __future__ import annotations

import pytest

# A submodule: where mjlab is not installed, "mjlab" alone would import this test folder (tests/ is on the path).
pytest.importorskip("mjlab.tasks")

import dataclasses
import inspect
import math
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import mjlab.tasks  # noqa: F401  (registers mjlab's built-in tasks, as its scripts do; imported above already)
import numpy as np
import onnx
import onnxruntime
import torch
import yaml
from mjlab.rl import RslRlBaseRunnerCfg
from mjlab.scripts import play
from mjlab.tasks.registry import list_tasks, load_env_cfg, load_rl_cfg, load_runner_cls
from rsl_rl.utils import resolve_callable
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from trudi.from_ppo import TORCH_COMPILE_MODE
from trudi.rsl_rl import DiffusionActor, QCritic, TruDi
from trudi_mjlab.agents import TruDiActorCfg, TruDiAlgorithmCfg, TruDiCriticCfg
from trudi_mjlab.registration import BASE_TASKS, trudi_task_id

G1_TASK = "Mjlab-Velocity-Flat-Unitree-G1-TruDi"
EXPECTED_BASE_TASKS = {
    "Mjlab-Velocity-Flat-Unitree-G1",
    "Mjlab-Velocity-Rough-Unitree-G1",
    "Mjlab-Velocity-Flat-Unitree-Go1",
    "Mjlab-Velocity-Rough-Unitree-Go1",
    "Mjlab-Cartpole-Balance",
    "Mjlab-Cartpole-Swingup",
}
PLAY_STEPS = 20
TRAIN_TIMEOUT_S = 900
EAGER = ("--agent.torch-compile-mode", "None")
"""The registered configs compile the update (a long run's default). A run of 2 iterations would spend most of its time
compiling, so the G1 run is eager; the cartpole run keeps the registered default."""


def _without_addresses(cfg: object) -> str:
    # Env configs hold lambdas built per factory call; equal configs differ only in those objects' addresses.
    return re.sub(r" at 0x[0-9a-f]+", "", repr(cfg))


def _train(task: str, log_root: Path, *overrides: str) -> tuple[Path, str]:
    """Run mjlab's ``train`` console script for 2 iterations on CPU; return the run directory and the output."""
    train_script = Path(sys.executable).parent / "train"
    command = [
        str(train_script),
        task,
        "--env.scene.num-envs",
        "16",
        "--agent.max-iterations",
        "2",
        "--gpu-ids",
        "None",
        "--agent.logger",
        "tensorboard",
        "--log-root",
        str(log_root),
        *overrides,
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TRAIN_TIMEOUT_S)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{output[-6000:]}"
    run_dirs = sorted(log_root.glob("*/*/params"))
    assert len(run_dirs) == 1, f"expected one run directory under {log_root}, found {run_dirs}"
    return run_dirs[0].parent, output


# ---------------------------------------------------------------- registration and configs


def test_trudi_tasks_come_through_the_mjlab_entry_point() -> None:
    loaded = {ep.name: ep.value for ep in entry_points().select(group="mjlab.tasks")}
    assert loaded.get("trudi") == "trudi_mjlab.tasks"


def test_every_velocity_and_cartpole_task_has_a_trudi_variant() -> None:
    tasks = set(list_tasks())
    base_tasks = {t for t in tasks if t.startswith(("Mjlab-Velocity-", "Mjlab-Cartpole-")) and not t.endswith("-TruDi")}
    assert base_tasks >= EXPECTED_BASE_TASKS
    assert set(BASE_TASKS) == base_tasks, "a velocity/cartpole task of mjlab has no TruDi variant"
    for task in base_tasks:
        variant = trudi_task_id(task)
        assert variant in tasks
        assert load_runner_cls(variant) is load_runner_cls(task)
        for play_mode in (False, True):
            assert _without_addresses(load_env_cfg(variant, play_mode)) == _without_addresses(
                load_env_cfg(task, play_mode)
            ), f"{variant} (play={play_mode}) does not use the environment of {task}"


@pytest.mark.parametrize("task", sorted(EXPECTED_BASE_TASKS))
def test_trudi_config_resolves_to_trudi_classes_and_keeps_the_task_settings(task: str) -> None:
    ppo_cfg = load_rl_cfg(task)
    cfg = dataclasses.asdict(load_rl_cfg(trudi_task_id(task)))
    assert resolve_callable(cfg["algorithm"]["class_name"]) is TruDi
    assert resolve_callable(cfg["actor"]["class_name"]) is DiffusionActor
    assert resolve_callable(cfg["critic"]["class_name"]) is QCritic
    assert cfg["experiment_name"] == f"{ppo_cfg.experiment_name}_trudi"
    # Every runner field of mjlab's is the task's (trudi.from_ppo.RUNNER_FIELDS covers them all).
    ppo_dict = dataclasses.asdict(ppo_cfg)
    for key in {f.name for f in dataclasses.fields(RslRlBaseRunnerCfg)} - {"experiment_name"}:
        assert cfg[key] == ppo_dict[key], key
    # RSL-RL's runner-level compile key, which mjlab's runner config lacks, reaches the runner's dict.
    assert cfg["torch_compile_mode"] == TORCH_COMPILE_MODE
    assert (cfg["algorithm"]["gamma"], cfg["algorithm"]["lam"]) == (ppo_cfg.algorithm.gamma, ppo_cfg.algorithm.lam)
    # Rewards are normalised: every task uses the default support, no per-task value range.
    assert (cfg["critic"]["value_min"], cfg["critic"]["value_max"]) == (-10.0, 10.0)
    # mjlab's runner strips only None-valued cnn/distribution/rnn keys; TruDi rejects any other foreign key.
    assert not {"cnn_cfg", "distribution_cfg", "rnn_type"} & (cfg["actor"].keys() | cfg["critic"].keys())


@pytest.mark.parametrize(
    ("cfg_class", "target", "set_by_runner"),
    [
        (TruDiActorCfg, DiffusionActor, {"obs", "obs_groups", "obs_set", "output_dim", "distribution_cfg"}),
        (TruDiCriticCfg, QCritic, {"obs", "obs_groups", "obs_set", "action_dim", "distribution_cfg"}),
        (TruDiAlgorithmCfg, TruDi, {"actor", "critic", "storage", "device", "multi_gpu_cfg", "rnd_cfg"}),
    ],
)
def test_config_fields_mirror_the_constructor(cfg_class: type, target: type, set_by_runner: set[str]) -> None:
    params = {name: p for name, p in inspect.signature(target).parameters.items() if name not in set_by_runner}
    defaults = {f.name: f.default for f in dataclasses.fields(cfg_class) if f.name != "class_name"}
    assert defaults.keys() == params.keys()
    for name, default in defaults.items():
        expected = params[name].default
        assert (tuple(default) if isinstance(default, tuple) else default) == (
            tuple(expected) if isinstance(expected, list | tuple) else expected
        ), name


# ---------------------------------------------------------------- train and play on CPU


@pytest.fixture(scope="module")
def g1_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-iteration G1 run with a CLI override that must reach TruDi.

    Only a non-architectural option is overridden: mjlab's ``play`` rebuilds the networks from the registered config.
    """
    run_dir, _ = _train(G1_TASK, tmp_path_factory.mktemp("g1_logs"), "--agent.algorithm.kl-bound", "0.2", *EAGER)
    return run_dir


def test_g1_trains_two_iterations_on_cpu(g1_run: Path) -> None:
    assert g1_run.parent.name == "g1_velocity_trudi"
    # mjlab writes tuples with a python/tuple tag, which the full loader reads.
    agent = yaml.full_load((g1_run / "params" / "agent.yaml").read_text())
    assert agent["algorithm"]["class_name"] == "trudi.rsl_rl:TruDi"
    assert agent["algorithm"]["kl_bound"] == 0.2
    assert agent["torch_compile_mode"] is None

    checkpoint = torch.load(g1_run / "model_1.pt", map_location="cpu", weights_only=False)
    assert checkpoint["iter"] == 1
    assert {"old_actor_state_dict", "duals_state_dict"} <= checkpoint.keys()
    # The "auto" critic support was set from the first rollout.
    assert not checkpoint["critic_state_dict"]["support_pending"]
    value_min, value_max = checkpoint["critic_state_dict"]["value_range"].tolist()
    assert math.isfinite(value_min) and math.isfinite(value_max) and value_min < value_max

    events = EventAccumulator(str(g1_run))
    events.Reload()
    for tag in ("Loss/critic", "Loss/actor", "Loss/trust_region/kl_mean", "Loss/entropy/coef"):
        scalars = events.Scalars(tag)
        assert [s.step for s in scalars] == [0, 1], tag
        assert all(math.isfinite(s.value) for s in scalars), tag

    # VelocityOnPolicyRunner exports <run>/<run>.onnx with deployment metadata on every save (failures are only
    # printed, so the file is the evidence).
    model = onnx.load(g1_run / f"{g1_run.name}.onnx")
    metadata = {p.key for p in model.metadata_props}
    assert {"joint_names", "action_scale", "observation_names"} <= metadata


def test_g1_plays_back_the_checkpoint(g1_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    played: list[tuple[torch.Tensor, torch.Tensor]] = []

    class HeadlessViewer:
        """Stands in for mjlab's interactive viewer: its obs -> policy -> step cycle, for a fixed number of steps."""

        def __init__(self, env, policy, **kwargs) -> None:
            self.env, self.policy = env, policy

        def run(self) -> None:
            for _ in range(PLAY_STEPS):
                with torch.no_grad():
                    obs = self.env.get_observations()
                    actions = self.policy(obs)
                played.append((obs["actor"].clone(), actions.clone()))
                self.env.step(actions)

    checkpoint = g1_run / "model_1.pt"
    argv = ["play", G1_TASK, "--checkpoint-file", str(checkpoint), "--num-envs", "2", "--device", "cpu"]
    monkeypatch.setattr(sys, "argv", [*argv, "--viewer", "viser"])
    monkeypatch.setattr(play, "ViserPlayViewer", HeadlessViewer)
    play.main()

    actions = torch.stack([taken for _, taken in played])
    assert actions.shape[:2] == (PLAY_STEPS, 2)
    assert torch.isfinite(actions).all()
    assert actions.abs().max() <= 1.0  # action_scale * tanh(x_N)

    # The ONNX policy exported at save time (the deterministic ODE chain) takes the actions play took.
    session = onnxruntime.InferenceSession(str(g1_run / f"{g1_run.name}.onnx"))
    input_name = session.get_inputs()[0].name
    for obs, taken in played[:3]:
        for row in range(obs.shape[0]):
            (exported,) = session.run(None, {input_name: obs[row : row + 1].numpy()})
            np.testing.assert_allclose(exported[0], taken[row].numpy(), atol=1e-4)


def test_cartpole_trains_two_iterations_on_cpu(tmp_path: Path) -> None:
    run_dir, output = _train("Mjlab-Cartpole-Balance-TruDi", tmp_path)
    assert run_dir.parent.name == "cartpole_trudi"
    assert torch.load(run_dir / "model_1.pt", map_location="cpu", weights_only=False)["iter"] == 1
    assert "Learning iteration 1/2" in output
    agent = yaml.full_load((run_dir / "params" / "agent.yaml").read_text())
    assert agent["torch_compile_mode"] == TORCH_COMPILE_MODE
