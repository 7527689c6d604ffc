"""``-TruDi`` variants of mjlab's velocity and cartpole tasks; :mod:`trudi_mjlab.tasks` registers them.

mjlab imports ``trudi_mjlab.tasks`` (its ``mjlab.tasks`` entry point) while ``import mjlab`` runs, before its
built-in tasks are registered, and its registry refuses duplicate ids. So the variants are built from the same
env-config and PPO-config factory functions the built-in tasks use, never looked up by task id, and are registered
under ids of their own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mjlab.envs import ManagerBasedRlEnvCfg
from mjlab.rl import RslRlOnPolicyRunnerCfg
from mjlab.tasks.cartpole.cartpole_env_cfg import (
    cartpole_balance_env_cfg,
    cartpole_ppo_runner_cfg,
    cartpole_swingup_env_cfg,
)
from mjlab.tasks.registry import register_mjlab_task
from mjlab.tasks.velocity.config.g1.env_cfgs import unitree_g1_flat_env_cfg, unitree_g1_rough_env_cfg
from mjlab.tasks.velocity.config.g1.rl_cfg import unitree_g1_ppo_runner_cfg
from mjlab.tasks.velocity.config.go1.env_cfgs import unitree_go1_flat_env_cfg, unitree_go1_rough_env_cfg
from mjlab.tasks.velocity.config.go1.rl_cfg import unitree_go1_ppo_runner_cfg
from mjlab.tasks.velocity.rl import VelocityOnPolicyRunner

from trudi.tasks import MJLAB_TRUDI_SUFFIX
from trudi.tasks import mjlab_trudi_task as trudi_task_id
from trudi_mjlab.agents import TruDiActorCfg, TruDiCriticCfg, TruDiOnPolicyRunnerCfg, trudi_cfg_from_ppo

TASK_SUFFIX = MJLAB_TRUDI_SUFFIX
"""Appended to a built-in task id to name its TruDi variant (declared in :mod:`trudi.tasks`, which ``scripts/train.py``
reads too)."""


@dataclass(frozen=True)
class BaseTask:
    """The factories of one built-in mjlab task, from which its TruDi variant is built."""

    env_cfg: Callable[..., ManagerBasedRlEnvCfg]
    """``env_cfg(play=False)``: the task's env-config factory."""
    ppo_cfg: Callable[[], RslRlOnPolicyRunnerCfg]
    """The task's PPO runner-config factory."""
    runner_cls: type | None
    """The runner class the built-in task registers (``None``: mjlab's ``MjlabOnPolicyRunner``)."""
    trudi_cfg: Callable[[RslRlOnPolicyRunnerCfg], TruDiOnPolicyRunnerCfg] = trudi_cfg_from_ppo
    """Turns the PPO runner config into the TruDi one."""


def _cartpole_trudi_cfg(ppo_cfg: RslRlOnPolicyRunnerCfg) -> TruDiOnPolicyRunnerCfg:
    # Small networks, as PPO's (64, 64): cartpole has 5 observations and 1 action.
    return trudi_cfg_from_ppo(
        ppo_cfg,
        actor=TruDiActorCfg(hidden_dims=(64, 64)),
        critic=TruDiCriticCfg(hidden_dim=128),
    )


BASE_TASKS: dict[str, BaseTask] = {
    # VelocityOnPolicyRunner exports an ONNX policy with deployment metadata on every save; it takes the policy's
    # ``as_onnx()`` export, which DiffusionActor provides (the deterministic ODE chain, unrolled).
    "Mjlab-Velocity-Flat-Unitree-G1": BaseTask(
        unitree_g1_flat_env_cfg, unitree_g1_ppo_runner_cfg, VelocityOnPolicyRunner
    ),
    "Mjlab-Velocity-Rough-Unitree-G1": BaseTask(
        unitree_g1_rough_env_cfg, unitree_g1_ppo_runner_cfg, VelocityOnPolicyRunner
    ),
    "Mjlab-Velocity-Flat-Unitree-Go1": BaseTask(
        unitree_go1_flat_env_cfg, unitree_go1_ppo_runner_cfg, VelocityOnPolicyRunner
    ),
    "Mjlab-Velocity-Rough-Unitree-Go1": BaseTask(
        unitree_go1_rough_env_cfg, unitree_go1_ppo_runner_cfg, VelocityOnPolicyRunner
    ),
    "Mjlab-Cartpole-Balance": BaseTask(cartpole_balance_env_cfg, cartpole_ppo_runner_cfg, None, _cartpole_trudi_cfg),
    "Mjlab-Cartpole-Swingup": BaseTask(cartpole_swingup_env_cfg, cartpole_ppo_runner_cfg, None, _cartpole_trudi_cfg),
}
"""Built-in mjlab tasks that get a TruDi variant, by their own id."""


def register_trudi_tasks() -> list[str]:
    """Register the TruDi variant of every task in :data:`BASE_TASKS`; returns the new task ids."""
    registered = []
    for task_id, task in BASE_TASKS.items():
        trudi_id = trudi_task_id(task_id)
        register_mjlab_task(
            task_id=trudi_id,
            env_cfg=task.env_cfg(),
            play_env_cfg=task.env_cfg(play=True),
            rl_cfg=task.trudi_cfg(task.ppo_cfg()),
            runner_cls=task.runner_cls,
        )
        registered.append(trudi_id)
    return registered
