"""Adds ``rsl_rl_trudi_cfg_entry_point`` to every registered Isaac Lab task that has an RSL-RL PPO config.

Every task gets a TruDi config derived from its PPO config (:func:`trudi_cfg_from_ppo`) with TruDi's defaults for
every algorithm setting: rewards are normalised by the running RMS of the return, so no task needs its own critic
support, entropy coefficient or learning rate. The tasks in :data:`TASK_TUNING` also get hand-set values:

- **network sizes** small enough for CPU runs on the classic tasks;
- **action scale** of the joint-position tasks: Isaac Lab scales actions itself (joint-position offset = ``scale *
  a``), and TruDi's actions are ``action_scale * tanh(x)`` in ``(-action_scale, action_scale)``, unlike PPO's
  unbounded Gaussian; ``action_scale`` lets them reach an offset of about 1 rad (``1 / scale``). Not yet measured;
- **action scale** of Isaac-Cartpole (effort action, 100 N per unit): 2, measured. PPO's policy pushes past 100 N
  from the hardest initial states, and at 1 TruDi drops the pole from 1-6 % of them (docs/isaaclab.md, "Hand-set
  values").
"""

from __future__ import annotations

from collections.abc import Callable

import gymnasium as gym
from isaaclab_tasks.utils.parse_cfg import load_cfg_from_registry

from trudi.options import ActorOptions, CriticOptions
from trudi_isaaclab.agents import TruDiOnPolicyRunnerCfg, trudi_cfg_from_ppo

PPO_ENTRY_POINT = "rsl_rl_cfg_entry_point"
TRUDI_ENTRY_POINT = "rsl_rl_trudi_cfg_entry_point"
"""The agent key: ``--agent rsl_rl_trudi_cfg_entry_point`` (``scripts/train.py --algo trudi`` passes it)."""


def tuning(actor: dict | None = None, critic: dict | None = None) -> dict[str, dict]:
    """A task's hand-set ``actor`` and ``critic`` options, checked against their declarations now (at import).

    A misspelt key or a bad value fails when this module loads, with the one-line error naming it.
    """
    ActorOptions.validated(actor or {})
    CriticOptions.validated(critic or {})
    return {section: values for section, values in (("actor", actor), ("critic", critic)) if values}


_CLASSIC = {"actor": {"hidden_dims": [128, 128]}, "critic": {"hidden_dim": 256}}

TASK_TUNING: dict[str, dict[str, dict]] = {
    "Isaac-Cartpole": tuning(actor={"hidden_dims": [64, 64], "action_scale": 2.0}, critic={"hidden_dim": 128}),
    "Isaac-Ant": tuning(**_CLASSIC),
    "Isaac-Humanoid": tuning(**_CLASSIC),
    # joint-position actions, scale 0.5 (ANYmal-D, H1, G1) or 0.25 (Go2)
    **{
        f"Isaac-Velocity-{terrain}-{robot}": tuning(actor={"action_scale": 2.0})
        for robot in ("AnymalD", "H1", "G1")
        for terrain in ("Flat", "Rough")
    },
    **{f"Isaac-Velocity-{terrain}-UnitreeGo2": tuning(actor={"action_scale": 4.0}) for terrain in ("Flat", "Rough")},
}
"""Hand-set values per task id, applied over the derived config (see the module docstring for the rules)."""


def trudi_cfg_for_task(task_id: str) -> TruDiOnPolicyRunnerCfg:
    """The TruDi config of ``task_id``: derived from its PPO config, then the hand-set values of :data:`TASK_TUNING`."""
    ppo_cfg = load_cfg_from_registry(task_id, PPO_ENTRY_POINT)
    # A few camera tasks register a preset (several PPO variants); TruDi derives from its default variant.
    ppo_cfg = getattr(ppo_cfg, "default", ppo_cfg)
    cfg = trudi_cfg_from_ppo(ppo_cfg)
    for section, values in TASK_TUNING.get(task_id, {}).items():
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
