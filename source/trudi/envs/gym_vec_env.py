"""Adapter that exposes a batch of Gymnasium environments through RSL-RL's :class:`~rsl_rl.env.VecEnv` contract."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from trudi.config import ConfigError
from trudi.envs.observation_layout import ObsLayout
from trudi.envs.registries import load_registry

_INSTALL_HINT = 'Install the optional simulator dependencies with `pip install -e ".[gym]"`.'


class GymVecEnv(VecEnv):
    """Run ``num_envs`` copies of a Gymnasium environment on the CPU behind RSL-RL's ``VecEnv`` interface.

    The copies are stepped sequentially by :class:`gymnasium.vector.SyncVectorEnv` in ``SAME_STEP`` autoreset mode:
    a sub-environment whose episode ends (terminated or truncated) is reset inside the same :meth:`step` call. Hence
    every transition returned by :meth:`step` is a real one (no dummy "reset" step as in Gymnasium's default
    ``NEXT_STEP`` mode), and the observation returned for a finished environment is already the **first observation
    of its next episode**. The final observation of the finished episode comes in ``extras["final_obs"]`` (the form
    of Isaac Lab's ``compute_final_obs``), and ``extras["time_outs"]`` marks truncations without termination: PPO
    bootstraps those from ``V(s_t)``, TruDi from ``Q`` at the final observation.

    Actions are expected in ``[-1, 1]`` per dimension; they are clipped to that range and mapped affinely onto the
    bounds of the environment's ``Box`` action space. Observations are returned as float32 in a single observation
    group ``"policy"``: a ``Box`` or a (nested) ``Dict`` of boxes flattened into one vector as :attr:`obs_layout`
    says (keys sorted at every level, depth first, each box row-major).

    Only environments with a bounded ``Box`` action space are supported. The task may be any registered id, an id of
    a known plugin registry (``dm_control/...``, which imports shimmy) or Gymnasium's ``module:EnvId``.

    Sub-environment ``i`` is seeded with ``seed + i`` on the first reset; later resets continue the sub-environment's
    own random stream, so a run is reproducible for a fixed seed and action sequence.
    """

    def __init__(self, task: str, num_envs: int, seed: int = 0, device: str = "cpu", **make_kwargs: Any) -> None:
        """Create and reset the vectorized environment.

        Args:
            task: Gymnasium environment id, e.g. ``"InvertedPendulum-v5"``, ``"dm_control/walker-walk-v0"`` or
                ``"my_package:MyEnv-v0"`` (imports ``my_package`` first).
            num_envs: Number of environment copies.
            seed: Base seed; sub-environment ``i`` is seeded with ``seed + i`` on the first reset.
            device: Torch device on which observations, rewards and dones are returned.
            **make_kwargs: Extra keyword arguments forwarded to :func:`gymnasium.make` (e.g. ``max_episode_steps``).

        Raises:
            ImportError: If Gymnasium or a simulator dependency of the task (e.g. MuJoCo) is not installed.
            ValueError: If ``task`` is not a registered Gymnasium id, ``num_envs`` is not positive, or the task's
                action/observation spaces are not supported.
        """
        # Gymnasium is imported lazily so that `import trudi.envs` stays free of simulator dependencies.
        try:
            import gymnasium as gym
            from gymnasium.vector import AutoresetMode, SyncVectorEnv
        except ImportError as err:
            raise ImportError(
                f"GymVecEnv requires gymnasium, which could not be imported ({err}). {_INSTALL_HINT}"
            ) from err

        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}.")

        # Validate the id before building any environment so the error names the task and not a sub-env internals.
        env_id = load_registry(task)
        try:
            spec = gym.spec(env_id)
        except (gym.error.UnregisteredEnv, gym.error.DeprecatedEnv) as err:
            raise ValueError(f"Unknown Gymnasium environment id '{task}': {err}") from err

        def make_env() -> gym.Env:
            return gym.make(env_id, **make_kwargs)

        try:
            vec_env = SyncVectorEnv([make_env] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP)
        except (gym.error.DependencyNotInstalled, ImportError) as err:
            raise ImportError(f"Cannot create Gymnasium environment '{task}': {err}. {_INSTALL_HINT}") from err

        action_space = vec_env.single_action_space
        obs_space = vec_env.single_observation_space
        try:
            if not isinstance(action_space, gym.spaces.Box):
                raise ConfigError(
                    f"--task={task!r} is invalid: its action space {action_space} is not supported; TruDi needs a"
                    " continuous (bounded Box) action space."
                )
            if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
                # Affine rescaling from [-1, 1] is undefined for unbounded actions.
                raise ConfigError(
                    f"--task={task!r} is invalid: its action space {action_space} is unbounded; TruDi needs finite Box"
                    " bounds."
                )
            obs_layout = ObsLayout.of_space(obs_space, task)
        except ValueError:
            vec_env.close()
            raise

        self._env = vec_env
        self.task = task
        self.num_envs = num_envs
        self.num_actions = int(np.prod(action_space.shape))
        self.obs_layout = obs_layout
        """Where each observation key lands in the ``"policy"`` vector; saved with the run as params/obs_layout.yaml."""
        self.num_obs = obs_layout.size
        self.device = device
        self.seed = seed

        # `make_kwargs` may override the registered time limit, so read it from the instantiated env's spec.
        env_spec = vec_env.envs[0].spec or spec
        max_steps = env_spec.max_episode_steps
        self.max_episode_length = int(max_steps) if max_steps is not None else 1000
        self.step_dt = float(getattr(vec_env.envs[0].unwrapped, "dt", 1.0))
        self.cfg = {"task": task, "num_envs": num_envs, "seed": seed, "make_kwargs": dict(make_kwargs)}

        self._action_shape = action_space.shape
        self._action_dtype = action_space.dtype
        self._action_low = action_space.low.astype(np.float64).reshape(-1)
        self._action_high = action_space.high.astype(np.float64).reshape(-1)

        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=device)
        obs, _ = vec_env.reset(seed=seed)
        self._obs = self._to_tensor(obs)

    @property
    def unwrapped(self) -> GymVecEnv:
        """The environment itself (there is no wrapper stack on top of it)."""
        return self

    def get_observations(self) -> TensorDict:
        """Return the current observations.

        Returns:
            TensorDict with the group ``"policy"`` of shape ``(num_envs, obs_dim)`` (float32) on ``device``.
        """
        return TensorDict({"policy": self._obs.clone()}, batch_size=[self.num_envs], device=self.device)

    def reset(self) -> tuple[TensorDict, dict]:
        """Start a new episode in every sub-environment (each continues its own random stream).

        Returns:
            The first observations (as :meth:`get_observations`) and empty extras.
        """
        obs, _ = self._env.reset()
        self._obs = self._to_tensor(obs)
        self.episode_length_buf.zero_()
        return self.get_observations(), {}

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Apply normalized actions to all sub-environments.

        Args:
            actions: Actions in ``[-1, 1]`` (values outside are clipped). Shape: ``(num_envs, num_actions)``.

        Returns:
            observations: TensorDict with the group ``"policy"``; for environments that finished an episode in this
                step, the first observation of the new episode.
            rewards: Rewards of the transition. Shape: ``(num_envs,)``, float32.
            dones: ``terminated | truncated``. Shape: ``(num_envs,)``, long.
            extras: ``{"time_outs": truncated & ~terminated (bool, shape (num_envs,)), "log": {}}``, and when an
                episode ended, ``"final_obs": {"policy": (num_envs, obs_dim)}`` holding the last observation of each
                finished episode (the other rows repeat ``observations``), as Isaac Lab's ``extras["final_obs"]``.
        """
        a = actions.detach().to("cpu", torch.float64).reshape(self.num_envs, self.num_actions).numpy()
        a = np.clip(a, -1.0, 1.0)
        a = self._action_low + 0.5 * (a + 1.0) * (self._action_high - self._action_low)
        a = a.astype(self._action_dtype).reshape(self.num_envs, *self._action_shape)

        obs, rewards, terminated, truncated, infos = self._env.step(a)

        self._obs = self._to_tensor(obs)
        rewards_t = torch.as_tensor(rewards, dtype=torch.float32, device=self.device)
        terminated_t = torch.as_tensor(terminated, dtype=torch.bool, device=self.device)
        truncated_t = torch.as_tensor(truncated, dtype=torch.bool, device=self.device)
        dones = terminated_t | truncated_t

        # Finished envs were already reset by SAME_STEP autoreset, so their counter restarts at the new episode.
        self.episode_length_buf += 1
        self.episode_length_buf[dones] = 0

        # RSL-RL's Logger derives episode return and length from rewards/dones, so nothing else needs logging here.
        extras = {"time_outs": truncated_t & ~terminated_t, "log": {}}
        if "final_obs" in infos:
            # As Isaac Lab's compute_final_obs does: every group for every env, the pre-reset observation where an
            # episode ended in this step. Gymnasium gives each finished env's own observation (a dict for Dict spaces).
            final = self.obs_layout.flatten(obs, self.num_envs)
            for i in np.flatnonzero(infos["_final_obs"]):
                final[i] = self.obs_layout.flatten(infos["final_obs"][i], 1)[0]
            extras["final_obs"] = {"policy": torch.as_tensor(final, device=self.device)}
        return self.get_observations(), rewards_t, dones.long(), extras

    def close(self) -> None:
        """Close all sub-environments."""
        self._env.close()

    def _to_tensor(self, obs: Any) -> torch.Tensor:
        return torch.as_tensor(self.obs_layout.flatten(obs, self.num_envs), device=self.device)
