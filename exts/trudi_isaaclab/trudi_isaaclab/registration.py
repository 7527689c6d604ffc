"""Adds ``rsl_rl_trudi_cfg_entry_point`` to every registered Isaac Lab task that has an RSL-RL PPO config.

Every task gets a TruDi config derived from its PPO config (:func:`trudi_cfg_from_ppo`). The tasks in
:data:`TASK_TUNING` also get hand-set values:

- **critic support** ``[-v, v]``: per-step rewards are ``sum_i w_i f_i * step_dt`` and the bounded, positive terms
  (alive, velocity tracking ``exp(...)``, progress) give a discounted return of at most about
  ``B = sum(w_i > 0) * step_dt / (1 - gamma)``; ``v`` is ``2 B`` rounded up, the factor 2 leaving room for the
  unbounded penalty terms. ``tests/isaaclab`` recomputes ``B`` from each real env config.
- **action scale**: Isaac Lab scales actions itself (joint-position offset = ``scale * a``), so ``action_scale`` is
  chosen to let ``action_scale * tanh(x)`` reach an offset of about 1 rad (``1 / scale``), or stays 1 for effort
  actions whose scale already spans the actuator range (Cartpole: see its entry).
- **network sizes** small enough for CPU tests on the classic tasks.
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

from trudi_isaaclab.agents import TruDiOnPolicyRunnerCfg, trudi_cfg_from_ppo

PPO_ENTRY_POINT = "rsl_rl_cfg_entry_point"
TRUDI_ENTRY_POINT = "rsl_rl_trudi_cfg_entry_point"
"""The agent key: ``--agent rsl_rl_trudi_cfg_entry_point`` (``scripts/train.py --algo trudi`` passes it)."""

_CLASSIC_ACTOR = {"hidden_dims": [128, 128], "action_scale": 1.0}
_CLASSIC_CRITIC = {"hidden_dim": 256}

TASK_TUNING: dict[str, dict[str, dict]] = {
    # Effort action, scale 100 N; B = 1.0 * (1/60) / 0.01 = 1.7. Measured on CPU (2026-11-24): with action_scale 1
    # and alpha_0 = 0.01 the SDE noise (about 40 N) and an entropy bonus larger than the dt-scaled reward (0.017 per
    # step) kept the pole from being balanced; 30 N and alpha_0 = 3e-4 learn (deterministic return -20.4 -> -1.5).
    "Isaac-Cartpole": {
        "actor": {"hidden_dims": [64, 64], "action_scale": 0.3},
        "critic": {"hidden_dim": 128, "value_min": -4.0, "value_max": 4.0},
        "algorithm": {
            "num_mini_batches": 4,
            "num_learning_epochs": 2,
            "learning_rate": 1e-3,
            "init_entropy_coef": 3e-4,
        },
    },
    # effort actions; B = 2.1 * (1/60) / 0.01 = 3.5 (Ant), 3.6 * (1/60) / 0.01 = 6.0 (Humanoid)
    "Isaac-Ant": {"actor": _CLASSIC_ACTOR, "critic": {**_CLASSIC_CRITIC, "value_min": -8.0, "value_max": 8.0}},
    "Isaac-Humanoid": {"actor": _CLASSIC_ACTOR, "critic": {**_CLASSIC_CRITIC, "value_min": -12.0, "value_max": 12.0}},
    # joint-position actions, scale 0.5 (ANYmal-D, H1, G1) or 0.25 (Go2); step_dt = 0.02
    "Isaac-Velocity-Flat-AnymalD": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -8.0, "value_max": 8.0}},
    "Isaac-Velocity-Rough-AnymalD": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -8.0, "value_max": 8.0}},
    "Isaac-Velocity-Flat-UnitreeGo2": {
        "actor": {"action_scale": 4.0},
        "critic": {"value_min": -10.0, "value_max": 10.0},
    },
    "Isaac-Velocity-Rough-UnitreeGo2": {
        "actor": {"action_scale": 4.0},
        "critic": {"value_min": -10.0, "value_max": 10.0},
    },
    "Isaac-Velocity-Flat-H1": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -12.0, "value_max": 12.0}},
    "Isaac-Velocity-Rough-H1": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -10.0, "value_max": 10.0}},
    "Isaac-Velocity-Flat-G1": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -12.0, "value_max": 12.0}},
    "Isaac-Velocity-Rough-G1": {"actor": {"action_scale": 2.0}, "critic": {"value_min": -14.0, "value_max": 14.0}},
}
"""Hand-set values per task id, applied over the derived config (see the module docstring for the rules)."""


def trudi_cfg_for_task(task_id: str) -> TruDiOnPolicyRunnerCfg:
    """The TruDi config of ``task_id``: derived from its PPO config, then the hand-set values of :data:`TASK_TUNING`.

    Tasks without hand-set values use ``value_min = value_max = "auto"`` (support from a warm-up rollout).
    """
    ppo_cfg = load_cfg_from_registry(task_id, PPO_ENTRY_POINT)
    # A few camera tasks register a preset (several PPO variants); TruDi derives from its default variant.
    ppo_cfg = getattr(ppo_cfg, "default", ppo_cfg)
    cfg = trudi_cfg_from_ppo(ppo_cfg)
    tuning = TASK_TUNING.get(task_id)
    if tuning is None:
        cfg.critic.value_min = cfg.critic.value_max = "auto"
        return cfg
    for section, values in tuning.items():
        for key, value in values.items():
            setattr(getattr(cfg, section), key, value)
    return cfg


def _entry_point(task_id: str) -> Callable[[], TruDiOnPolicyRunnerCfg]:
    """A zero-argument callable for the registry: Isaac Lab calls it when the TruDi agent config is requested."""

    def trudi_cfg_entry_point() -> TruDiOnPolicyRunnerCfg:
        return trudi_cfg_for_task(task_id)

    return trudi_cfg_entry_point


def register_trudi_agents() -> list[str]:
    """Add the TruDi agent key to every registered task with a PPO config; returns the task ids, sorted.

    Idempotent, and it leaves a task's own ``rsl_rl_trudi_cfg_entry_point`` alone if it already has one.
    """
    registered = []
    for spec in gym.registry.values():
        if spec.kwargs.get(PPO_ENTRY_POINT) is None:
            continue
        spec.kwargs.setdefault(TRUDI_ENTRY_POINT, _entry_point(spec.id))
        registered.append(spec.id)
    return sorted(registered)


def tasks_with_trudi() -> list[str]:
    """Registered task ids that have a TruDi agent config."""
    return sorted(spec.id for spec in gym.registry.values() if spec.kwargs.get(TRUDI_ENTRY_POINT) is not None)
