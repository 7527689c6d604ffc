"""Observation selection and running normalisation shared by the actor and the critic."""

from __future__ import annotations

from importlib.metadata import version

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
        """Merge a batch into the running statistics with RSL-RL's ``EmpiricalNormalization.update``.

        It is a no-op in eval mode or without normalisation. Under ``torch.distributed`` the statistics must be those
        of the union of every rank's batch, so that the normalised inputs, hence the policy, stay identical across
        ranks: rsl-rl >= 5.5's ``update`` all-reduces the moments itself; 5.4.2's merges only what it is given, so
        there it is given the ranks' batches gathered (equal batch sizes, as torchrun runs have).
        """
        if not self.normalize:
            return
        x = self.concat(obs)
        if _distributed() and not NORMALIZER_REDUCES_OVER_RANKS:
            gathered = x.new_empty((dist.get_world_size() * x.shape[0], *x.shape[1:]))
            dist.all_gather_into_tensor(gathered, x.contiguous())
            x = gathered
        self.normalizer.update(x)


NORMALIZER_REDUCES_OVER_RANKS = tuple(int(p) for p in version("rsl-rl-lib").split(".")[:2]) >= (5, 5)
"""Whether the installed ``EmpiricalNormalization.update`` all-reduces its moments over the ranks (rsl-rl >= 5.5)."""


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def global_moments(x: torch.Tensor) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Sample count, mean (1, dim) and biased variance (1, dim) of ``x`` (B, dim) over all ranks of the process group.

    Two all-reduces: the counts and sums, then the squared deviations from the global mean (stabler than the sum of
    squares). Accumulated in float64, so the count is exact and the split of the samples across ranks changes the
    result only by float64 rounding.
    """
    x = x.double()
    distributed = _distributed()
    sums = torch.cat([x.new_tensor([x.shape[0]]), x.sum(0)])
    if distributed:
        dist.all_reduce(sums)
    count = int(sums[0])
    mean = (sums[1:] / count).unsqueeze(0)
    squares = (x - mean).square().sum(0, keepdim=True)
    if distributed:
        dist.all_reduce(squares)
    return count, mean, squares / count
