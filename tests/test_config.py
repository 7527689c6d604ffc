"""Every invalid config value fails at construction with one line naming the field, the value and what is allowed."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rsl_rl.runners import OnPolicyRunner

from trudi.algorithm import TruDi
from trudi.config import ConfigError
from trudi.envs import TwoModeBandit
from trudi.workflow import merge_agent_cfg

REPO = Path(__file__).resolve().parents[1]
TRAIN_SCRIPT = REPO / "scripts" / "train.py"
NUM_ENVS = 8


def base_cfg() -> dict:
    """A valid, tiny TruDi train config for the bandit (batch = 8 envs x 2 steps = 16)."""
    return {
        "seed": 1,
        "num_steps_per_env": 2,
        "max_iterations": 1,
        "save_interval": 50,
        "experiment_name": "config_test",
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {"class_name": "trudi.rsl_rl:TruDi", "num_learning_epochs": 1, "num_mini_batches": 2},
        "actor": {"class_name": "trudi.rsl_rl:DiffusionActor", "hidden_dims": [16, 16], "num_denoising_steps": 2},
        "critic": {"class_name": "trudi.rsl_rl:QCritic", "hidden_dim": 16, "num_bins": 11},
    }


def build(cfg: dict) -> OnPolicyRunner:
    """Construct through RSL-RL's stock runner, exactly as a user's script would."""
    return OnPolicyRunner(TwoModeBandit(num_envs=NUM_ENVS), cfg, log_dir=None, device="cpu")


def config_error(cfg: dict, via_runner: bool = True) -> str:
    """The message of the ConfigError that building ``cfg`` raises; it must be a single line."""
    with pytest.raises(ConfigError) as info:
        if via_runner:
            build(cfg)
        else:
            env = TwoModeBandit(num_envs=NUM_ENVS)
            cfg.setdefault("multi_gpu", None)
            TruDi.construct_algorithm(env.get_observations(), env, cfg, "cpu")
    message = str(info.value)
    assert "\n" not in message, f"error message spans several lines:\n{message}"
    return message


def with_value(section: str | None, key: str, value) -> dict:
    cfg = base_cfg()
    (cfg if section is None else cfg[section])[key] = value
    return cfg


def test_base_config_is_valid():
    torch.manual_seed(0)
    runner = build(base_cfg())
    runner.learn(num_learning_iterations=1)
    assert isinstance(runner.alg, TruDi)


# (section, key, value, substrings the message must contain: the dotted field, the value as written, what is allowed)
INVALID_VALUES = [
    ("actor", "num_denoising_steps", 0, ["actor.num_denoising_steps=0", ">= 1"]),
    ("algorithm", "kl_bound", 0, ["algorithm.kl_bound=0", "> 0"]),
    ("algorithm", "kl_bound", -1, ["algorithm.kl_bound=-1", "> 0"]),
    ("algorithm", "kl_bound", float("nan"), ["algorithm.kl_bound=nan", "> 0"]),
    ("critic", "num_bins", 1, ["critic.num_bins=1", ">= 2"]),
    ("algorithm", "kl_mode", "median", ["algorithm.kl_mode='median'", "'full'", "'mean'"]),
    ("algorithm", "kl_direction", "both", ["algorithm.kl_direction='both'", "'forward'", "'reverse'"]),
    ("algorithm", "mixed_precision", "fp16", ["algorithm.mixed_precision='fp16'", "'none'", "'bf16'"]),
    ("algorithm", "sarsa_bootstrap", "yes", ["algorithm.sarsa_bootstrap='yes'", "true or false"]),
    ("algorithm", "trust_region", "clip", ["algorithm.trust_region='clip'", "'gate'", "'penalty'", "'none'"]),
    ("algorithm", "kl_samples", "4", ["algorithm.kl_samples='4'", "integer"]),
    ("algorithm", "kl_samples", 0, ["algorithm.kl_samples=0", ">= 1"]),
    ("algorithm", "num_learning_epochs", 2.5, ["algorithm.num_learning_epochs=2.5", "integer"]),
    ("algorithm", "learning_rate", "3e-4", ["algorithm.learning_rate='3e-4'", "number"]),
    ("algorithm", "gamma", 1.5, ["algorithm.gamma=1.5", "<= 1"]),
    ("algorithm", "learn_entropy_coef", "yes", ["algorithm.learn_entropy_coef='yes'", "true or false"]),
    ("actor", "learn_friction", 1, ["actor.learn_friction=1", "true or false"]),
    ("actor", "hidden_dims", "256", ["actor.hidden_dims='256'", "list of positive integers"]),
    ("actor", "hidden_dims", [32, 0], ["actor.hidden_dims=[32, 0]", "list of positive integers"]),
    ("actor", "init_std", 0.0, ["actor.init_std=0.0", "> 0"]),
    ("actor", "schedule", "exp", ["actor.schedule='exp'", "'cosine'"]),
    ("actor", "activation", "elu", ["actor.activation='elu'", "'gelu'"]),
    ("critic", "hidden_dim", "64", ["critic.hidden_dim='64'", "integer"]),
    ("critic", "hl_gauss_sigma", -0.1, ["critic.hl_gauss_sigma=-0.1", "> 0"]),
    ("actor", "distribution_cfg", {"class_name": "GaussianDistribution"}, ["actor.distribution_cfg=", "None"]),
    ("algorithm", "rnd_cfg", {"weight": 1.0}, ["algorithm.rnd_cfg={'weight': 1.0}", "None"]),
    ("algorithm", "num_mini_batches", 17, ["algorithm.num_mini_batches=17", "<= num_envs * num_steps_per_env = 16"]),
    (None, "num_steps_per_env", 0, ["num_steps_per_env=0", ">= 1"]),
    (None, "num_steps_per_env", "32", ["num_steps_per_env='32'", "integer"]),
]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    INVALID_VALUES,
    ids=[f"{section or 'top'}.{key}={value!r}" for section, key, value, _ in INVALID_VALUES],
)
def test_invalid_value_fails_at_construction(section, key, value, expected):
    message = config_error(with_value(section, key, value))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


@pytest.mark.parametrize(
    ("section", "key", "value", "suggestion"),
    [
        ("algorithm", "kl_bund", 0.2, "kl_bound"),
        ("actor", "num_denoising_step", 4, "num_denoising_steps"),
        ("critic", "num_bin", 51, "num_bins"),
        ("algorithm", "entropy_coef", 0.01, "init_entropy_coef"),
    ],
)
def test_unknown_key_is_rejected(section, key, value, suggestion):
    message = config_error(with_value(section, key, value))
    assert f"{section}.{key}={value!r}" in message
    assert f"did you mean '{suggestion}'" in message
    assert "allowed:" in message


@pytest.mark.parametrize(
    ("value_min", "value_max", "expected"),
    [
        (5, 5, ["critic.value_min=5", "critic.value_max=5", "below"]),
        (6.0, 5.0, ["critic.value_min=6.0", "critic.value_max=5.0", "below"]),
        ("auto", 10.0, ["critic.value_min='auto'", "critic.value_max=10.0", "both"]),
        (-10.0, "auto", ["critic.value_min=-10.0", "critic.value_max='auto'", "both"]),
        ("Auto", 10.0, ["critic.value_min='Auto'", "'auto'"]),
        (float("-inf"), 10.0, ["critic.value_min=-inf", "finite"]),
        (-10.0, float("inf"), ["critic.value_max=inf", "finite"]),
    ],
)
def test_invalid_critic_support(value_min, value_max, expected):
    cfg = base_cfg()
    cfg["critic"] |= {"value_min": value_min, "value_max": value_max}
    message = config_error(cfg)
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_critic_fit_floor_above_the_bound_is_rejected():
    cfg = base_cfg()
    cfg["algorithm"] |= {"kl_bound_rule": "critic_fit", "kl_bound": 0.005}  # below the default floor 0.01
    message = config_error(cfg)
    for part in ["algorithm.kl_bound_min=0.01", "algorithm.kl_bound=0.005", "<= kl_bound"]:
        assert part in message, f"{part!r} not in {message!r}"
    cfg["algorithm"] |= {"kl_bound_rule": "fixed"}  # the floor is unused with a fixed bound
    assert build(cfg).alg.bound.value == 0.005


def test_a_progress_start_outside_its_range_widens_the_range():
    cfg = base_cfg()
    cfg["algorithm"] |= {"kl_bound_rule": "progress", "kl_bound": 0.2}  # above the default kl_bound_max 0.1
    bound = build(cfg).alg.bound
    assert (bound.value, bound.minimum, bound.maximum) == (0.2, 0.01, 0.2)


def test_auto_support_on_both_ends_is_valid():
    cfg = base_cfg()
    cfg["critic"] |= {"value_min": "auto", "value_max": "auto"}
    assert bool(build(cfg).alg.critic.support_pending)


def test_missing_num_steps_per_env():
    cfg = base_cfg()
    del cfg["num_steps_per_env"]
    message = config_error(cfg)
    assert "num_steps_per_env=None" in message and ">= 1" in message


@pytest.mark.parametrize(
    ("section", "class_name", "expected"),
    [
        ("actor", "trudi.rsl_rl:DiffusionActr", ["actor.class_name='trudi.rsl_rl:DiffusionActr'", "DiffusionActor"]),
        ("actor", "MLPModel", ["actor.class_name='MLPModel'", "DiffusionActor"]),
        ("critic", "trudi.rsl_rl:QCritc", ["critic.class_name='trudi.rsl_rl:QCritc'", "QCritic"]),
        ("critic", "MLPModel", ["critic.class_name='MLPModel'", "QCritic"]),
    ],
)
def test_wrong_model_class_is_rejected(section, class_name, expected):
    message = config_error(with_value(section, "class_name", class_name))
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_missing_actor_class_name():
    cfg = base_cfg()
    del cfg["actor"]["class_name"]
    assert "actor.class_name" in config_error(cfg)


def test_direct_construct_algorithm_validates_too():
    message = config_error(with_value("algorithm", "kl_bound", -1), via_runner=False)
    assert "algorithm.kl_bound=-1" in message


# ---------------------------------------------------------------------------------------------------------------------
# merge_agent_cfg: YAML file and agent.* overrides
# ---------------------------------------------------------------------------------------------------------------------


def test_merge_yaml_then_overrides(tmp_path):
    cfg = base_cfg()
    yaml_path = tmp_path / "agent.yaml"
    yaml_path.write_text("algorithm:\n  kl_bound: 0.2\n  kl_mode: mean\nactor:\n  num_denoising_steps: 4\n")
    merged = merge_agent_cfg(
        cfg, str(yaml_path), ["agent.algorithm.kl_bound=0.3", "agent.seed=7", "agent.actor.hidden_dims=[8,8]"]
    )
    assert isinstance(merged, dict) and isinstance(merged["algorithm"], dict)
    assert merged["algorithm"]["kl_bound"] == 0.3  # the override wins over the YAML
    assert merged["algorithm"]["kl_mode"] == "mean"
    assert merged["actor"]["num_denoising_steps"] == 4
    assert merged["actor"]["hidden_dims"] == [8, 8]
    assert merged["seed"] == 7
    assert merged["critic"] == cfg["critic"]
    assert merged["algorithm"]["class_name"] == "trudi.rsl_rl:TruDi"
    assert cfg == base_cfg(), "the input config must not be mutated"
    # The merged config builds.
    assert build(merged).alg.cfg.kl_bound == 0.3


def test_merge_without_yaml_or_overrides_is_identity():
    assert merge_agent_cfg(base_cfg()) == base_cfg()


@pytest.mark.parametrize(
    "override",
    ["algorithm.kl_bound=0.3", "agent.algorithm.kl_bound", "kl_bound=0.3", "agent.=3", "agent.actor.hidden_dims=[8,8"],
)
def test_malformed_override(override):
    with pytest.raises(ConfigError) as info:
        merge_agent_cfg(base_cfg(), None, [override])
    message = str(info.value)
    assert repr(override) in message and "agent.<key>=<value>" in message
    assert "\n" not in message


def test_missing_yaml_file(tmp_path):
    path = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError) as info:
        merge_agent_cfg(base_cfg(), path)
    assert f"--agent_cfg={path!r}" in str(info.value) and "no such file" in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("- 1\n- 2\n", "mapping"), ("algorithm: {kl_bound: 0.2\n", "YAML"), ("algorithm:\n  a: 1\n   b: 2\n", "YAML")],
    ids=["list", "unclosed-brace", "bad-indent"],
)
def test_yaml_that_is_not_a_mapping(tmp_path, text, expected):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        merge_agent_cfg(base_cfg(), str(path))
    message = str(info.value)
    assert f"--agent_cfg={str(path)!r}" in message and expected in message
    assert "\n" not in message


def test_merged_override_is_validated_at_construction():
    merged = merge_agent_cfg(base_cfg(), None, ["agent.algorithm.kl_bound=-1"])
    assert "algorithm.kl_bound=-1" in config_error(merged)


# ---------------------------------------------------------------------------------------------------------------------
# scripts/train.py
# ---------------------------------------------------------------------------------------------------------------------

TRAIN_ARGS = ["--task", "TwoModeBandit", "--num_envs", "8", "--max_iterations", "1"]


def test_train_script_main_raises_the_config_error(tmp_path):
    main = runpy.run_path(str(TRAIN_SCRIPT))["main"]
    with pytest.raises(ConfigError, match=r"algorithm\.kl_bound=-1 is invalid"):
        main([*TRAIN_ARGS, "--log_root", str(tmp_path), "agent.algorithm.kl_bound=-1"])
    with pytest.raises(SystemExit) as info:  # argparse: tokens that are neither flags nor agent.* overrides
        main([*TRAIN_ARGS, "--log_root", str(tmp_path), "algorithm.kl_bound=-1"])
    assert info.value.code == 2
    # No checkpoint was written for the rejected run.
    assert not list(tmp_path.rglob("model_*.pt"))


def run_train_script(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``scripts/train.py args`` in a subprocess with this checkout's ``source/`` first on the path."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "source"), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.run(
        [sys.executable, str(TRAIN_SCRIPT), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_train_script_exits_with_the_config_error(tmp_path):
    result = run_train_script([*TRAIN_ARGS, "--log_root", str(tmp_path), "agent.algorithm.kl_bound=-1"], tmp_path)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert "algorithm.kl_bound=-1 is invalid" in last_line, result.stderr[-2000:]
    assert not list(tmp_path.rglob("model_*.pt"))


@pytest.mark.parametrize("task", ["Mjlab-Velocity-Flat-Unitree-G1", "Mjlab-Velocity-Flat-Unitree-G1-TruDi"])
def test_train_script_names_mjlabs_own_command_for_an_mjlab_task(tmp_path, task):
    # mjlab tasks train through mjlab's `train` entry point, on their -TruDi variant (exts/trudi_mjlab/README.md).
    result = run_train_script(["--task", task], tmp_path)
    assert result.returncode != 0 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"[trudi] --task={task!r} is an mjlab task: "), line
    assert "train it with `train Mjlab-Velocity-Flat-Unitree-G1-TruDi` in a venv with mjlab" in line, line
    assert "exts/trudi_mjlab/README.md" in line, line
