"""The distributional Q critic (HL-Gauss) with an auxiliary self-predictive head, after REPPO."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from tensordict import TensorDict

from trudi.config import ConfigError
from trudi.observations import ObservationInput
from trudi.options import CriticOptions, takes_options


def hl_gauss_probs(
    values: torch.Tensor, value_min: float | torch.Tensor, value_max: float | torch.Tensor, num_bins: int, sigma: float
) -> torch.Tensor:
    """Histogram-loss Gaussian targets: ``N(value, sigma^2)`` integrated over each bin, renormalised (B, num_bins).

    Values are clipped to ``[value_min, value_max]``; the bins are centred on ``linspace(value_min, value_max)``,
    so their edges extend half a bin beyond the support.
    """
    bin_width = (value_max - value_min) / (num_bins - 1)
    edges = torch.linspace(0.0, 1.0, num_bins + 1, device=values.device) * (num_bins * bin_width) + (
        value_min - 0.5 * bin_width
    )
    values = torch.minimum(torch.maximum(values, torch.as_tensor(value_min)), torch.as_tensor(value_max))
    cdf = torch.special.ndtr((edges - values.unsqueeze(-1)) / sigma)
    probs = cdf[..., 1:] - cdf[..., :-1]
    return probs / (cdf[..., -1:] - cdf[..., :1])


class _ParameterPrecisionRMSNorm(nn.RMSNorm):
    """RMSNorm computed in its weight's dtype.

    Under bfloat16 autocast the statistics stay float32, and the fused kernel, which needs input and weight of one
    dtype, stays usable; the next Linear casts back to bfloat16.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype))


class _DenseBlock(nn.Sequential):
    """Linear, RMSNorm, SiLU: the REPPO critic's building block."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(in_dim, out_dim), _ParameterPrecisionRMSNorm(out_dim), nn.SiLU())


class QCritic(nn.Module):
    """Distributional ``Q(s, a)``: logits over ``num_bins`` atoms on ``[value_min, value_max]``, ``Q = softmax . bins``.

    An encoder embeds ``(s, a)``; a head maps the embedding to logits; a predictor head maps it to a guess of the
    next step's embedding (the auxiliary self-predictive loss). The support can be set once, after a warm-up
    rollout, when ``value_min``/``value_max`` are ``"auto"`` (see :meth:`TruDi.compute_returns`).
    """

    is_recurrent: bool = False
    """The critic is feed-forward."""

    @takes_options(CriticOptions)
    def __init__(
        self,
        obs: TensorDict,
        obs_groups: dict[str, list[str]],
        obs_set: str,
        action_dim: int,
        distribution_cfg: dict | None = None,
        **options: Any,
    ) -> None:
        """Build the critic.

        Args:
            obs: Example observations (only shapes are read).
            obs_groups: Mapping of observation sets to observation groups.
            obs_set: The observation set this model reads (``"critic"``); also the prefix of error messages.
            action_dim: Action dimension.
            distribution_cfg: Must be ``None``: the critic outputs a categorical value distribution of its own.
                Accepted because Isaac Lab's config migration requires the field on every model config.
            **options: The ``critic`` options, each declared (type, default, allowed values, meaning) in
                :class:`~trudi.options.CriticOptions`.
        """
        super().__init__()
        prefix = obs_set
        if distribution_cfg is not None:
            raise ConfigError(
                f"{prefix}.distribution_cfg={distribution_cfg!r} is invalid: must be None, QCritic predicts an HL-Gauss"
                " categorical distribution of its own."
            )
        o = CriticOptions.validated(options, section=prefix)
        self.num_bins = o.num_bins
        self.hl_gauss_sigma = o.hl_gauss_sigma
        hidden_dim = o.hidden_dim
        # An auto support starts at [-1, 1] and is set from the warm-up rollout.
        value_min, value_max = (-1.0, 1.0) if o.auto_support else (float(o.value_min), float(o.value_max))
        self.observations = ObservationInput(obs, obs_groups, obs_set, o.obs_normalization)
        self.obs_dim = self.observations.dim
        self.embedding_dim = hidden_dim
        blocks = [_DenseBlock(self.obs_dim + action_dim, hidden_dim)]
        blocks += [_DenseBlock(hidden_dim, hidden_dim) for _ in range(o.num_layers - 1)]
        self.encoder = nn.Sequential(*blocks)
        self.head = nn.Sequential(_DenseBlock(hidden_dim, hidden_dim), nn.Linear(hidden_dim, o.num_bins))
        # Small initial logits: a near-uniform value distribution, so Q starts at the support's midpoint (0 on the
        # symmetric default support, in the rewards' normalised unit) for every input instead of at a random value.
        with torch.no_grad():
            self.head[-1].weight.mul_(0.1)
            self.head[-1].bias.zero_()
        self.predictor = nn.Sequential(_DenseBlock(hidden_dim, hidden_dim), nn.Linear(hidden_dim, hidden_dim))
        # The support is state (it may be set after a warm-up), so it lives in buffers and in checkpoints.
        self.register_buffer("value_range", torch.tensor([value_min, value_max]))
        self.register_buffer("support_pending", torch.tensor(o.auto_support))

    # ------------------------------------------------------------------ support

    @property
    def support(self) -> torch.Tensor:
        """Atom locations (num_bins,)."""
        return (
            torch.linspace(0.0, 1.0, self.num_bins, device=self.value_range.device)
            * (self.value_range[1] - self.value_range[0])
            + self.value_range[0]
        )

    @property
    def bin_width(self) -> torch.Tensor:
        """Distance between neighbouring atoms."""
        return (self.value_range[1] - self.value_range[0]) / (self.num_bins - 1)

    def set_support(self, value_min: float, value_max: float) -> None:
        """Set ``[value_min, value_max]`` and mark the support as settled."""
        if not (math.isfinite(value_min) and math.isfinite(value_max) and value_min < value_max):
            raise ValueError(
                f"critic support [{value_min}, {value_max}] is invalid: need finite value_min < value_max."
            )
        self.value_range.copy_(torch.tensor([value_min, value_max]))
        self.support_pending.fill_(False)

    def target_probs(self, returns: torch.Tensor) -> torch.Tensor:
        """HL-Gauss target distribution for scalar returns (B,) -> (B, num_bins)."""
        sigma = self.hl_gauss_sigma * self.bin_width
        return hl_gauss_probs(returns, self.value_range[0], self.value_range[1], self.num_bins, sigma)

    # ------------------------------------------------------------------ network

    def embed(self, obs: TensorDict, actions: torch.Tensor) -> torch.Tensor:
        """Embedding of ``(s, a)`` (B, hidden_dim); actions are the unit-range ``tanh`` outputs."""
        return self.encoder(torch.cat([self.observations(obs), actions], dim=-1))

    def logits(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits of the value distribution (B, num_bins), in the support's dtype (float32 under mixed precision)."""
        return self.head(embedding).to(self.value_range.dtype)

    def predict_next_embedding(self, embedding: torch.Tensor) -> torch.Tensor:
        """The auxiliary head's guess of the next step's embedding (B, hidden_dim), in the support's dtype."""
        return self.predictor(embedding).to(self.value_range.dtype)

    def value(self, logits: torch.Tensor) -> torch.Tensor:
        """Expected value ``softmax(logits) . support`` (B,).

        A product and a sum rather than a matmul, which autocast would run in bfloat16 under mixed precision.
        """
        return (F.softmax(logits, dim=-1) * self.support).sum(-1)

    def forward(self, obs: TensorDict, actions: torch.Tensor) -> torch.Tensor:
        """``Q(s, a)`` (B,)."""
        return self.value(self.logits(self.embed(obs, actions)))

    def update_normalization(self, obs: TensorDict) -> None:
        """Update the running observation statistics (no-op in eval mode or without normalisation)."""
        self.observations.update(obs)
