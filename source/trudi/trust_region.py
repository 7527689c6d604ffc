"""The TruDi trust region: KL over the whole denoising trajectory, the gated actor loss and the duals."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from trudi.actor import DiffusionActor

KL_MODES = ("full", "mean")
"""``full``: closed-form Gaussian KL per step (default). ``mean``: only the mean term, as in the reference."""

KL_DIRECTIONS = ("forward", "reverse")
"""``forward``: ``KL(old || new)`` on K fresh old-policy chains per state (default). ``reverse``: ``KL(new || old)``
on the actor loss's own new-policy chain, which costs N old-network passes per state instead of 2 K N."""

TRUST_REGION_MODES = ("gate", "penalty", "none")
"""``gate``: per-state switch between objective and KL penalty (default); ``penalty``: objective + KL penalty
everywhere; ``none``: no trust region (ablation)."""


def gaussian_kl(
    mean_p: torch.Tensor, var_p: torch.Tensor, mean_q: torch.Tensor, var_q: torch.Tensor, kl_mode: str = "full"
) -> torch.Tensor:
    """``KL(N(mean_p, var_p) || N(mean_q, var_q))`` for diagonal Gaussians, summed over the last dimension.

    ``kl_mode="mean"`` keeps only ``(mean_q - mean_p)^2 / (2 var_p)``, exact when the variances agree.
    """
    if kl_mode == "mean":
        return ((mean_q - mean_p) ** 2 / (2.0 * var_p)).sum(-1)
    return (0.5 * torch.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / (2.0 * var_q) - 0.5).sum(-1)


def trajectory_kl(
    actor: DiffusionActor,
    old_actor: DiffusionActor,
    state: torch.Tensor,
    num_samples: int = 4,
    kl_mode: str = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward KL between the old and new denoising trajectories, sampled under the old policy.

    By the chain rule over the Markov chain (both start from the same prior) the trajectory KL is the expected sum of
    per-step kernel KLs along old-policy chains; by data processing it upper-bounds the KL of the action marginals.

    Args:
        actor: The policy being optimised (gradients flow into its control network, friction and step sizes).
        old_actor: The frozen policy that collected the batch.
        state: Normalised observations (B, obs_dim); both actors share the same (frozen) normaliser.
        num_samples: ``K``, chains per state.
        kl_mode: ``"full"`` or ``"mean"`` (see :func:`gaussian_kl`).

    Returns:
        ``c(s)`` (B,), the trajectory KL per state averaged over the K chains, and the KL of each denoising step
        averaged over states and chains (N,), detached, for diagnostics.
    """
    batch_size = state.shape[0]
    condition_new = actor.condition(state, repeats=num_samples)  # rows (B*K, ...): K chains per state
    with torch.no_grad():
        condition_old = old_actor.condition(state, repeats=num_samples)
        x = torch.randn(batch_size * num_samples, actor.action_dim, device=state.device) * old_actor.process.init_std
    etas_old, etas_new = condition_old[0], condition_new[0]
    per_step = []
    for n in range(actor.process.num_steps):
        with torch.no_grad():
            mean_old = old_actor.step_mean(x, condition_old, n)
            var_old = 2.0 * etas_old[n]
        mean_new = actor.step_mean(x, condition_new, n)
        per_step.append(gaussian_kl(mean_old, var_old, mean_new, 2.0 * etas_new[n], kl_mode))
        x = mean_old + torch.sqrt(var_old) * torch.randn_like(x)
    per_step_kl = torch.stack(per_step, dim=-1)  # (B*K, N)
    kl = per_step_kl.sum(-1).view(batch_size, num_samples).mean(-1)
    return kl, per_step_kl.detach().mean(0)


def reverse_trajectory_kl(
    actor: DiffusionActor,
    old_actor: DiffusionActor,
    state: torch.Tensor,
    path: list[tuple[torch.Tensor, torch.Tensor]],
    kl_mode: str = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reverse KL ``KL(new || old)`` between the denoising trajectories, on new-policy chains.

    The chain rule and data processing hold in this direction too, so it bounds ``KL(pi_new(.|s) || pi_old(.|s))``.
    ``path`` is the reparameterised chain the actor loss already sampled (:meth:`DiffusionActor.sde_chain` with
    ``return_path``), one per state: the gradient flows through the new kernel means and, pathwise, through the
    latents the old kernels are evaluated at. Only the old network's N passes are added.

    Returns:
        ``c(s)`` (B,) and the KL of each denoising step averaged over states (N,), detached.
    """
    etas_new = actor.process.etas()
    with torch.no_grad():
        condition_old = old_actor.condition(state)
    etas_old = condition_old[0]
    per_step = []
    for n, (x, mean_new) in enumerate(path):
        mean_old = old_actor.step_mean(x, condition_old, n)  # the old parameters are frozen; x carries the gradient
        per_step.append(gaussian_kl(mean_new, 2.0 * etas_new[n], mean_old, 2.0 * etas_old[n], kl_mode))
    per_step_kl = torch.stack(per_step, dim=-1)  # (B, N)
    return per_step_kl.sum(-1), per_step_kl.detach().mean(0)


def actor_objective(
    trust_region: str,
    kl: torch.Tensor,
    log_likelihood: torch.Tensor,
    q_value: torch.Tensor,
    entropy_coef: torch.Tensor,
    kl_multiplier: torch.Tensor,
    kl_bound: float,
) -> torch.Tensor:
    """Per-state actor loss (B,); the caller averages it.

    ``gate`` (TruDi): states inside the trust region (``c < kl_bound``) follow the max-entropy objective
    ``alpha * l - Q``; states outside it only feel ``lambda * c``, which pulls them back. The duals are detached here.
    """
    objective = entropy_coef.detach() * log_likelihood - q_value
    penalty = kl_multiplier.detach() * kl
    if trust_region == "gate":
        return torch.where(kl < kl_bound, objective, penalty)
    if trust_region == "penalty":
        return objective + penalty
    return objective


class LagrangeDuals(nn.Module):
    """Log-parameterised entropy temperature ``alpha`` and KL multiplier ``lambda``, trained by dual ascent."""

    def __init__(
        self,
        init_entropy_coef: float = 0.01,
        init_kl_multiplier: float = 0.01,
        learn_entropy_coef: bool = True,
        learn_kl_multiplier: bool = True,
    ) -> None:
        super().__init__()
        self.log_entropy_coef = nn.Parameter(
            torch.tensor(math.log(init_entropy_coef)), requires_grad=learn_entropy_coef
        )
        self.log_kl_multiplier = nn.Parameter(
            torch.tensor(math.log(init_kl_multiplier)), requires_grad=learn_kl_multiplier
        )

    @property
    def entropy_coef(self) -> torch.Tensor:
        """``alpha``."""
        return self.log_entropy_coef.exp()

    @property
    def kl_multiplier(self) -> torch.Tensor:
        """``lambda``."""
        return self.log_kl_multiplier.exp()

    def entropy_loss(self, entropy: torch.Tensor, target_entropy: float) -> torch.Tensor:
        """Dual-ascent loss of ``alpha``: it falls while the entropy estimate is above the target, rises below."""
        return self.entropy_coef * (entropy - target_entropy).detach()

    def kl_loss(self, mean_kl: torch.Tensor, kl_bound: float) -> torch.Tensor:
        """Dual-ascent loss of ``lambda``: it rises while the mean trajectory KL exceeds the bound."""
        return -self.kl_multiplier * (mean_kl - kl_bound).detach()
