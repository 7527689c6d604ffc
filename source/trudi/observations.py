"""Observation selection and running normalisation shared by the actor and the critic."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
from rsl_rl.modules import EmpiricalNormalization
from tensordict import TensorDict


class ObservationInput(nn.Module):
    """Concatenates a model's observation groups and normalises them with running statistics.

    The statistics change only through :meth:`update`, which the algorithm calls once per iteration after the
    update, so they are frozen while a rollout is collected and while the networks are trained on it.
    """

    def __init__(self, obs: TensorDict, obs_groups: dict[str, list[str]], obs_set: str, normalize: bool) -> None:
        super().__init__()
        self.groups = list(obs_groups[obs_set])
        self.dim = 0
        for group in self.groups:
            if obs[group].dim() != 2:
                raise ValueError(
                    f"{obs_set}: observation group '{group}' has shape {tuple(obs[group].shape)}; only flat"
                    " (num_envs, dim) groups are supported."
                )
            self.dim += obs[group].shape[-1]
        self.normalize = normalize
        self.normalizer = EmpiricalNormalization(self.dim) if normalize else nn.Identity()

    def concat(self, obs: TensorDict) -> torch.Tensor:
        """Raw concatenated observations (B, dim)."""
        return torch.cat([obs[group] for group in self.groups], dim=-1)

    def forward(self, obs: TensorDict) -> torch.Tensor:
        """Normalised concatenated observations (B, dim)."""
        return self.normalizer(self.concat(obs))

    def update(self, obs: TensorDict) -> None:
        """Merge a batch into the running statistics (no-op in eval mode or without normalisation).

        Under ``torch.distributed`` the batch is the union of every rank's batch: the moments are all-reduced before
        the merge, so every rank holds the statistics one process would compute from the concatenated data and the
        normalised inputs, hence the policy, stay identical across ranks. (rsl-rl >= 5.5's ``EmpiricalNormalization``
        does this itself, 5.4.2's does not; merging here gives the same result with both.)
        """
        normalizer = self.normalizer
        if not self.normalize or not normalizer.training:
            return
        count, mean, var = global_moments(self.concat(obs))
        total = int(normalizer.count) + count
        weight = count / total
        mean, var = mean.to(normalizer._mean.dtype), var.to(normalizer._var.dtype)
        delta = mean - normalizer._mean
        # Pooled moments of the old samples and the batch (Chan et al.), with the batch's share ``weight``.
        normalizer._var.add_(weight * (var - normalizer._var) + weight * (1.0 - weight) * delta.square())
        normalizer._mean.add_(weight * delta)
        normalizer._std.copy_(normalizer._var.sqrt())
        normalizer.count.fill_(total)


def global_moments(x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Sample count, mean (1, dim) and biased variance (1, dim) of ``x`` (B, dim) over all ranks of the process group.

    Two all-reduces: the counts and sums, then the squared deviations from the global mean (stabler than the sum of
    squares). Accumulated in float64, so the count is exact and the split of the samples across ranks changes the
    result only by float64 rounding.
    """
    x = x.double()
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    sums = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0)])
    if distributed:
        dist.all_reduce(sums)
    count = int(sums[0])
    mean = (sums[1:] / count).unsqueeze(0)
    squares = (x - mean).square().sum(0, keepdim=True)
    if distributed:
        dist.all_reduce(squares)
    return count, mean, squares / count
