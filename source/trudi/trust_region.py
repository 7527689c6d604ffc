"""The TruDi trust region: KL over the whole denoising trajectory, the gated actor loss and the duals."""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from trudi.actor import DiffusionActor
from trudi.options import AlgorithmOptions
from trudi.storage import OldChains


def gaussian_kl(
    mean_p: torch.Tensor, var_p: torch.Tensor, mean_q: torch.Tensor, var_q: torch.Tensor, kl_mode: str = "full"
) -> torch.Tensor:
    """``KL(N(mean_p, var_p) || N(mean_q, var_q))`` for diagonal Gaussians, summed over the last dimension.

    ``kl_mode="mean"`` keeps only ``(mean_q - mean_p)^2 / (2 var_p)``, exact when the variances agree.
    """
    if kl_mode == "mean":
        return ((mean_q - mean_p) ** 2 / (2.0 * var_p)).sum(-1)
    return (0.5 * torch.log(var_q / var_p) + (var_p + (mean_p - mean_q) ** 2) / (2.0 * var_q) - 0.5).sum(-1)


@torch.no_grad()
def sample_old_chains(old_actor: DiffusionActor, state: torch.Tensor, num_samples: int) -> OldChains:
    """Simulate ``num_samples`` chains per state (B, obs_dim) under the old policy; the steps are sequential."""
    condition = old_actor.condition(state, repeats=num_samples)
    noise_scales = torch.sqrt(2.0 * condition[0])  # (N, d)
    x = torch.randn(state.shape[0] * num_samples, old_actor.action_dim, device=state.device)
    x = x * old_actor.process.init_std
    latents, means = [], []
    for n in range(old_actor.process.num_steps):
        mean = old_actor.step_mean(x, condition, n)
        latents.append(x)
        means.append(mean)
        x = mean + noise_scales[n] * torch.randn_like(x)
    return OldChains(torch.stack(latents), torch.stack(means))


def forward_trajectory_kl(
    actor: DiffusionActor,
    old_actor: DiffusionActor,
    state: torch.Tensor,
    chains: OldChains,
    kl_mode: str = "full",
    batched: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(old || new)`` between the denoising trajectories, estimated on given old-policy chains.

    By the chain rule over the Markov chain (both start from the same prior) the trajectory KL is the expected sum of
    per-step kernel KLs along old-policy chains; by data processing it upper-bounds the KL of the action marginals.
    Once the old chain is known, no step depends on another: ``batched`` evaluates the new policy at all ``N * B * K``
    latents in one pass; ``batched=False`` loops over the steps, the plain version the tests compare against.

    Args:
        actor: The policy being optimised (gradients flow into its control network, friction and step sizes).
        old_actor: The frozen policy that sampled ``chains``; only its step sizes are read here.
        state: Normalised observations (B, obs_dim); both actors share the same (frozen) normaliser.
        chains: ``K`` old-policy chains per state (:func:`sample_old_chains`, or the rollout's own with ``K = 1``).
        kl_mode: ``"full"`` or ``"mean"`` (see :func:`gaussian_kl`).
        batched: One pass over all steps (default) or one pass per step.

    Returns:
        ``c(s)`` (B,), the trajectory KL per state averaged over the K chains, and the KL of each denoising step
        averaged over states and chains (N,), detached, for diagnostics.
    """
    batch_size = state.shape[0]
    num_samples = chains.latents.shape[1] // batch_size
    condition = actor.condition(state, repeats=num_samples)
    # Variances of the kernels (N, 1, d): 2 eta_n, state independent.
    var_old = 2.0 * old_actor.process.etas().detach().unsqueeze(1)
    var_new = 2.0 * condition[0].unsqueeze(1)
    if batched:
        mean_new = actor.step_means(chains.latents, condition)
    else:
        mean_new = torch.stack([actor.step_mean(x, condition, n) for n, x in enumerate(chains.latents)])
    # sum_n KL(N(mu_old,n, 2 eta_old,n) || N(mu_new,n, 2 eta_new,n)) at the old chain's latents: (N, B*K)
    per_step_kl = gaussian_kl(chains.means, var_old, mean_new, var_new, kl_mode)
    kl = per_step_kl.sum(0).view(batch_size, num_samples).mean(-1)
    return kl, per_step_kl.detach().mean(-1)


def loss_reads_kl(trust_region: str, kl: torch.Tensor, kl_bound: float) -> torch.Tensor:
    """The states (B,) whose actor loss (:func:`actor_objective`) takes its value from ``c(s)``.

    They are the only states the loss's gradient reaches through ``c``. ``gate``: those at or over the bound;
    ``penalty``: all; ``none``: none (``c`` is then only a diagnostic).
    """
    if trust_region == "gate":
        return kl >= kl_bound
    return torch.full_like(kl, trust_region == "penalty", dtype=torch.bool)


def gate_aware_forward_kl(
    actor: DiffusionActor,
    old_actor: DiffusionActor,
    state: torch.Tensor,
    chains: OldChains,
    trust_region: str,
    kl_bound: float,
    kl_mode: str = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`forward_trajectory_kl` with its graph (and so its backward pass) built only where the loss reads ``c``.

    The gated loss takes ``c(s)`` as its value only at states over the bound; elsewhere ``c(s)`` just picks the branch
    and feeds detached statistics, so its gradient there is zero. ``c`` is therefore computed without a graph for all
    states, then again with one for the states :func:`loss_reads_kl` selects: the same values and the same gradient
    for about ``1 + 3 f`` instead of 3 forward-equivalents per state, ``f`` the share of states over the bound. The
    selection is read on the host (one sync) and gives the recomputation a varying batch size.
    """
    with torch.no_grad():
        kl, kl_per_step = forward_trajectory_kl(actor, old_actor, state, chains, kl_mode)
    rows = loss_reads_kl(trust_region, kl, kl_bound).nonzero().squeeze(-1)
    if rows.numel() == 0:
        return kl, kl_per_step
    num_samples = chains.latents.shape[1] // state.shape[0]
    # The K chains of state b are rows b*K ... b*K + K-1 (state-major).
    chain_rows = (rows.unsqueeze(-1) * num_samples + torch.arange(num_samples, device=rows.device)).flatten()
    selected = OldChains(chains.latents[:, chain_rows], chains.means[:, chain_rows])
    kl_selected, _ = forward_trajectory_kl(actor, old_actor, state[rows], selected, kl_mode)
    return kl.index_put((rows,), kl_selected), kl_per_step


def trajectory_kl(
    actor: DiffusionActor,
    old_actor: DiffusionActor,
    state: torch.Tensor,
    num_samples: int = 4,
    kl_mode: str = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward trajectory KL on ``num_samples`` fresh old-policy chains per state (docs/algorithm.md §1.2).

    See :func:`forward_trajectory_kl` for the estimator and the returned values.
    """
    chains = sample_old_chains(old_actor, state, num_samples)
    return forward_trajectory_kl(actor, old_actor, state, chains, kl_mode)


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
    latents the old kernels are evaluated at. Only the old network's N passes are added, batched into one.

    Returns:
        ``c(s)`` (B,) and the KL of each denoising step averaged over states (N,), detached.
    """
    latents = torch.stack([x for x, _ in path])  # (N, B, d)
    mean_new = torch.stack([mean for _, mean in path])
    var_new = 2.0 * actor.process.etas().unsqueeze(1)
    with torch.no_grad():
        condition_old = old_actor.condition(state)
    var_old = 2.0 * condition_old[0].unsqueeze(1)
    # The old parameters are frozen; the latents carry the gradient into the new policy.
    mean_old = old_actor.step_means(latents, condition_old)
    per_step_kl = gaussian_kl(mean_new, var_new, mean_old, var_old, kl_mode)  # (N, B)
    return per_step_kl.sum(0), per_step_kl.detach().mean(-1)


def critic_fit_bound(explained_variance: float, kl_bound_min: float, kl_bound: float) -> float:
    """The ``critic_fit`` bound of one update: ``max(kl_bound_min, kl_bound * clip(EV, 0, 1)^2)``.

    ``EV`` is the critic's explained variance of the update's fresh returns before it trains on them, taken as a sign
    of how far the critic the actor is about to climb can be trusted. A critic that explains them all allows
    ``kl_bound``; one that explains half allows a quarter of it; one that explains nothing, ``kl_bound_min``. On a
    task whose returns barely vary (a balanced pendulum) EV is noise (docs/algorithm.md §1.2).
    """
    return max(kl_bound_min, kl_bound * min(max(explained_variance, 0.0), 1.0) ** 2)


class KLBound:
    """The bound ``epsilon`` of each update's trust region and the rule that sets it (``algorithm.kl_bound_rule``).

    ``fixed``: ``kl_bound`` every update. ``progress``: as a classical trust-region method widens its radius after a
    step that improved the objective and narrows it after one that did not, each update compares the mean reward per
    step of the rollout it is given (collected by the policy the last update produced) with the previous rollout's,
    and multiplies the bound by ``kl_bound_growth`` if it rose and divides it if it did not, within
    ``[kl_bound_min, kl_bound_max]`` (widened to include ``kl_bound``). An equal reward counts as no progress: it
    happens on a task whose reward per step saturates (a balanced pendulum earns exactly 1 per step), where it narrows
    the bound around a solved policy. The first update keeps ``kl_bound``. ``critic_fit``: see :func:`critic_fit_bound`.

    The bound is a plain float (the actor step reads it without a device sync); :meth:`state_dict` carries it and the
    last reward into checkpoints, so a resumed ``progress`` run continues where it stopped.
    """

    def __init__(self, cfg: AlgorithmOptions) -> None:
        """Start at ``cfg.kl_bound``.

        Args:
            cfg: The algorithm options; ``kl_bound``, ``kl_bound_rule``, ``kl_bound_min``, ``kl_bound_max`` and
                ``kl_bound_growth`` are read.
        """
        self.rule = cfg.kl_bound_rule
        self.growth = cfg.kl_bound_growth
        # A kl_bound outside [kl_bound_min, kl_bound_max] widens the range to it rather than being refused.
        self.minimum = min(cfg.kl_bound_min, cfg.kl_bound)
        self.maximum = max(cfg.kl_bound_max, cfg.kl_bound)
        self.ceiling = cfg.kl_bound
        self.value = cfg.kl_bound
        """The bound of the update that runs now."""
        self.previous_reward = math.nan
        """The mean reward per step of the rollout before (``progress``); nan before the first update."""

    def follow_progress(self, mean_reward: float) -> float:
        """``progress``: the bound of the update about to run, from its rollout's mean reward per step.

        ``mean_reward`` must be the same on every rank (a mean over all of them).
        """
        if mean_reward > self.previous_reward:
            self.value = min(self.maximum, self.value * self.growth)
        elif mean_reward <= self.previous_reward:
            self.value = max(self.minimum, self.value / self.growth)
        # (Comparisons with the first update's nan are false: that update keeps the initial bound.)
        self.previous_reward = mean_reward
        return self.value

    def follow_critic_fit(self, explained_variance: float) -> float:
        """``critic_fit``: the bound of the update about to run, from the critic's explained variance of its returns."""
        self.value = critic_fit_bound(explained_variance, self.minimum, self.ceiling)
        return self.value

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The bound and the last reward, as float64 tensors (the layout checkpoints have always had)."""
        return {
            "bound": torch.tensor(self.value, dtype=torch.float64),
            "previous_reward": torch.tensor(self.previous_reward, dtype=torch.float64),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Continue a checkpoint's rule: its last reward, and under ``progress`` its bound.

        ``fixed`` takes its bound from this run's config and ``critic_fit`` from each update's critic.
        """
        self.previous_reward = float(state["previous_reward"])
        if self.rule == "progress":
            self.value = float(state["bound"])


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
        # The initial policy's entropy estimate, the reference of a relative entropy target; set before the first
        # update and kept in checkpoints, so a resumed run keeps its target.
        self.register_buffer("initial_entropy", torch.tensor(0.0))
        self.register_buffer("started", torch.tensor(False))

    def start(self, initial_entropy: torch.Tensor) -> None:
        """Record the initial policy's entropy estimate and mark training as started."""
        self.initial_entropy.copy_(initial_entropy.detach())
        self.started.fill_(True)

    @property
    def entropy_coef(self) -> torch.Tensor:
        """``alpha``."""
        return self.log_entropy_coef.exp()

    @property
    def kl_multiplier(self) -> torch.Tensor:
        """``lambda``."""
        return self.log_kl_multiplier.exp()

    def entropy_loss(self, entropy: torch.Tensor, target_entropy: float | torch.Tensor) -> torch.Tensor:
        """Dual-ascent loss of ``log alpha``: it falls while the entropy estimate is above the target, rises below.

        The gradient with respect to ``log alpha`` is the constraint violation itself, not ``alpha`` times it, so
        Adam's per-step change of ``log alpha`` stays about its learning rate however small ``alpha`` has become.
        """
        return self.log_entropy_coef * (entropy - target_entropy).detach()

    def kl_loss(self, mean_kl: torch.Tensor, kl_bound: float) -> torch.Tensor:
        """Dual-ascent loss of ``log lambda``: it rises while the mean trajectory KL exceeds the bound."""
        return -self.log_kl_multiplier * (mean_kl - kl_bound).detach()
