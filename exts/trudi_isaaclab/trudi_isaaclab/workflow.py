"""``scripts/train.py`` and ``scripts/play.py`` on Isaac Lab tasks.

Training is Isaac Lab's own RSL-RL train flow (``isaaclab_rl.entrypoints.run_train_cli``) with the agent key of the
chosen algorithm, so logs, ``params/agent.yaml``, ``run.json``, resume and ``--checkpoint latest`` behave as with
``isaaclab train``. A ``--agent_cfg`` YAML becomes ``agent.*`` overrides, and TruDi configs are checked before the
simulator starts. Play loads a checkpoint with Isaac Lab's pieces, runs the deterministic policy for a fixed number of
episodes, reports the mean return and exports ``exported/policy.pt`` and ``exported/policy.onnx``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from importlib.metadata import version

from omegaconf import DictConfig, ListConfig

from trudi.config import ConfigError
from trudi.workflow import LOG_ROOT, check_train_cfg, evaluate, export_policy, load_agent_yaml, resolve_checkpoint
from trudi_isaaclab.registration import PPO_ENTRY_POINT, TRUDI_ENTRY_POINT

AGENT_KEYS = {"trudi": TRUDI_ENTRY_POINT, "ppo": PPO_ENTRY_POINT}
"""``--algo`` -> agent config key; PPO is the task's own, untouched config."""


FINAL_OBS_OVERRIDE = "env.compute_final_obs=true"
"""Hydra override that makes an Isaac Lab 3 env put its pre-reset observations in ``extras["final_obs"]``."""


def yaml_overrides(path: str) -> list[str]:
    """Turn a YAML of agent config keys into ``agent.<dotted.key>=<value>`` overrides (one per leaf)."""
    loaded = load_agent_yaml(path)
    overrides: list[str] = []

    def flatten(node: DictConfig, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, DictConfig) and len(value) > 0:
                flatten(value, f"{prefix}{key}.")
            else:
                overrides.append(f"agent.{prefix}{key}={_hydra_value(value)}")

    flatten(loaded, "")
    return overrides


def _hydra_value(value: object) -> str:
    """Render a YAML value in Hydra's override grammar (strings quoted, so ``module:Class`` survives)."""
    if isinstance(value, (ListConfig, list, tuple)):
        return "[" + ",".join(_hydra_value(item) for item in value) + "]"
    if isinstance(value, DictConfig):
        return "{" + ",".join(f"{key}:{_hydra_value(item)}" for key, item in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def agent_overrides(args: argparse.Namespace, overrides: list[str], device: str | None) -> list[str]:
    """The ``--agent_cfg`` YAML's overrides, then the command line's, then ``agent.device``; the last of a key wins."""
    merged = (yaml_overrides(args.agent_cfg) if args.agent_cfg is not None else []) + overrides
    if device is not None:
        merged.append(f"agent.device={device}")
    return last_per_key(merged)


def last_per_key(overrides: list[str]) -> list[str]:
    """Hydra overrides with only the last one of each key, in first-seen order (Hydra refuses a key given twice)."""
    latest: dict[str, str] = {}
    for item in overrides:
        latest[item.split("=", 1)[0]] = item
    return list(latest.values())


def resolve_agent_cfg(task: str, algo: str, overrides: list[str], play_mode: bool = False) -> tuple[object, object]:
    """Env and agent configs of ``task`` for ``algo`` with ``agent.*`` overrides; TruDi configs are checked.

    For TruDi the env computes its pre-reset observations (``compute_final_obs``), so time-outs bootstrap from
    ``Q(s_final, a')`` (docs/algorithm.md, section 1.7).

    Raises:
        ConfigError: naming the field, the value and what is allowed.
    """
    from isaaclab_rl.rsl_rl import handle_deprecated_rsl_rl_cfg
    from isaaclab_tasks.utils import resolve_task_config

    import trudi_isaaclab.tasks  # noqa: F401  (registers the TruDi agent key)

    if algo == "trudi":
        overrides = [*overrides, FINAL_OBS_OVERRIDE]
    try:
        env_cfg, agent_cfg = resolve_task_config(task, AGENT_KEYS[algo], play_mode=play_mode, overrides=overrides)
    except (ValueError, KeyError, AttributeError, TypeError) as error:
        raise ConfigError(f"agent config of {task!r} ({algo}) is invalid: {' '.join(str(error).split())}") from None
    agent_cfg = handle_deprecated_rsl_rl_cfg(agent_cfg, version("rsl-rl-lib"))
    if algo == "trudi":
        check_train_cfg(agent_cfg.to_dict())
    return env_cfg, agent_cfg


def train(args: argparse.Namespace, passthrough: list[str], overrides: list[str]) -> None:
    """Run Isaac Lab's RSL-RL train flow on ``args.task`` with the agent key of ``args.algo``.

    ``--device`` sets both the simulation and the agent (Isaac Lab's own flag only moves the simulation).
    """
    from isaaclab_rl.entrypoints import run_train_cli

    overrides = agent_overrides(args, overrides, args.device)
    resolve_agent_cfg(args.task, args.algo, overrides)  # fail with one clear line before the simulator starts
    if args.algo == "trudi":
        overrides = [*overrides, FINAL_OBS_OVERRIDE]
    argv = ["--rl_library", "rsl_rl", "--task", args.task, "--agent", AGENT_KEYS[args.algo]]
    if args.num_envs is not None:
        argv += ["--num_envs", str(args.num_envs)]
    if args.device is not None:
        argv += ["--device", args.device]
    exit_code = run_train_cli([*argv, *passthrough, *overrides])
    if exit_code:
        raise SystemExit(exit_code)


@contextlib.contextmanager
def isaaclab_env(
    task: str,
    algo: str,
    overrides: list[str],
    device: str,
    num_envs: int | None = None,
    seed: int | None = None,
    play_mode: bool = False,
) -> Iterator[tuple[object, object]]:
    """Isaac Lab's ``task`` wrapped for RSL-RL, with the resolved agent config, inside the simulation context.

    The one place the extension, ``scripts/play.py`` and the benchmarks build an Isaac Lab environment: the configs
    are resolved by :func:`resolve_agent_cfg` (a bad agent value fails in one line, TruDi gets ``compute_final_obs``
    as in the train flow) before the simulation starts, and leaving the ``with`` block closes the environment and
    the simulation. Yields ``(env, agent_cfg)``.
    """
    import gymnasium as gym
    from isaaclab.app import launch_simulation
    from isaaclab_rl.rsl_rl import RslRlVecEnvWrapper

    overrides = [*overrides, f"agent.device={device}"] + ([f"agent.seed={seed}"] if seed is not None else [])
    env_cfg, agent_cfg = resolve_agent_cfg(task, algo, last_per_key(overrides), play_mode=play_mode)
    env_cfg.sim.device = device
    if seed is not None:
        env_cfg.seed = seed
    if num_envs is not None:
        env_cfg.scene.num_envs = num_envs
    with launch_simulation(env_cfg, {"device": device, "visualizer": "none"}):
        env = RslRlVecEnvWrapper(gym.make(task, cfg=env_cfg), clip_actions=agent_cfg.clip_actions)
        try:
            yield env, agent_cfg
        finally:
            env.close()


def play(args: argparse.Namespace, overrides: list[str]) -> dict:
    """Load a checkpoint, evaluate the deterministic policy and export it; returns returns, paths and parity."""
    from isaaclab_rl.rsl_rl import create_rsl_rl_runner

    device = args.device or "cpu"
    overrides = agent_overrides(args, overrides, device)
    _, agent_cfg = resolve_agent_cfg(args.task, args.algo, overrides, play_mode=True)
    checkpoint = resolve_checkpoint(
        os.path.join(os.path.abspath(LOG_ROOT), agent_cfg.experiment_name), args.load_run, args.checkpoint
    )
    print(f"[trudi] loading {checkpoint}")
    with isaaclab_env(args.task, args.algo, overrides, device, args.num_envs, play_mode=True) as (env, agent_cfg):
        runner = create_rsl_rl_runner(env, agent_cfg)
        runner.load(checkpoint, load_cfg={"actor": True}, map_location=device)
        policy = runner.get_inference_policy(device=device)
        mean_return, std_return, mean_length = evaluate(policy, env, args.episodes)
        print(
            f"[trudi] deterministic policy: mean return {mean_return:.3f} +- {std_return:.3f} ({args.episodes} ep.,"
            f" mean length {mean_length:.0f} steps)"
        )
        export_dir = os.path.join(os.path.dirname(checkpoint), "exported")
        actor_groups = runner.cfg["obs_groups"]["actor"]
        parity = export_policy(runner, policy, env.get_observations(), actor_groups, export_dir)
        print(f"[trudi] exported {export_dir}/policy.pt and policy.onnx; max abs diff vs torch: {parity}")
    return {"mean_return": mean_return, "std_return": std_return, "export_dir": export_dir, "parity": parity}
