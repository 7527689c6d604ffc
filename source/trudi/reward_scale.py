"""The unit of TruDi's rewards: the running root-mean-square of the discounted return.

Dividing every reward by the RMS of ``R_t = r_t + gamma * R_{t-1}`` (reset at episode ends) makes the critic's
targets, its support, the entropy bonus and the KL penalty independent of the reward's unit: multiplying a task's
rewards by any ``c > 0`` multiplies the scale by ``c`` and leaves every normalised quantity unchanged. The RMS, not the
standard deviation, so a constant reward (a balancing task's alive bonus) still has a unit.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from trudi.observations import global_moments

MIN_SCALE = 1e-8
"""Floor of the scale, reached only when every reward seen so far was zero."""


class ReturnScale(nn.Module):
    """Running RMS of the per-environment discounted return; the statistics change only in :meth:`update`."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("running_return", torch.zeros(num_envs), persistent=False)
        """``R`` of each environment's episode in flight."""
        self.register_buffer("mean_square", torch.zeros((), dtype=torch.float64))
        """Mean of ``R^2`` over every step seen."""
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        """Steps seen."""
        self.register_buffer("scale", torch.ones(()))
        """``sqrt(mean_square)``: what rewards are divided by (1 before the first update)."""

    def update(self, rewards: torch.Tensor, episode_ends: torch.Tensor) -> tuple[float | torch.Tensor, torch.Tensor]:
        """Merge a rollout of raw rewards (T, E) into the statistics; returns the old and the new scale.

        On the first call the old scale is the new one: values computed before any statistics existed (by the
        untrained critic) are in no unit to convert from.

        Under ``torch.distributed`` the moments are those of every rank's rollout together, so all ranks agree.
        """
        old_scale, first = self.scale.clone(), int(self.count) == 0
        returns = []
        running = self.running_return
        for t in range(rewards.shape[0]):
            # R_t = r_t + gamma * R_{t-1}, restarted after an episode end
            running = rewards[t] + self.gamma * running
            returns.append(running)
            running = running * (~episode_ends[t]).float()
        self.running_return.copy_(running)
        count, mean, var = global_moments(torch.stack(returns).reshape(-1, 1))
        # Pooled mean of R^2 over the old steps and this rollout's.
        weight = count / (int(self.count) + count)
        batch_mean_square = (var + mean.square()).squeeze()
        self.mean_square.add_(weight * (batch_mean_square - self.mean_square))
        self.count.add_(count)
        self.scale.copy_(self.mean_square.sqrt().clamp(min=MIN_SCALE))
        return (self.scale.clone() if first else old_scale), self.scale
