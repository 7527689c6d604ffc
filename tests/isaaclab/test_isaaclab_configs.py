"""TruDi on Isaac Lab's task registry, against the real Isaac Lab 3 package (no simulator started)."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points

import gymnasium as gym
import pytest

from trudi.config import ConfigError
from trudi.from_ppo import TORCH_COMPILE_MODE
from trudi.rsl_rl import DiffusionActor, QCritic, TruDi
from trudi.workflow import check_train_cfg

pytest.importorskip("isaaclab_rl")

from isaaclab_tasks.utils import resolve_task_config  # noqa: E402
from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry  # noqa: E402

import trudi_isaaclab.tasks  # noqa: E402,F401  (what Isaac Lab's CLI loads through the entry point)
from trudi_isaaclab.agents import TruDiActorCfg, TruDiAlgorithmCfg, TruDiCriticCfg  # noqa: E402
from trudi_isaaclab.registration import (  # noqa: E402
    PPO_ENTRY_POINT,
    TASK_TUNING,
    TRUDI_ENTRY_POINT,
    tasks_with_trudi,
    trudi_cfg_for_task,
    tuning,
)
from trudi_isaaclab.workflow import resolve_agent_cfg, yaml_overrides  # noqa: E402

HAND_SET = [
    "Isaac-Cartpole",
    "Isaac-Ant",
    "Isaac-Humanoid",
    *(
        f"Isaac-Velocity-{terrain}-{robot}"
        for robot in ("AnymalD", "UnitreeGo2", "H1", "G1")
        for terrain in ("Flat", "Rough")
    ),
]


def test_entry_point_is_declared_for_isaaclab_cli():
    names = {ep.value for ep in entry_points(group="isaaclab.tasks")}
    assert "trudi_isaaclab.tasks" in names


def test_every_task_with_an_rsl_rl_config_has_the_trudi_key():
    with_ppo = sorted(spec.id for spec in gym.registry.values() if spec.kwargs.get(PPO_ENTRY_POINT) is not None)
    assert len(with_ppo) > 50  # Isaac Lab 3.0 registers 89; a broken import would leave only a few
    assert tasks_with_trudi() == with_ppo
    assert set(HAND_SET) <= set(TASK_TUNING) and set(TASK_TUNING) <= set(with_ppo)


def test_derived_configs_pass_every_trudi_check():
    failures = {}
    for task in tasks_with_trudi():
        cfg = load_cfg_from_registry(task, TRUDI_ENTRY_POINT)
        ppo = load_cfg_from_registry(task, PPO_ENTRY_POINT)
        ppo = getattr(ppo, "default", ppo)
        assert cfg.experiment_name == f"{ppo.experiment_name}_trudi"
        assert (cfg.num_steps_per_env, cfg.max_iterations) == (ppo.num_steps_per_env, ppo.max_iterations)
        assert (cfg.algorithm.gamma, cfg.algorithm.lam) == (ppo.algorithm.gamma, ppo.algorithm.lam)
        assert cfg.torch_compile_mode == TORCH_COMPILE_MODE
        assert cfg.algorithm.class_name == "trudi.rsl_rl:TruDi" and cfg.class_name == "OnPolicyRunner"
        cfg_dict = cfg.to_dict()
        cfg_dict["actor"].pop("stochastic", None)  # Isaac Lab's migration removes the legacy fields first
        cfg_dict["critic"].pop("stochastic", None)
        for key in ("init_noise_std", "noise_std_type", "state_dependent_std"):
            cfg_dict["actor"].pop(key, None)
        try:
            check_train_cfg(cfg_dict)
        except ConfigError as error:
            failures[task] = str(error)
    assert not failures


@pytest.mark.parametrize(
    ("cfg_class", "target", "skip"),
    [
        (TruDiActorCfg, DiffusionActor, {"obs", "obs_groups", "obs_set", "output_dim"}),
        (TruDiCriticCfg, QCritic, {"obs", "obs_groups", "obs_set", "action_dim"}),
        (TruDiAlgorithmCfg, TruDi, {"actor", "critic", "storage", "device", "multi_gpu_cfg", "rnd_cfg"}),
    ],
)
def test_config_classes_expose_every_option_with_its_default(cfg_class, target, skip):
    signature = inspect.signature(target.__init__)
    expected = {name: p.default for name, p in signature.parameters.items() if name != "self" and name not in skip}
    cfg = cfg_class().to_dict()
    cfg.pop("class_name")
    cfg.pop("stochastic", None)
    for legacy in ("init_noise_std", "noise_std_type", "state_dependent_std"):
        cfg.pop(legacy, None)
    assert set(cfg) == set(expected)
    mismatched = {k: (cfg[k], expected[k]) for k in expected if cfg[k] != expected[k] and k != "hidden_dims"}
    assert not mismatched
    if "hidden_dims" in expected:
        assert list(cfg["hidden_dims"]) == list(expected["hidden_dims"])


def test_resolve_task_config_applies_agent_overrides():
    _, agent = resolve_task_config(
        "Isaac-Cartpole",
        TRUDI_ENTRY_POINT,
        overrides=[
            "agent.algorithm.kl_bound=0.05",
            "agent.actor.num_denoising_steps=4",
            "agent.algorithm.kl_mode=mean",
            "agent.torch_compile_mode=reduce-overhead",  # TruDi's CUDA-graph mode, which PPO's field type lacks
        ],
    )
    assert (agent.algorithm.kl_bound, agent.actor.num_denoising_steps, agent.algorithm.kl_mode) == (0.05, 4, "mean")
    assert agent.torch_compile_mode == "reduce-overhead"
    assert agent.experiment_name == "cartpole_trudi"


def test_yaml_is_merged_over_the_registered_config(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(
        "algorithm:\n  class_name: trudi.rsl_rl:TruDi\n  kl_bound: 0.2\n  trust_region: penalty\n"
        "actor:\n  hidden_dims: [32, 32]\n  schedule: linear\nnum_steps_per_env: 8\n"
    )
    _, agent = resolve_agent_cfg("Isaac-Ant", "trudi", yaml_overrides(str(path)))
    assert (agent.algorithm.kl_bound, agent.algorithm.trust_region) == (0.2, "penalty")
    assert list(agent.actor.hidden_dims) == [32, 32] and agent.actor.schedule == "linear"
    assert agent.num_steps_per_env == 8
    assert agent.critic.hidden_dim == TASK_TUNING["Isaac-Ant"]["critic"]["hidden_dim"]  # untouched keys stay


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("algorithm:\n  kl_bound: -1.0\n", "algorithm.kl_bound=-1.0 is invalid"),
        ("algorithm:\n  kl_mode: reverse\n", "algorithm.kl_mode='reverse' is invalid"),
        ("actor:\n  num_denoising_steps: 0\n", "actor.num_denoising_steps=0 is invalid"),
        ("critic:\n  num_bins: 1\n", "critic.num_bins=1 is invalid"),
        ("critic:\n  value_min: 5.0\n  value_max: 1.0\n", "critic.value_min=5.0 is invalid"),
        ("algorithm:\n  bogus_key: 1\n", "bogus_key"),
        ("- just\n- a list\n", "must hold a mapping"),
    ],
)
def test_invalid_yaml_values_fail_with_one_clear_line(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        resolve_agent_cfg("Isaac-Cartpole", "trudi", yaml_overrides(str(path)))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_missing_yaml_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        yaml_overrides(str(tmp_path / "absent.yaml"))


@pytest.mark.parametrize("task", HAND_SET)
def test_hand_set_values_are_sizes_or_the_action_scale_rule(task):
    """Only network sizes and the joint-position action scale are per task; every algorithm setting is the default."""
    tuning = TASK_TUNING[task]
    assert "algorithm" not in tuning
    assert set(tuning.get("critic", {})) <= {"hidden_dim", "num_layers"}
    assert set(tuning.get("actor", {})) <= {"hidden_dims", "action_scale"}
    cfg = trudi_cfg_for_task(task)
    assert (cfg.critic.value_min, cfg.critic.value_max) == (TruDiCriticCfg().value_min, TruDiCriticCfg().value_max)


def test_a_misspelt_or_bad_tuning_value_fails_where_it_is_written():
    with pytest.raises(
        ConfigError, match=r"actor\.hidden_dimz=\[64\] is invalid: not an option .*did you mean 'hidden_dims'"
    ):
        tuning(actor={"hidden_dimz": [64]})
    with pytest.raises(ConfigError, match=r"critic\.hidden_dim=0 is invalid"):
        tuning(critic={"hidden_dim": 0})
