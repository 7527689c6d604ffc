"""Embedded tasks that need no GPU and no Isaac Sim, with their TruDi and PPO train configs.

Each task pairs an environment factory with RSL-RL train-config dicts (the same schema Isaac Lab's
``RslRlOnPolicyRunnerCfg.to_dict()`` produces), so ``scripts/train.py`` runs TruDi and RSL-RL's PPO on equal terms:
same runner, same environments, same rollout size.
"""

from __future__ import annotations

import copy
import difflib
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from rsl_rl.env import VecEnv

from trudi.config import ConfigError
from trudi.envs import GymVecEnv, TwoModeBandit
from trudi.envs.registries import load_registry, plugin_of, split_task

DEFAULT_TASK = "InvertedPendulum-v5"
"""The task ``scripts/train.py`` trains when none is given: learns clearly within minutes on two CPU cores."""

ALGORITHMS = ("trudi", "ppo")
"""Algorithms every embedded task has a config for."""


def _runner_cfg(experiment_name: str, num_steps_per_env: int, max_iterations: int) -> dict:
    """The runner part of a train config, the same for both algorithms: rollout, budget, logging, observations."""
    return {
        "seed": 1,
        "num_steps_per_env": num_steps_per_env,
        "max_iterations": max_iterations,
        "save_interval": 50,
        "experiment_name": experiment_name,
        "run_name": "",
        "logger": "tensorboard",
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
    }


def trudi_train_cfg(
    experiment_name: str,
    num_steps_per_env: int = 32,
    max_iterations: int = 100,
    actor: dict | None = None,
    critic: dict | None = None,
    algorithm: dict | None = None,
) -> dict:
    """An RSL-RL train config for TruDi; ``actor``/``critic``/``algorithm`` entries override the defaults."""
    return _runner_cfg(f"{experiment_name}_trudi", num_steps_per_env, max_iterations) | {
        "algorithm": {"class_name": "trudi.rsl_rl:TruDi", **(algorithm or {})},
        "actor": {"class_name": "trudi.rsl_rl:DiffusionActor", **(actor or {})},
        "critic": {"class_name": "trudi.rsl_rl:QCritic", **(critic or {})},
    }


def ppo_train_cfg(
    experiment_name: str, num_steps_per_env: int = 32, max_iterations: int = 100, algorithm: dict | None = None
) -> dict:
    """An RSL-RL train config for RSL-RL's own PPO with a Gaussian MLP policy (Isaac Lab-style defaults)."""
    return _runner_cfg(f"{experiment_name}_ppo", num_steps_per_env, max_iterations) | {
        "algorithm": {
            "class_name": "PPO",
            "num_learning_epochs": 5,
            "num_mini_batches": 4,
            "learning_rate": 1e-3,
            "schedule": "adaptive",
            "desired_kl": 0.01,
            "gamma": 0.99,
            "lam": 0.95,
            "entropy_coef": 0.005,
            "clip_param": 0.2,
            "max_grad_norm": 1.0,
            **(algorithm or {}),
        },
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": [64, 64],
            "activation": "elu",
            "obs_normalization": True,
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0, "std_type": "scalar"},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [64, 64], "activation": "elu", "obs_normalization": True},
    }


@dataclass
class EmbeddedTask:
    """An environment factory and the train configs tuned for it."""

    make_env: Callable[[int, int, str], VecEnv]
    """``make_env(num_envs, seed, device)``."""
    num_envs: int
    """Default number of parallel environments."""
    train_cfgs: dict[str, dict] = field(default_factory=dict)
    """Train config per algorithm name (``"trudi"``, ``"ppo"``)."""
    description: str = ""
    """One line for ``--help`` and the docs."""


def _gym(task: str) -> Callable[[int, int, str], VecEnv]:
    return lambda num_envs, seed, device: GymVecEnv(task, num_envs=num_envs, seed=seed, device=device)


# Only sizes differ between tasks (networks here; envs, rollout length and budget below): every algorithm setting is
# the default. Small networks: these run on two CPU cores, where the diffusion chain's cost dominates.
_SMALL_ACTOR = {"hidden_dims": [64, 64]}
_SMALL_CRITIC = {"hidden_dim": 128}
_LOCOMOTION_ACTOR = {"hidden_dims": [256, 256, 256]}
_LOCOMOTION_CRITIC = {"hidden_dim": 256}

TASKS: dict[str, EmbeddedTask] = {
    "InvertedPendulum-v5": EmbeddedTask(
        _gym("InvertedPendulum-v5"),
        num_envs=16,
        train_cfgs={
            "trudi": trudi_train_cfg(
                "inverted_pendulum",
                max_iterations=200,
                actor=_SMALL_ACTOR,
                critic=_SMALL_CRITIC,
            ),
            "ppo": ppo_train_cfg("inverted_pendulum", max_iterations=200),
        },
        description="Gymnasium MuJoCo cart-pole balancing (return 1 per step, up to 1000).",
    ),
    "TwoModeBandit": EmbeddedTask(
        lambda num_envs, seed, device: TwoModeBandit(num_envs=num_envs, device=device),
        num_envs=256,
        train_cfgs={
            "trudi": trudi_train_cfg(
                "two_mode_bandit",
                num_steps_per_env=1,
                max_iterations=150,
                actor=_SMALL_ACTOR,
                critic={"hidden_dim": 128, "value_min": -0.5, "value_max": 1.5, "num_bins": 51},
                algorithm={"num_mini_batches": 2, "num_learning_epochs": 2},
            ),
            "ppo": ppo_train_cfg("two_mode_bandit", num_steps_per_env=1, max_iterations=150),
        },
        description="One-step task with two equally good action modes (multimodality check).",
    ),
}
for _name in ("Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5"):
    _experiment = _name.split("-")[0].lower()
    TASKS[_name] = EmbeddedTask(
        _gym(_name),
        num_envs=32,
        train_cfgs={
            "trudi": trudi_train_cfg(
                _experiment,
                max_iterations=500,
                actor=_LOCOMOTION_ACTOR,
                critic=_LOCOMOTION_CRITIC,
            ),
            "ppo": ppo_train_cfg(_experiment, max_iterations=500),
        },
        description=f"Gymnasium MuJoCo {_name} locomotion.",
    )


MJLAB_PREFIX = "Mjlab-"
"""Task ids of mjlab, whose own ``train`` and ``play`` entry points run them (exts/trudi_mjlab/README.md)."""

MJLAB_TRUDI_SUFFIX = "-TruDi"
"""Appended to an mjlab task id to name its TruDi variant (``trudi_mjlab`` registers one per velocity and cartpole
task)."""

SIMULATOR_PREFIXES = ("Isaac-", MJLAB_PREFIX)
"""Task ids that belong to Isaac Lab or mjlab, even where Gymnasium's registry also lists them."""


def gymnasium_task(name: str) -> EmbeddedTask | None:
    """An untuned task for any registered Gymnasium id outside :data:`TASKS`, or ``None`` if ``name`` is not one.

    It gets the locomotion tasks' sizes (32 envs, 256-wide networks, 500 iterations) and every algorithm default. The
    action and observation spaces are checked when the environment is built (:class:`GymVecEnv` needs a bounded
    ``Box`` action space and a ``Box`` or ``Dict`` of boxes observation space). ``module:EnvId`` imports ``module``
    first and an id of a plugin registry (``dm_control/...``) imports its plugin
    (:func:`~trudi.envs.registries.load_registry`); such a name is meant for Gymnasium and nothing else, so when it is
    not registered, or its packages are missing, this raises the one-line ConfigError instead of returning ``None``.
    """
    if name.startswith(SIMULATOR_PREFIXES):
        return None
    try:
        import gymnasium as gym
    except ImportError:
        return None
    env_id = load_registry(name)
    if env_id not in gym.registry:
        module, _ = split_task(name)
        plugin = plugin_of(env_id)
        if module is None and plugin is None:
            return None
        registered_by = f"importing {module!r}" if module is not None else plugin.module
        namespace = env_id.split("/", 1)[0] + "/" if "/" in env_id else ""
        close = difflib.get_close_matches(env_id, [i for i in gym.registry if i.startswith(namespace)], n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        else:
            hint = f"e.g. {plugin.example}." if plugin is not None else "check its spelling."
        raise ConfigError(f"--task={name!r} is invalid: {registered_by} registers no Gymnasium id {env_id!r}; {hint}")
    experiment = re.sub(r"[^0-9a-z]+", "_", env_id.rsplit("-v", 1)[0].lower()).strip("_")
    return EmbeddedTask(
        _gym(name),
        num_envs=32,
        train_cfgs={
            "trudi": trudi_train_cfg(
                experiment, max_iterations=500, actor=_LOCOMOTION_ACTOR, critic=_LOCOMOTION_CRITIC
            ),
            "ppo": ppo_train_cfg(experiment, max_iterations=500),
        },
        description=f"Gymnasium {name} (not tuned here: the locomotion tasks' sizes).",
    )


def is_embedded(name: str) -> bool:
    """Whether ``name`` runs on the embedded path: one of :data:`TASKS` or any other Gymnasium id."""
    return name in TASKS or gymnasium_task(name) is not None


def get_task(name: str) -> EmbeddedTask:
    """Look up an embedded task or a Gymnasium id; the error says what is supported."""
    task = TASKS.get(name) or gymnasium_task(name)
    if task is None:
        raise ConfigError(
            f"--task={name!r} is invalid: not an embedded task ({', '.join(TASKS)}), not a registered Gymnasium id"
            " (any continuous-control one, e.g. Pendulum-v1, Swimmer-v5, dm_control/walker-walk-v0, or"
            " <module>:<EnvId> to import the module that registers it), and not an Isaac Lab task here."
        )
    return task


def isaaclab_installed() -> bool:
    """Whether Isaac Lab's RSL-RL package and the ``trudi_isaaclab`` extension can be imported here."""
    return (
        importlib.util.find_spec("isaaclab_rl") is not None and importlib.util.find_spec("trudi_isaaclab") is not None
    )


def mjlab_trudi_task(task: str) -> str:
    """The id of the TruDi variant of the mjlab task ``task`` (``task`` itself if it already names one)."""
    return task if task.endswith(MJLAB_TRUDI_SUFFIX) else f"{task}{MJLAB_TRUDI_SUFFIX}"


def require_simulator(task: str, command: str) -> None:
    """Fail with a one-line ConfigError when ``scripts/<command>.py`` cannot run the non-embedded ``task`` here.

    An mjlab task never runs through the scripts: the error names mjlab's own ``command`` entry point (``train`` or
    ``play``) on the task's ``-TruDi`` variant. Any other task needs Isaac Lab.
    """
    if task.startswith(MJLAB_PREFIX):
        raise ConfigError(
            f"--task={task!r} is an mjlab task: {command} it with `{command} {mjlab_trudi_task(task)}` in a venv with"
            " mjlab (see exts/trudi_mjlab/README.md); this script runs the embedded, Gymnasium and Isaac Lab tasks."
        )
    if not isaaclab_installed():
        raise ConfigError(
            f"--task={task!r} is invalid: not a registered Gymnasium id, and Isaac Lab (trudi[isaaclab]) is not"
            f" installed here; available: the embedded tasks ({', '.join(TASKS)}) and any continuous-control"
            " Gymnasium id (<module>:<EnvId> imports the module that registers it)."
        )


def train_cfg(task: str, algo: str) -> dict:
    """A fresh copy of the train config of ``algo`` on ``task`` (an embedded task or a Gymnasium id)."""
    if algo not in ALGORITHMS:
        raise ValueError(f"algo={algo!r} is invalid: allowed values are {', '.join(ALGORITHMS)}.")
    return copy.deepcopy(get_task(task).train_cfgs[algo])
