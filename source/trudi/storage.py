"""Rollout storage for TruDi and the lambda-returns on Q."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tensordict import TensorDict


def lambda_returns(
    soft_rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    truncations: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(lambda) targets for Q over a rollout, all tensors (T, N).

    ``G_t = r~_t + gamma * (1 - terminated_t) * [ truncated_t ? V'_t : lam * G_{t+1} + (1 - lam) * V'_t ]``
    with ``V'_t = Q(s_{t+1}, a'_{t+1})`` stored at collection time. The last step of the rollout counts as
    truncated (there is no ``G_T`` to recurse into) unless it terminated. Terminations and truncations are
    exclusive: a time-out is stored as truncated, not terminated.
    """
    returns = torch.zeros_like(soft_rewards)
    next_return = next_values[-1]
    for t in reversed(range(soft_rewards.shape[0])):
        truncated = truncations[t] | (t == soft_rewards.shape[0] - 1)
        bootstrap = torch.where(truncated, next_values[t], lam * next_return + (1.0 - lam) * next_values[t])
        # A termination ends the return even on the rollout's last step.
        returns[t] = soft_rewards[t] + gamma * (~terminations[t]).float() * bootstrap
        next_return = returns[t]
    return returns


@dataclass
class TruDiBatch:
    """One mini-batch of flattened transitions."""

    observations: TensorDict
    """Raw observations of all groups (B,)."""
    actions: torch.Tensor
    """Unit-range actions ``tanh(x_N)`` (B, d)."""
    returns: torch.Tensor
    """Lambda-return targets (B,)."""
    next_embeddings: torch.Tensor
    """Critic embedding of ``(s', a')`` from collection time (B, E)."""
    episode_ends: torch.Tensor
    """Whether the episode ended at this step (B,): the stored next embedding then belongs to the next episode's
    first state, so the self-predictive loss is masked there."""


class TruDiStorage:
    """Fixed-size buffers of one rollout of ``num_steps`` steps from ``num_envs`` environments.

    The denoising chains are not stored: the trust region re-simulates chains of the old policy in the update.
    """

    def __init__(
        self, num_envs: int, num_steps: int, obs: TensorDict, action_dim: int, embedding_dim: int, device: str
    ) -> None:
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.device = device
        shape = (num_steps, num_envs)
        self.observations = TensorDict(
            {
                key: torch.zeros(*shape, *value.shape[1:], dtype=value.dtype, device=device)
                for key, value in obs.items()
            },
            batch_size=shape,
            device=device,
        )
        self.actions = torch.zeros(*shape, action_dim, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.soft_rewards = torch.zeros(shape, device=device)
        self.terminations = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncations = torch.zeros(shape, dtype=torch.bool, device=device)
        self.next_values = torch.zeros(shape, device=device)
        self.next_embeddings = torch.zeros(*shape, embedding_dim, device=device)
        self.returns = torch.zeros(shape, device=device)
        self.step = 0

    def add(
        self,
        observations: TensorDict,
        actions: torch.Tensor,
        rewards: torch.Tensor,
        soft_rewards: torch.Tensor,
        terminations: torch.Tensor,
        truncations: torch.Tensor,
        next_values: torch.Tensor,
        next_embeddings: torch.Tensor,
    ) -> None:
        """Write one environment step."""
        if self.step >= self.num_steps:
            raise OverflowError(
                f"TruDiStorage holds {self.num_steps} steps per rollout; clear() it before adding more."
            )
        t = self.step
        for key, value in observations.items():
            self.observations[key][t].copy_(value)
        self.actions[t].copy_(actions)
        self.rewards[t].copy_(rewards)
        self.soft_rewards[t].copy_(soft_rewards)
        self.terminations[t].copy_(terminations)
        self.truncations[t].copy_(truncations)
        self.next_values[t].copy_(next_values)
        self.next_embeddings[t].copy_(next_embeddings)
        self.step += 1

    def compute_returns(self, gamma: float, lam: float) -> None:
        """Fill :attr:`returns` with :func:`lambda_returns`."""
        self.returns.copy_(
            lambda_returns(self.soft_rewards, self.next_values, self.terminations, self.truncations, gamma, lam)
        )

    def mini_batches(self, num_mini_batches: int, num_epochs: int) -> Iterator[TruDiBatch]:
        """Yield shuffled mini-batches, a fresh permutation per epoch."""
        batch_size = self.num_envs * self.num_steps
        mini_batch_size = batch_size // num_mini_batches
        observations = self.observations.flatten(0, 1)
        actions = self.actions.flatten(0, 1)
        returns = self.returns.flatten(0, 1)
        next_embeddings = self.next_embeddings.flatten(0, 1)
        episode_ends = (self.terminations | self.truncations).flatten(0, 1)
        for _ in range(num_epochs):
            permutation = torch.randperm(batch_size, device=self.device)
            for i in range(num_mini_batches):
                idx = permutation[i * mini_batch_size : (i + 1) * mini_batch_size]
                yield TruDiBatch(observations[idx], actions[idx], returns[idx], next_embeddings[idx], episode_ends[idx])

    def clear(self) -> None:
        """Start a new rollout."""
        self.step = 0
