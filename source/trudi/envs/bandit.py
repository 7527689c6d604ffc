"""A one-step bandit with two equally rewarding action modes, used to measure whether a policy is multimodal."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from trudi.envs.observation_layout import ObsLayout


def mode_shares(actions: torch.Tensor, modes: Sequence[float] = (-0.6, 0.6), radius: float = 0.2) -> tuple[float, ...]:
    """Compute the fraction of action samples that lie close to each mode.

    Args:
        actions: Action samples of shape ``(N,)`` or ``(N, action_dim)``; only the first coordinate is used.
        modes: Mode centers.
        radius: A sample counts for a mode if its first coordinate is within ``radius`` of the mode center.

    Returns:
        One fraction in ``[0, 1]`` per mode, in the order of ``modes``.
    """
    a = actions.detach().reshape(actions.shape[0], -1)[:, 0].float()
    if a.numel() == 0:
        return tuple(0.0 for _ in modes)
    return tuple(((a - m).abs() <= radius).float().mean().item() for m in modes)


class TwoModeBandit(VecEnv):
    """One-step continuous bandit whose reward has two equally high, well separated peaks.

    The reward of an action ``a`` (clipped to ``[-1, 1]``) is ``max_m exp(-(a_0 - m)^2 / (2 width^2))`` over the two
    mode centers ``m``, where ``a_0`` is the first action coordinate (any further coordinates are ignored). Both
    modes reach reward 1, while the valley between them (e.g. ``a_0 = 0`` for the default modes ``±0.6``) has reward
    close to 0, so a unimodal Gaussian policy that averages the modes is penalized, whereas an expressive policy can
    put mass on both. :meth:`mode_shares` measures how the sampled actions split between the modes.

    Every step is a complete episode: ``dones`` are all ones and ``time_outs`` all zeros. The observation group
    ``"policy"`` is a constant vector of ones of shape ``(num_envs, 1)``, i.e. the task carries no state information.
    The environment is deterministic (it uses no randomness at all).
    """

    def __init__(
        self,
        num_envs: int,
        modes: tuple[float, float] = (-0.6, 0.6),
        width: float = 0.15,
        action_dim: int = 1,
        device: str = "cpu",
    ) -> None:
        """Create the bandit.

        Args:
            num_envs: Number of parallel (independent, identical) bandit instances.
            modes: Centers of the two reward peaks, within ``[-1, 1]``.
            width: Standard deviation of each Gaussian-shaped reward peak.
            action_dim: Action dimension; only the first coordinate affects the reward.
            device: Torch device of all returned tensors.

        Raises:
            ValueError: If an argument is out of range.
        """
        if num_envs < 1:
            raise ValueError(f"num_envs must be positive, got {num_envs}.")
        if len(modes) != 2:
            raise ValueError(f"TwoModeBandit needs exactly two modes, got {modes}.")
        if width <= 0.0:
            raise ValueError(f"width must be positive, got {width}.")
        if action_dim < 1:
            raise ValueError(f"action_dim must be positive, got {action_dim}.")

        self.num_envs = num_envs
        self.num_actions = action_dim
        self.modes = (float(modes[0]), float(modes[1]))
        self.width = float(width)
        self.device = device
        self.max_episode_length = 1
        self.step_dt = 1.0
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long, device=device)
        self.cfg = {
            "task": "TwoModeBandit",
            "num_envs": num_envs,
            "modes": list(self.modes),
            "width": self.width,
            "action_dim": action_dim,
        }
        self._modes_t = torch.tensor(self.modes, dtype=torch.float32, device=device)
        self.obs_layout = ObsLayout.of_shape((1,))
        """The observation vector: one constant feature."""

    @property
    def unwrapped(self) -> TwoModeBandit:
        """The environment itself."""
        return self

    def get_observations(self) -> TensorDict:
        """Return the constant observations.

        Returns:
            TensorDict with the group ``"policy"``: ones of shape ``(num_envs, 1)``, float32.
        """
        obs = torch.ones(self.num_envs, 1, dtype=torch.float32, device=self.device)
        return TensorDict({"policy": obs}, batch_size=[self.num_envs], device=self.device)

    def reset(self) -> tuple[TensorDict, dict]:
        """Nothing to reset (every step is a whole episode); returns the observations and empty extras."""
        return self.get_observations(), {}

    def reward(self, actions: torch.Tensor) -> torch.Tensor:
        """Compute the reward of a batch of actions without stepping.

        Args:
            actions: Actions of shape ``(N, action_dim)`` or ``(N,)``; clipped to ``[-1, 1]``.

        Returns:
            Rewards of shape ``(N,)``, float32, in ``(0, 1]``.
        """
        a0 = actions.detach().reshape(actions.shape[0], -1)[:, 0].to(self.device, torch.float32).clamp(-1.0, 1.0)
        sq_dist = (a0.unsqueeze(-1) - self._modes_t) ** 2
        return torch.exp(-sq_dist / (2.0 * self.width**2)).amax(dim=-1)

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        """Evaluate one action per environment; every step ends the episode.

        Args:
            actions: Actions of shape ``(num_envs, num_actions)``.

        Returns:
            observations: The constant observations (see :meth:`get_observations`).
            rewards: Rewards of shape ``(num_envs,)``, float32.
            dones: All ones, shape ``(num_envs,)``, long.
            extras: ``{"time_outs": zeros (bool), "log": {"Bandit/share_mode_0": ..., "Bandit/share_mode_1": ...}}``.
        """
        if actions.shape != (self.num_envs, self.num_actions):
            raise ValueError(
                f"Expected actions of shape {(self.num_envs, self.num_actions)}, got {tuple(actions.shape)}."
            )
        rewards = self.reward(actions)
        dones = torch.ones(self.num_envs, dtype=torch.long, device=self.device)
        share_0, share_1 = self.mode_shares(actions)
        extras = {
            "time_outs": torch.zeros(self.num_envs, dtype=torch.bool, device=self.device),
            # Keys contain "/" so RSL-RL's Logger records them under this exact name.
            "log": {"Bandit/share_mode_0": share_0, "Bandit/share_mode_1": share_1},
        }
        return self.get_observations(), rewards, dones, extras

    def mode_shares(self, actions: torch.Tensor, radius: float = 0.2) -> tuple[float, float]:
        """Compute the fraction of action samples close to each of the two modes.

        Args:
            actions: Action samples of shape ``(N,)`` or ``(N, action_dim)``; only the first coordinate is used.
            radius: A sample counts for a mode if its first coordinate is within ``radius`` of the mode center.

        Returns:
            The fractions ``(share_mode_0, share_mode_1)`` for ``modes[0]`` and ``modes[1]``.
        """
        share_0, share_1 = mode_shares(actions, self.modes, radius)
        return share_0, share_1

    def close(self) -> None:
        """Release resources (nothing to do)."""
