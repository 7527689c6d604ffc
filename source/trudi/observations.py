"""Observation selection and running normalisation shared by the actor and the critic."""

from __future__ import annotations

import torch
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
        """Update the running statistics (no-op in eval mode or without normalisation)."""
        if self.normalize:
            self.normalizer.update(self.concat(obs))
