"""The train/play plumbing shared by ``scripts/train.py`` and ``scripts/play.py`` on the embedded tasks.

Logs follow RSL-RL / Isaac Lab: ``logs/rsl_rl/<experiment_name>/<YYYY-mm-dd_HH-MM-SS>[_<run_name>]/`` holding
``model_<it>.pt``, TensorBoard events, ``params/agent.yaml`` and ``params/env.yaml``, and for the embedded tasks
``params/obs_layout.yaml`` (which observation key lands where in the policy's input).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import warnings
from collections.abc import Iterator
from datetime import datetime
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch
import torch.nn as nn
import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from trudi.checkpoint import atomic_write_text
from trudi.config import ConfigError
from trudi.envs.observation_layout import ObsLayout

LOG_ROOT = os.path.join("logs", "rsl_rl")
"""Where runs are written, relative to the working directory (as in Isaac Lab)."""


def load_agent_yaml(path: str) -> DictConfig:
    """Read a ``--agent_cfg`` YAML: a mapping of agent config keys; anything else is a one-line ConfigError."""
    if not os.path.isfile(path):
        raise ConfigError(f"--agent_cfg={path!r} is invalid: no such file.")
    try:
        loaded = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError, yaml.YAMLError) as error:
        raise ConfigError(
            f"--agent_cfg={path!r} is invalid: not a readable YAML mapping ({_one_line(error)})."
        ) from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"--agent_cfg={path!r} is invalid: the file must hold a mapping of config keys.")
    return loaded


def merge_agent_cfg(cfg: dict, yaml_path: str | None = None, overrides: list[str] | None = None) -> dict:
    """Merge a YAML file and then ``agent.key.sub=value`` overrides over a train config.

    The YAML holds the same keys as the config (``algorithm.class_name``, ``actor.num_denoising_steps``...). Values
    are type-checked where the objects are built, so a wrong value fails there with the field's name.
    """
    merged = OmegaConf.create(cfg)
    if yaml_path is not None:
        merged = OmegaConf.merge(merged, load_agent_yaml(yaml_path))
    for item in overrides or []:
        key = item.split("=", 1)[0][len("agent.") :]
        if "=" not in item or not item.startswith("agent.") or not key or "" in key.split("."):
            raise ConfigError(f"override {item!r} is invalid: expected agent.<key>=<value>, e.g. agent.seed=3.")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item[len("agent.") :]]))
        except (OmegaConfBaseException, ValueError, yaml.YAMLError) as error:
            raise ConfigError(
                f"override {item!r} is invalid: the value is not readable YAML ({_one_line(error)}); expected"
                " agent.<key>=<value>, e.g. agent.actor.hidden_dims=[64,64]."
            ) from None
    try:
        return OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as error:
        raise ConfigError(f"agent config is invalid: {_one_line(error)}.") from None


def check_train_cfg(cfg: dict, num_envs: int = 64) -> None:
    """Run every config check of a TruDi train config before a simulator starts; raises :class:`ConfigError`.

    The algorithm is built on a stand-in environment (``num_envs`` envs, one feature per observation group, one
    action), which only shapes depend on, so the checks are exactly those of a real run.
    """
    from trudi.algorithm import TruDi

    groups = sorted({group for names in (cfg.get("obs_groups") or {}).values() for group in names}) or ["policy"]
    obs = TensorDict({group: torch.zeros(num_envs, 1) for group in groups}, batch_size=[num_envs])
    env = SimpleNamespace(num_envs=num_envs, num_actions=1)
    TruDi.construct_algorithm(obs, env, copy.deepcopy(cfg), "cpu")


def _one_line(error: BaseException) -> str:
    """An exception's message with its line breaks collapsed, for one-line ConfigErrors."""
    return " ".join(str(error).split())


def seed_everything(seed: int) -> None:
    """Seed Python-side RNGs used by training (torch, numpy)."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def new_log_dir(experiment_name: str, run_name: str = "", root: str = LOG_ROOT) -> str:
    """``<root>/<experiment>/<timestamp>[_<run_name>]``; created later, by :func:`dump_params`."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    return os.path.join(root, experiment_name, f"{stamp}_{run_name}" if run_name else stamp)


OBS_LAYOUT_FILE = "obs_layout.yaml"
"""The observation layout's file: in a run's ``params/`` and beside its exported policy."""


def dump_params(log_dir: str, agent_cfg: dict, env_cfg: dict, obs_layout: ObsLayout | None = None) -> None:
    """Write ``params/agent.yaml`` and ``params/env.yaml`` as Isaac Lab does, and ``params/obs_layout.yaml``."""
    os.makedirs(os.path.join(log_dir, "params"), exist_ok=True)
    for name, data in (("agent", agent_cfg), ("env", env_cfg)):
        OmegaConf.save(OmegaConf.create(data), os.path.join(log_dir, "params", f"{name}.yaml"))
    if obs_layout is not None:
        save_obs_layout(os.path.join(log_dir, "params"), obs_layout)


def save_obs_layout(directory: str, obs_layout: ObsLayout) -> str:
    """Write ``obs_layout`` to ``<directory>/obs_layout.yaml`` and return the file's path."""
    path = os.path.join(directory, OBS_LAYOUT_FILE)
    # Atomic: play and resume refuse a run whose layout file does not parse.
    atomic_write_text(path, yaml.safe_dump(obs_layout.to_dict(), sort_keys=False, default_flow_style=None, width=120))
    return path


def check_obs_layout(checkpoint: str, obs_layout: ObsLayout, task: str) -> None:
    """Refuse in one line an environment whose observation layout differs from the one the checkpoint's run saved.

    The run's layout is ``params/obs_layout.yaml`` beside the checkpoint; a run that has none (trained before layouts
    were saved, or a checkpoint copied out of its run) is not checked.
    """
    path = os.path.join(os.path.dirname(checkpoint), "params", OBS_LAYOUT_FILE)
    if not os.path.isfile(path):
        return
    try:
        with open(path, encoding="utf-8") as file:
            saved = ObsLayout.from_dict(yaml.safe_load(file))
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise ConfigError(
            f"{path!r} is invalid: not an observation layout as scripts/train.py writes it ({_one_line(error)})."
        ) from None
    difference = obs_layout.difference(saved)
    if difference is not None:
        raise ConfigError(
            f"--task={task!r} is invalid for {checkpoint!r}: its observations are laid out unlike the run's"
            f" ({path}): {difference}."
        )


def _natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


CHECKPOINT_PATTERN = r"model_.*\.pt"
"""File names of the checkpoints RSL-RL's runner writes (``model_<iteration>.pt``)."""


class CheckpointError(ConfigError):
    """A checkpoint cannot be used: missing, truncated, not a torch file, or not a checkpoint of these models."""


def _fullmatch(flag: str, pattern: str, name: str) -> bool:
    try:
        return re.fullmatch(pattern, name) is not None
    except re.error as error:
        raise CheckpointError(
            f"{flag}={pattern!r} is invalid: neither an existing file nor a valid regex ({_one_line(error)})."
        ) from None


def resolve_checkpoint(experiment_dir: str, run: str = ".*", checkpoint: str = CHECKPOINT_PATTERN) -> str:
    """The last checkpoint matching ``checkpoint`` in the last run matching ``run`` (both regexes), as Isaac Lab.

    ``checkpoint`` may also be ``"latest"`` or an existing file path. Raises a one-line :class:`CheckpointError`
    when nothing matches; a path (a value with a directory part) that is not a file is reported as missing.
    """
    if os.path.isfile(checkpoint):
        return checkpoint
    if os.path.isdir(checkpoint):
        raise CheckpointError(f"--checkpoint={checkpoint!r} is invalid: a directory, expected a model_<it>.pt file.")
    if os.path.dirname(checkpoint):  # a file name regex never holds a directory part: this was meant as a path
        raise CheckpointError(f"--checkpoint={checkpoint!r} is invalid: no such file.")
    if checkpoint == "latest":
        checkpoint = CHECKPOINT_PATTERN
    if not os.path.isdir(experiment_dir):
        raise CheckpointError(f"no runs under {experiment_dir!r}: train first or pass --checkpoint <file>.")
    runs = sorted(d for d in os.listdir(experiment_dir) if _fullmatch("--load_run", run, d))
    runs = [r for r in runs if os.path.isdir(os.path.join(experiment_dir, r))]
    if not runs:
        raise CheckpointError(f"--load_run={run!r} is invalid: no run matching it under {experiment_dir!r}.")
    run_dir = os.path.join(experiment_dir, runs[-1])
    models = sorted((f for f in os.listdir(run_dir) if _fullmatch("--checkpoint", checkpoint, f)), key=_natural_key)
    if not models:
        present = sorted((f for f in os.listdir(run_dir) if re.fullmatch(CHECKPOINT_PATTERN, f)), key=_natural_key)
        there = f"; there: {', '.join(present)}" if present else "; it holds no checkpoint"
        raise CheckpointError(
            f"--checkpoint={checkpoint!r} is invalid: no such file, and no file in {run_dir!r} matches it{there}."
        )
    return os.path.join(run_dir, models[-1])


# What ``runner.load`` reads for each ``load_cfg`` key; ``infos`` it reads always.
_CHECKPOINT_KEYS = {
    "actor": "actor_state_dict",
    "critic": "critic_state_dict",
    "optimizer": "optimizer_state_dict",
    "iteration": "iter",
}


def read_checkpoint(path: str, required: tuple[str, ...] = ("actor_state_dict", "infos")) -> dict:
    """``torch.load`` a checkpoint onto the CPU, or raise a one-line :class:`CheckpointError` naming the file.

    The file must be a complete torch file holding a dict with the ``required`` keys, as RSL-RL's runner saves it.
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} is invalid: no such file.")
    try:
        loaded = torch.load(path, weights_only=False, map_location="cpu")
    # Whatever a damaged file makes the unpickler or the zip reader raise, the file is unusable: say so in one line.
    except Exception as error:
        # The first sentence says what is wrong; torch's zip reader appends advice about filing a bug.
        detail = _one_line(error).split(". ")[0].rstrip(".")
        detail = detail if len(detail) <= 160 else detail[:157] + "..."
        raise CheckpointError(
            f"checkpoint {path!r} is invalid: not a complete torch file ({os.path.getsize(path)} bytes; truncated by a"
            f" kill, or not a checkpoint at all: {type(error).__name__}: {detail})."
        ) from None
    if not isinstance(loaded, dict):
        raise CheckpointError(
            f"checkpoint {path!r} is invalid: it holds a {type(loaded).__name__}, not an RSL-RL checkpoint (a dict"
            f" with {', '.join(repr(k) for k in required)})."
        )
    missing = [key for key in required if key not in loaded]
    if missing:
        keys = ", ".join(repr(k) for k in list(loaded)[:8]) + (", ..." if len(loaded) > 8 else "")
        raise CheckpointError(
            f"checkpoint {path!r} is invalid: not an RSL-RL checkpoint, it lacks {', '.join(repr(k) for k in missing)}"
            f" (it holds {keys or 'nothing'})."
        )
    return loaded


def _earlier_checkpoint(path: str, required: tuple[str, ...]) -> str:
    """A clause naming the newest checkpoint before ``path`` in its directory that reads, for error messages."""
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        return ""
    names = sorted((f for f in os.listdir(directory) if re.fullmatch(CHECKPOINT_PATTERN, f)), key=_natural_key)
    name = os.path.basename(path)
    earlier = names[: names.index(name)] if name in names else names
    for candidate in reversed(earlier):
        try:
            read_checkpoint(os.path.join(directory, candidate), required)
        except CheckpointError:
            continue
        found = os.path.join(directory, candidate)
        return f"; the newest earlier checkpoint that reads is {found!r}: pass it as --checkpoint"
    return (
        f"; no earlier checkpoint in {directory!r} reads"
        if earlier
        else f"; there is no earlier checkpoint in {directory!r}"
    )


def load_checkpoint(runner, path: str, load_cfg: dict | None = None, map_location: str | None = None) -> dict | None:
    """``runner.load(path, load_cfg, map_location=...)``, with every bad file a one-line :class:`CheckpointError`.

    The file is checked first (complete, a dict with what ``load_cfg`` selects; all of it when ``None``); when it is
    bad, the message also names the newest earlier checkpoint of its directory that reads. A checkpoint of other
    models (another algorithm, task or network size) fails when the runner loads it, also in one line.
    Returns the checkpoint's ``infos``, as ``runner.load``.
    """
    selected = _CHECKPOINT_KEYS if load_cfg is None else {k: v for k, v in _CHECKPOINT_KEYS.items() if load_cfg.get(k)}
    required = (*selected.values(), "infos")
    try:
        read_checkpoint(path, required)
    except CheckpointError as error:
        raise CheckpointError(f"{str(error)[:-1]}{_earlier_checkpoint(path, required)}.") from None
    # The runner reads the file again: checkpoints are small next to a run, and its own load logic stays in charge.
    try:
        return runner.load(path, load_cfg=load_cfg, map_location=map_location)
    except (KeyError, RuntimeError, ValueError, TypeError) as error:
        detail = _one_line(error).rstrip(".")
        detail = detail if len(detail) <= 240 else detail[:237] + "..."
        raise CheckpointError(
            f"checkpoint {path!r} is invalid: it does not fit the configured models (trained with another --algo,"
            f" task or network size?): {type(error).__name__}: {detail}."
        ) from None


class Evaluation(NamedTuple):
    """What :func:`evaluate` measured over its episodes."""

    return_mean: float
    """Mean undiscounted return."""
    return_std: float
    """Standard deviation of the returns (over episodes, not normalised by ``n - 1``)."""
    length_mean: float
    """Mean episode length in environment steps: tells early terminations from a low return per step."""


@torch.no_grad()
def evaluate(policy: nn.Module, env: VecEnv, num_episodes: int, max_steps: int | None = None) -> Evaluation:
    """Return and length statistics of ``num_episodes`` whole episodes of ``policy``.

    ``env`` is reset first (``env.reset()``, as Isaac Lab's, mjlab's and the embedded environments provide), so every
    counted episode starts from a fresh initial state. Episodes are counted in environment order, the first episode
    of environments ``0, 1, ...`` and then their second ones, not in the order they finish: the first to finish are
    the short ones, which in most tasks are the failures, and an environment's first episode after the reset is the
    only one whose length does not depend on how its earlier episodes went.
    """
    obs, _ = env.reset()
    num_envs = env.num_envs
    rounds = -(-num_episodes // num_envs)
    env_ids = torch.arange(num_envs, device=env.device)
    needed = ((num_episodes - env_ids + num_envs - 1) // num_envs).clamp(min=0)  # episodes counted per environment
    returns = torch.zeros(rounds, num_envs, device=env.device)
    lengths = torch.zeros(rounds, num_envs, device=env.device)
    finished = torch.zeros(num_envs, dtype=torch.long, device=env.device)
    running = torch.zeros(num_envs, device=env.device)
    steps = torch.zeros(num_envs, device=env.device)
    max_steps = max_steps or rounds * (int(env.max_episode_length) + 1)
    for _ in range(max_steps):
        obs, rewards, dones, _ = env.step(policy(obs))
        running += rewards.view(-1)
        steps += 1.0
        done_ids = dones.view(-1).nonzero(as_tuple=False).flatten()
        counted = done_ids[finished[done_ids] < needed[done_ids]]
        returns[finished[counted], counted] = running[counted]
        lengths[finished[counted], counted] = steps[counted]
        finished[done_ids] += 1
        running[done_ids] = 0.0
        steps[done_ids] = 0.0
        if bool((finished >= needed).all()):
            break
    else:
        raise RuntimeError(
            f"only {int(finished.clamp(max=needed).sum())} of {num_episodes} evaluation episodes finished within"
            f" {max_steps} steps."
        )
    counted = torch.arange(rounds, device=env.device) < needed.unsqueeze(-1)
    counted_returns = returns.T[counted]
    return Evaluation(
        float(counted_returns.mean()), float(counted_returns.std(unbiased=False)), float(lengths.T[counted].mean())
    )


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence the notices torch's ONNX exporter prints on every export here, and nothing else.

    Both concern the exporter, not the exported policy: it skips torchvision's operators when torchvision is not
    installed (logged by its op registry), and torch's pytree warns that its own code uses a deprecated check.
    """
    registry_logger = logging.getLogger("torch.onnx._internal.exporter._registration")

    def drop_torchvision_notice(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")

    registry_logger.addFilter(drop_torchvision_notice)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
            )
            yield
    finally:
        registry_logger.removeFilter(drop_torchvision_notice)


@torch.no_grad()
def export_policy(runner, policy: nn.Module, obs, actor_groups: list[str], export_dir: str) -> dict[str, float]:
    """Write ``policy.pt`` (TorchScript) and ``policy.onnx`` to ``export_dir`` through the runner's exporters.

    Returns the largest absolute difference between each export and ``policy(obs)`` on ``obs``: ``jit`` always,
    ``onnx`` when onnxruntime is installed. The exports take the actor's observation groups concatenated.
    """
    runner.export_policy_to_jit(export_dir, "policy.pt")
    with _quiet_onnx_exporter():
        runner.export_policy_to_onnx(export_dir, "policy.onnx")
    raw_obs = torch.cat([obs[group] for group in actor_groups], dim=-1).cpu().float()
    reference = policy(obs).cpu()
    jit_policy = torch.jit.load(os.path.join(export_dir, "policy.pt"))
    parity = {"jit": (jit_policy(raw_obs) - reference).abs().max().item()}
    try:
        import onnxruntime
    except ImportError:
        return parity
    session = onnxruntime.InferenceSession(os.path.join(export_dir, "policy.onnx"))
    input_name = session.get_inputs()[0].name
    # The ONNX graph has a fixed batch of one, as RSL-RL's exporters write it.
    rows = [session.run(None, {input_name: raw_obs[i : i + 1].numpy()})[0] for i in range(min(len(raw_obs), 16))]
    parity["onnx"] = float(np.abs(np.concatenate(rows) - reference[: len(rows)].numpy()).max())
    return parity
