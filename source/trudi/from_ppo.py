"""How a task's TruDi runner config is derived from its PPO runner config: the one rule of both simulator extensions.

Isaac Lab (``trudi_isaaclab.agents``) and mjlab (``trudi_mjlab.agents``) give every task that has an RSL-RL PPO config
a TruDi config derived from it. Both read the PPO config by attribute (an Isaac Lab ``configclass`` or an mjlab
dataclass) through :func:`runner_fields_from_ppo` and :func:`algorithm_fields_from_ppo`, and both declare their
``torch_compile_mode`` default as :data:`TORCH_COMPILE_MODE`. Nothing here imports a simulator.

The rule: the task's runner settings (rollout, budget, observation groups, logging, checkpoints) and its horizon
(``gamma``, ``lam``) carry over; everything else of the algorithm, and the networks, are TruDi's, because PPO's
learning rate, clipping and entropy settings mean nothing to a trust-region update of a diffusion policy.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING

RUNNER_FIELDS: tuple[str, ...] = (
    # rollout and budget
    "seed",
    "device",
    "num_steps_per_env",
    "max_iterations",
    "init_at_random_ep_len",
    # observations and actions
    "obs_groups",
    "clip_actions",
    "check_for_nan",
    # logging
    "save_interval",
    "run_name",
    "logger",
    "neptune_project",
    "wandb_project",
    "wandb_tags",
    "upload_model",
    # checkpoints
    "resume",
    "load_run",
    "load_checkpoint",
)
"""Runner fields a TruDi config takes from the task's PPO config, where the simulator's runner config has them.

Not taken: ``experiment_name`` (it gets :data:`EXPERIMENT_SUFFIX`), ``torch_compile_mode`` (TruDi's own,
:data:`TORCH_COMPILE_MODE`), the runner ``class_name`` and the ``actor``, ``critic`` and ``algorithm`` sections."""

ALGORITHM_FIELDS: tuple[str, ...] = ("gamma", "lam")
"""Algorithm fields taken from the task's PPO config: the discount and the lambda of the returns define the task's
horizon, so TruDi optimises the same objective as the task's PPO."""

EXPERIMENT_SUFFIX = "_trudi"
"""Appended to the PPO config's ``experiment_name``, so TruDi and PPO runs never share a log folder (nor a
``--checkpoint latest``)."""

TORCH_COMPILE_MODE: str | None = "default"
"""``torch_compile_mode`` of every simulator task's TruDi config: RSL-RL's runner-level key (a top-level key of the
train config), which ``TruDi.construct_algorithm`` reads. Simulator runs are long (hundreds to thousands of
iterations) at a fixed env count, so the one-off compile of the first iteration (about 20 s with a warm inductor
cache, 1.5 min cold, on the 2-core CPU) pays for itself: the compiled update was 1.3x faster on Isaac-Ant at 256 envs
on the CPU (docs/results/speed.md), and it computes the same update (tests/test_compile.py). The embedded tasks stay
eager (``None``, RSL-RL's default)."""


def runner_fields_from_ppo(ppo_cfg: object) -> dict[str, object]:
    """The runner-level values of the TruDi config derived from ``ppo_cfg``, by field name.

    Each of :data:`RUNNER_FIELDS` that ``ppo_cfg`` sets (deep-copied), and ``experiment_name`` with
    :data:`EXPERIMENT_SUFFIX`. A field ``ppo_cfg`` lacks, leaves ``MISSING`` or sets to an empty mapping (an empty
    ``obs_groups``: RSL-RL's default groups) keeps the TruDi config's default.
    """
    values = {name: getattr(ppo_cfg, name, MISSING) for name in RUNNER_FIELDS}
    taken = {name: copy.deepcopy(value) for name, value in values.items() if not _unset(value)}
    return taken | {"experiment_name": f"{ppo_cfg.experiment_name}{EXPERIMENT_SUFFIX}"}


def algorithm_fields_from_ppo(ppo_cfg: object) -> dict[str, object]:
    """The algorithm values of the TruDi config taken from ``ppo_cfg.algorithm``: :data:`ALGORITHM_FIELDS`."""
    return {name: getattr(ppo_cfg.algorithm, name) for name in ALGORITHM_FIELDS}


def _unset(value: object) -> bool:
    # Isaac Lab's configclass deep-copies defaults, so an unset field holds a copy of MISSING rather than MISSING.
    return isinstance(value, type(MISSING)) or (isinstance(value, dict) and not value)
