"""The controlled-diffusion (DIME-style) sampler: schedules, the control network and the chains.

Notation follows the SPEC: latents ``x_0 .. x_N`` in ``R^d``, prior ``x_0 ~ N(0, init_std^2 I)``,
per-step sizes ``eta_n = delta_n / friction`` and one Euler-Maruyama step

    mu_n    = x_n + eta_n * (-x_n / init_std^2 + f(x_n, s, n))
    x_{n+1} = mu_n + sqrt(2 eta_n) * noise

The action is ``tanh(x_N)``. The per-step noise is state independent: the network only predicts the control.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SCHEDULES = ("cosine", "linear", "constant")
"""The step-size schedules the sampler accepts."""

TANH_LIMIT = 0.999
"""Actions are kept inside ``[-TANH_LIMIT, TANH_LIMIT]`` so that ``log(1 - tanh^2)`` stays finite."""

PRE_TANH_LIMIT = math.atanh(TANH_LIMIT)
"""The matching bound on the last latent ``x_N``."""

_LOG_2PI = math.log(2.0 * math.pi)


def step_schedule(
    name: str, num_steps: int, minimum: float = 0.001, offset: float = 0.008, power: float = 2.0
) -> torch.Tensor:
    """Return the relative step sizes ``sched(n)`` for ``n = 0 .. num_steps - 1``.

    The cosine schedule is ``(1 - minimum) * cos(pi/2 * (1 + offset - t) / (1 + offset))**power + minimum`` with
    ``t = (N - n) / N``: large steps at the start of the chain (next to the prior), shrinking towards the action
    (for ``N = 8``: 1.00, 0.96, 0.85, 0.68, 0.49, 0.31, 0.15, 0.04). ``linear`` is ``(n + 1) / N``, the other way
    round (small first, large last); ``constant`` is 1.
    """
    n = torch.arange(num_steps, dtype=torch.float64)
    if name == "cosine":
        t = (num_steps - n) / num_steps
        sched = (1.0 - minimum) * torch.cos(0.5 * math.pi * (1.0 + offset - t) / (1.0 + offset)) ** power + minimum
    elif name == "linear":
        sched = (n + 1) / num_steps
    elif name == "constant":
        sched = torch.ones(num_steps, dtype=torch.float64)
    else:
        raise ValueError(f"schedule='{name}' is not a known step schedule; allowed: {', '.join(SCHEDULES)}.")
    return sched.float()


def inverse_softplus(value: torch.Tensor) -> torch.Tensor:
    """Return ``y`` with ``softplus(y) == value`` (for positive ``value``)."""
    return value + torch.log(-torch.expm1(-value))


def log_one_minus_tanh_sq(x: torch.Tensor) -> torch.Tensor:
    """Numerically stable ``log(1 - tanh(x)^2)``, the log-Jacobian of the tanh squashing."""
    return 2.0 * (math.log(2.0) - x - F.softplus(-2.0 * x))


def squash(x_final: torch.Tensor) -> torch.Tensor:
    """Map the last latent to an action in ``(-1, 1)``, clipped for numerical safety."""
    return torch.tanh(x_final.clamp(-PRE_TANH_LIMIT, PRE_TANH_LIMIT))


def squash_log_det(x_final: torch.Tensor) -> torch.Tensor:
    """``log|det d tanh(x_N) / d x_N|`` summed over dimensions (B,), at the same clipped latent as ``squash``."""
    return log_one_minus_tanh_sq(x_final.clamp(-PRE_TANH_LIMIT, PRE_TANH_LIMIT)).sum(-1)


class TimeEmbedding(nn.Module):
    """Fourier features of the step index with learnable phases, followed by a small MLP."""

    def __init__(self, num_frequencies: int = 32, output_dim: int = 16) -> None:
        super().__init__()
        # Fixed frequencies over ~[0.1, 100] on the raw step index, as in the DIME reference.
        self.register_buffer("frequencies", torch.linspace(0.1, 100.0, num_frequencies))
        self.phases = nn.Parameter(torch.randn(num_frequencies))
        self.mlp = nn.Sequential(
            nn.Linear(2 * num_frequencies, num_frequencies), nn.GELU(), nn.Linear(num_frequencies, output_dim)
        )

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """Embed step indices of shape ``(...,)`` into ``(..., output_dim)``."""
        angles = step.unsqueeze(-1) * self.frequencies + self.phases
        return self.mlp(torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1))


class ControlNetwork(nn.Module):
    """The control ``f(x_n, s, n)``: an MLP on ``[x_n, s, time_embedding(n)]``.

    Along a chain only ``x_n`` changes, so the first layer is applied in parts: :meth:`state_term` and
    :meth:`step_biases` once per chain, :meth:`forward` per step, instead of recomputing them at every step. The
    parameters stay one ``nn.Linear`` on the concatenated input.
    """

    def __init__(
        self,
        action_dim: int,
        obs_dim: int,
        hidden_dims: tuple[int, ...] | list[int] = (256, 256, 256),
        time_frequencies: int = 32,
        time_embedding_dim: int = 16,
        output_clip: float = 1e4,
    ) -> None:
        super().__init__()
        self.action_dim, self.obs_dim = action_dim, obs_dim
        self.time_embedding = TimeEmbedding(time_frequencies, time_embedding_dim)
        layers: list[nn.Module] = []
        in_dim = action_dim + obs_dim + time_embedding_dim
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.GELU()]
            in_dim = width
        output = nn.Linear(in_dim, action_dim)
        # A near-zero output layer makes the initial policy tanh of the uncontrolled process (SPEC 1).
        with torch.no_grad():
            output.weight.mul_(1e-8)
            output.bias.zero_()
        self.mlp = nn.Sequential(*layers, output)
        self.output_clip = output_clip

    def split_first_layer(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first layer's weight columns for ``x_n`` (H, d), ``s`` (H, obs_dim) and ``e_n`` (H, E), and its bias."""
        weight, d, o = self.mlp[0].weight, self.action_dim, self.obs_dim
        return weight[:, :d], weight[:, d : d + o], weight[:, d + o :], self.mlp[0].bias

    def state_term(self, state: torch.Tensor) -> torch.Tensor:
        """The first layer's product with the states (B, obs_dim): (B, H), the same at every step of a chain."""
        return F.linear(state, self.split_first_layer()[1])

    def step_biases(self, step_embeddings: torch.Tensor) -> torch.Tensor:
        """The first layer's bias plus its product with each embedded step (N, E): (N, H)."""
        _, _, step_weight, bias = self.split_first_layer()
        return F.linear(step_embeddings, step_weight, bias)

    def forward(
        self, x: torch.Tensor, state_term: torch.Tensor, step_bias: torch.Tensor, latent_weight: torch.Tensor
    ) -> torch.Tensor:
        """Return the control for latents ``x`` (B, d) from the parts of the first layer a chain shares.

        ``state_term`` (B, H) and ``step_bias`` (H,) as :meth:`state_term` and :meth:`step_biases` give them, and
        ``latent_weight``, the first layer's ``x_n`` columns (H, d) from :meth:`split_first_layer`. The columns are
        taken once per chain: a slice taken at every step would cost one slice backward (a full-size gradient
        buffer) per step instead of one per chain.
        """
        hidden = F.linear(x, latent_weight) + state_term + step_bias
        for layer in itertools.islice(self.mlp, 1, None):  # the first layer was applied in parts above
            hidden = layer(hidden)
        # Under mixed precision the layers ran in bfloat16; the chain's arithmetic stays in the latents' dtype.
        return hidden.to(x.dtype).clamp(-self.output_clip, self.output_clip)


class DiffusionProcess(nn.Module):
    """The state-independent part of the sampler: prior, step sizes and learned friction.

    Holds the parameters the trust region also constrains (friction, optionally the step sizes) and
    computes the Gaussian transition kernels given a control.
    """

    def __init__(
        self,
        action_dim: int,
        num_denoising_steps: int,
        init_std: float,
        schedule: str,
        learn_friction: bool,
        init_friction: float,
        learn_dt: bool,
        per_step_dt: bool,
    ) -> None:
        """The arguments are the ``actor`` options of the same names (:class:`~trudi.options.ActorOptions`)."""
        super().__init__()
        self.num_steps = num_denoising_steps
        self.init_std = init_std
        sched = step_schedule(schedule, num_denoising_steps)
        base_dt = 1.0 / num_denoising_steps
        if per_step_dt:
            # One learnable step size per denoising step, initialised to the scheduled values sched(n) / N.
            raw_dt = inverse_softplus(base_dt * sched)
            self.register_buffer("schedule_factors", torch.ones(num_denoising_steps))
        else:
            raw_dt = inverse_softplus(torch.tensor([base_dt]))
            self.register_buffer("schedule_factors", sched)
        self.raw_dt = nn.Parameter(raw_dt, requires_grad=learn_dt)
        raw_friction = inverse_softplus(torch.full((action_dim,), float(init_friction)))
        self.raw_friction = nn.Parameter(raw_friction, requires_grad=learn_friction)

    @property
    def friction(self) -> torch.Tensor:
        """Per-dimension friction ``gamma`` (d,)."""
        return F.softplus(self.raw_friction)

    @property
    def step_sizes(self) -> torch.Tensor:
        """Step sizes ``delta_n`` (N,)."""
        return F.softplus(self.raw_dt) * self.schedule_factors

    def etas(self) -> torch.Tensor:
        """Per-step, per-dimension ``eta_n = delta_n / gamma`` (N, d); the noise variance is ``2 eta``."""
        return self.step_sizes.unsqueeze(-1) / self.friction

    def mean(
        self, x: torch.Tensor, control: torch.Tensor, eta: torch.Tensor, control_scale: float = 1.0
    ) -> torch.Tensor:
        """Drift step ``x + eta * (-x / init_std^2 + control_scale * control)``."""
        return x + eta * (-x / self.init_std**2 + control_scale * control)

    def prior_log_prob(self, x0: torch.Tensor) -> torch.Tensor:
        """``log N(x0; 0, init_std^2 I)`` summed over dimensions (B,)."""
        return (-0.5 * (x0 / self.init_std) ** 2 - math.log(self.init_std) - 0.5 * _LOG_2PI).sum(-1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Diagonal Gaussian log-density summed over the last dimension."""
    return noise_log_prob((x - mean) / torch.sqrt(var), var)


def noise_log_prob(noise: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Log-density of ``mean + sqrt(var) * noise`` under ``N(mean, var)``, summed over the last dimension."""
    return (-0.5 * noise**2 - 0.5 * torch.log(var) - 0.5 * _LOG_2PI).sum(-1)
