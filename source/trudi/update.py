"""The update half of TruDi: critic, actor and dual steps on one rollout, in the order they run (docs/algorithm.md)."""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from tensordict import TensorDict

from trudi.actor import DiffusionActor
from trudi.parts import TruDiPart
from trudi.runtime import stop_if_nonfinite
from trudi.sampler import squash
from trudi.storage import OldChains, TruDiBatch
from trudi.trust_region import (
    KLBound,
    actor_objective,
    forward_trajectory_kl,
    gate_aware_forward_kl,
    reverse_trajectory_kl,
    sample_old_chains,
)

MAX_STATS = ("trust_region/kl_max",)
"""Logged statistics reduced by a maximum across ranks; all others are averaged."""


@dataclass(eq=False, repr=False)
class TruDiUpdate(TruDiPart):
    """Trains critic, actor and duals on a stored rollout.

    Per update: this update's KL bound (``kl_bound_rule``) -> the old chains of the forward KL ->
    ``critic_warmup_epochs x num_mini_batches`` critic steps -> ``num_learning_epochs x num_mini_batches`` of
    {critic step; actor step with the per-state trust-region gate; dual steps} -> update the observation normalisers
    -> sync the old actor.
    """

    old_actor: DiffusionActor
    """The frozen policy that collected the rollout; the trust region is measured against it."""
    bound: KLBound
    """The trust region's bound and the rule that sets it."""
    optimizer: torch.optim.Optimizer
    """One Adam over the actor's, the critic's and the duals' parameters."""

    def __post_init__(self) -> None:
        self.policy_terms = self.chain_and_kl
        """The actor step's chain and trajectory KL; :meth:`TruDi.compile` replaces it with its compiled version."""
        self.gate_aware_backward = self.cfg.gate_aware_backward
        """Whether the forward KL's graph is built only where the loss reads it; off once compiled (fixed shapes)."""
        self._warned_clipping = False

    def update(self) -> dict[str, float]:
        """Train critic, actor and duals on the stored rollout; returns the diagnostics of docs/algorithm.md section 5.

        Beside the three losses they are keyed ``<group>/<name>``: ``trust_region``, ``entropy``, ``critic``,
        ``diffusion``.

        Under torchrun the diagnostics are those of the global batch (see :meth:`_reduce_stats`), identical on every
        rank, so rank 0 logs the global numbers.
        """
        stats: dict[str, list[torch.Tensor]] = {}
        observations = self.storage.observations.flatten(0, 1)
        first_update = not bool(self.duals.started)
        if first_update:
            self._start(observations)
        fit_stats = {}
        if self.cfg.kl_bound_rule == "progress":
            self.bound.follow_progress(self._mean_rollout_reward())
        elif self.cfg.kl_bound_rule == "critic_fit":
            explained_variance = self._critic_explained_variance(observations)
            self.bound.follow_critic_fit(explained_variance)
            fit_stats["critic/explained_variance"] = explained_variance
        if self.cfg.stores_old_chains and self.cfg.kl_chains == "update":
            with self.runtime.autocast(), torch.no_grad():
                state = self.old_actor.get_latent(observations)
                self.storage.set_chains(sample_old_chains(self.old_actor, state, self.cfg.kl_samples))
        # Critic-only passes first: the actor's first steps then climb a critic that has already seen this rollout.
        for batch in self.storage.mini_batches(
            self.cfg.num_mini_batches, self.cfg.critic_warmup_epochs, old_chains=False
        ):
            self._critic_step(batch)
        for batch in self.storage.mini_batches(self.cfg.num_mini_batches, self.cfg.num_learning_epochs):
            batch_stats = self._critic_step(batch) | self._actor_step(batch)
            for key, value in batch_stats.items():
                stats.setdefault(key, []).append(value.detach())
        realised = self._realised_kl(observations)
        if self.cfg.kl_backtrack_steps > 0:
            realised = self._backtrack(observations, realised)

        # Normalisers change only here, after the update, so rollout and update saw the same statistics (the first
        # rollout already went into them in _start).
        if not first_update:
            self.actor.update_normalization(observations)
            self.critic.update_normalization(observations)
        self.old_actor.load_state_dict(self.actor.state_dict())
        self.storage.clear()

        loss_dict = self._reduce_stats(stats)
        stop_if_nonfinite("update", self._nonfinite_parameters(), self.runtime, loss_dict)
        loss_dict |= fit_stats | realised | {"trust_region/kl_bound": self.bound.value} | self._state_diagnostics()
        if loss_dict["critic/clipped_target_fraction"] > self.cfg.clipped_target_warning and not self._warned_clipping:
            self._warned_clipping = True
            low, high = self.critic.value_range.tolist()
            warnings.warn(
                f"TruDi: {loss_dict['critic/clipped_target_fraction']:.1%} of the critic's return targets fall outside"
                f" its support [{low:g}, {high:g}]; widen critic.value_min/value_max or use 'auto'.",
                stacklevel=3,
            )
        return loss_dict

    def _start(self, observations: TensorDict) -> None:
        """Before the first update: normalisers from the first rollout, and the initial policy's entropy estimate.

        The first rollout ran on identity normalisers; training on them would fit the networks to inputs that change
        at once. The untrained control is about zero (its output layer starts at 1e-8), so the policy that collected
        the rollout is the same under either normalisation, and the stored chains stay old-policy samples; their
        kernel means are recomputed under the new statistics.
        """
        self.actor.update_normalization(observations)
        self.critic.update_normalization(observations)
        self.old_actor.load_state_dict(self.actor.state_dict())
        with torch.no_grad(), self.runtime.autocast():
            state = self.old_actor.get_latent(observations)
            if self.cfg.keeps_rollout_chains:
                # One step at a time: the whole rollout's N * T * E latents in one pass would hold N times the
                # activations of any mini-batch.
                latents, means = (
                    chains.flatten(0, 2) for chains in (self.storage.chain_latents, self.storage.chain_means)
                )
                condition = self.old_actor.condition(state)
                for n in range(self.old_actor.process.num_steps):
                    means[:, n] = self.old_actor.step_mean(latents[:, n], condition, n)
            running = self.old_actor.sde_chain(state)[2]
        self.duals.start(self.runtime.mean_over_ranks(-running.mean()))

    def _realised_kl(self, observations: TensorDict) -> dict[str, float]:
        """The trajectory KL between the policy that collected the rollout and the updated one, at every state.

        This is what the trust region bounds; the mini-batch statistics measure it against a policy that is still
        moving. The estimator is the loss's (forward KL at old-policy chains): the stored chains, or with
        ``kl_chains: mini_batch`` fresh ones drawn on a forked random generator, so that training's random stream is
        the same with or without this measurement. Taken in mini-batch-sized chunks, without a graph.
        """
        num_states = observations.batch_size[0]
        chunk = num_states // self.cfg.num_mini_batches
        kl = []
        with torch.no_grad(), self.runtime.autocast(), torch.random.fork_rng(devices=self._rng_devices()):
            for start in range(0, num_states, chunk):
                idx = torch.arange(start, min(start + chunk, num_states), device=self.storage.device)
                state = self.old_actor.get_latent(observations[idx])
                chains = self.storage.chains_of(idx)
                if chains is None:
                    chains = sample_old_chains(self.old_actor, state, self.cfg.kl_samples)
                kl.append(forward_trajectory_kl(self.actor, self.old_actor, state, chains, self.cfg.kl_mode)[0])
        kl = torch.cat(kl).float()
        summary = torch.stack([kl.mean(), (kl >= self.bound.value).float().mean()])
        self.runtime.mean_over_ranks(summary)
        largest = self.runtime.max_over_ranks(kl.max())
        mean, over_bound = summary.tolist()
        return {
            "trust_region/kl_realised_mean": mean,
            "trust_region/kl_realised_max": float(largest),
            "trust_region/kl_realised_over_bound_fraction": over_bound,
        }

    def _backtrack(self, observations: TensorDict, realised: dict[str, float]) -> dict[str, float]:
        """Shrink the actor's update by halves until the realised mean KL is within the bound; undo it past the last.

        The actor's parameters move to ``old + t (new - old)``, ``t = 1/2, 1/4, ...``, as a line search does; the KL
        is re-measured at each ``t`` (:meth:`_realised_kl`, the same for every rank). Adam's moments are kept.
        Returns the realised KL of the accepted step and ``t`` (``trust_region/step_fraction``).
        """
        updated = [param.detach().clone() for param in self.actor.parameters()]
        fraction = 1.0
        for halving in range(self.cfg.kl_backtrack_steps + 1):
            if realised["trust_region/kl_realised_mean"] <= self.bound.value:
                break
            # Past the last halving the step is undone: the old policy is inside any bound.
            fraction = 0.0 if halving == self.cfg.kl_backtrack_steps else fraction / 2
            with torch.no_grad():
                for param, new, old in zip(self.actor.parameters(), updated, self.old_actor.parameters(), strict=True):
                    param.copy_(old + fraction * (new - old))
            realised = self._realised_kl(observations)
        return realised | {"trust_region/step_fraction": fraction}

    def _rng_devices(self) -> list[int]:
        """The CUDA devices whose generators :meth:`_realised_kl` forks (none on the CPU)."""
        device = torch.device(self.runtime.device)
        return [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []

    def _mean_rollout_reward(self) -> float:
        """The stored rollout's mean raw reward per step, over all ranks."""
        return float(self.runtime.mean_over_ranks(self.storage.rewards.mean()))

    def _critic_explained_variance(self, observations: TensorDict) -> float:
        """``1 - Var(G - Q(s, a)) / Var(G)`` over the stored rollout (all ranks), before the critic trains on it.

        ``G`` are the rollout's lambda-returns; the critic has not seen them, so this is how well it predicts returns
        of states and actions it is about to be trusted on. One critic pass over the rollout, no graph.
        """
        with torch.no_grad(), self.runtime.autocast():
            predictions = self.critic(observations, self.storage.actions.flatten(0, 1)).double()
        returns = self.storage.returns.flatten().double()
        errors = returns - predictions
        # Sums, so that torchrun ranks combine exactly: count, sum and sum of squares of returns and of errors (in
        # float64: variance from sums of squares loses float32's digits when the mean is large against the spread).
        sums = torch.stack(
            [torch.tensor(float(returns.numel()), device=returns.device), returns.sum(), returns.square().sum()]
            + [errors.sum(), errors.square().sum()]
        )
        self.runtime.sum_over_ranks(sums)
        count, return_sum, return_square_sum, error_sum, error_square_sum = sums.tolist()
        return_variance = return_square_sum / count - (return_sum / count) ** 2
        error_variance = error_square_sum / count - (error_sum / count) ** 2
        return 1.0 - error_variance / max(return_variance, 1e-8)

    @property
    def target_entropy(self) -> torch.Tensor:
        """``H_ref - c_H * d`` with ``H_ref`` the initial policy's entropy estimate (or 0, see the constructor)."""
        reference = self.duals.initial_entropy if self.cfg.entropy_target_reference == "initial" else 0.0
        return reference - self.cfg.entropy_target_mult * self.actor.action_dim

    def _critic_step(self, batch: TruDiBatch) -> dict[str, torch.Tensor]:
        """Cross-entropy to HL-Gauss targets of the lambda-returns plus the self-predictive loss."""
        with self.runtime.autocast():
            embedding = self.critic.embed(batch.observations, batch.actions)
            logits = self.critic.logits(embedding)
            predicted_embedding = self.critic.predict_next_embedding(embedding)
        value_loss = -(self.critic.target_probs(batch.returns) * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        # After an episode end (environments reset inside step) the stored next embedding is of the next episode.
        keep = (~batch.episode_ends).float()
        prediction_error = (predicted_embedding - batch.next_embeddings).pow(2).mean(-1)
        aux_loss = (prediction_error * keep).sum() / keep.sum().clamp(min=1.0)
        self._apply_gradients(value_loss + self.cfg.aux_loss_coef * aux_loss, self.critic.parameters())
        low, high = self.critic.value_range
        clipped = ((batch.returns < low) | (batch.returns > high)).float().mean()
        return {
            "critic": value_loss,
            "critic_aux": aux_loss,
            "critic/q_mean": self.critic.value(logits).mean(),
            "critic/return_mean": batch.returns.mean(),
            "critic/clipped_target_fraction": clipped,
        }

    def _actor_step(self, batch: TruDiBatch) -> dict[str, torch.Tensor]:
        """Gated max-entropy pathwise step inside the trajectory-KL trust region, then the dual steps."""
        with self.runtime.autocast():
            state = self.actor.get_latent(batch.observations)
            x_final, log_likelihood, running, kl, kl_per_step = self.policy_terms(state, batch.old_chains)
            with _frozen(self.critic):
                q_value = self.critic(batch.observations, squash(x_final))
        actor_loss = actor_objective(
            self.cfg.trust_region,
            kl,
            log_likelihood,
            q_value,
            self.duals.entropy_coef,
            self.duals.kl_multiplier,
            self.bound.value,
        ).mean()
        entropy = -running.mean()
        dual_loss = self.duals.entropy_loss(entropy, self.target_entropy)
        if self.cfg.trust_region != "none":
            dual_loss = dual_loss + self.duals.kl_loss(kl.mean(), self.bound.value)
        self._apply_gradients(actor_loss + dual_loss, self.actor.parameters())
        if self.cfg.entropy_coef_floor > 0.0:
            # Projected dual ascent: alpha stays in [entropy_coef_floor, inf).
            with torch.no_grad():
                self.duals.log_entropy_coef.clamp_(min=math.log(self.cfg.entropy_coef_floor))
        stats = {
            "actor": actor_loss,
            "trust_region/kl_mean": kl.mean(),
            "trust_region/kl_max": kl.max(),
            "trust_region/kl_over_bound_fraction": (kl >= self.bound.value).float().mean(),
            "entropy/estimate": entropy,
        }
        stats |= {f"trust_region/kl_step_{n}": value for n, value in enumerate(kl_per_step)}
        return stats

    def chain_and_kl(self, state: torch.Tensor, old_chains: OldChains | None) -> tuple[torch.Tensor, ...]:
        """The actor step's chain (``x_N``, log-likelihood, running part) and trajectory KL (per state, per step).

        ``old_chains`` are the stored old-policy chains of these states, or ``None`` to sample them here.
        """
        if self.cfg.kl_direction == "reverse":
            x_final, log_likelihood, running, path = self.actor.sde_chain(state, return_path=True)
            kl, kl_per_step = reverse_trajectory_kl(self.actor, self.old_actor, state, path, self.cfg.kl_mode)
        else:
            x_final, log_likelihood, running = self.actor.sde_chain(state)
            if old_chains is None:
                old_chains = sample_old_chains(self.old_actor, state, self.cfg.kl_samples)
            if self.gate_aware_backward:
                kl, kl_per_step = gate_aware_forward_kl(
                    self.actor,
                    self.old_actor,
                    state,
                    old_chains,
                    self.cfg.trust_region,
                    self.bound.value,
                    self.cfg.kl_mode,
                )
            else:
                kl, kl_per_step = forward_trajectory_kl(self.actor, self.old_actor, state, old_chains, self.cfg.kl_mode)
        return x_final, log_likelihood, running, kl, kl_per_step

    def _reduce_stats(self, stats: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """Average each statistic over the mini-batches; under torchrun, first reduce each mini-batch over the ranks.

        Per mini-batch, the statistics in :data:`MAX_STATS` take the maximum over ranks and the others the mean. With
        equal per-rank batch sizes (as torchrun runs have) that is what one process would log for the concatenated
        mini-batch, because every statistic is a batch mean or a batch maximum. Two collectives per update.
        """
        keys = list(stats)
        table = torch.stack([torch.stack(stats[key]) for key in keys])  # (num_stats, num_updates)
        if self.runtime.is_multi_gpu:
            maxima = table.clone()
            self.runtime.sum_over_ranks(table)
            self.runtime.max_over_ranks(maxima)
            use_max = torch.tensor([key in MAX_STATS for key in keys], device=table.device).unsqueeze(-1)
            table = torch.where(use_max, maxima, table / self.runtime.world_size)
        return dict(zip(keys, table.mean(-1).tolist(), strict=True))

    def _apply_gradients(self, loss: torch.Tensor, clipped_params: Iterable[nn.Parameter]) -> None:
        """Backward, average across ranks, clip the given parameters' gradient norm and step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.runtime.is_multi_gpu:
            self.average_gradients()
        nn.utils.clip_grad_norm_(list(clipped_params), self.cfg.max_grad_norm)
        self.optimizer.step()

    def average_gradients(self) -> None:
        """Average every parameter's gradient over the ranks (the duals' too: every rank takes the same decisions)."""
        params = [param for group in self.optimizer.param_groups for param in group["params"]]
        self.runtime.average_gradients(params, self.cfg.grad_reduce_bucket_mb)

    def _nonfinite_parameters(self) -> dict[str, torch.Tensor]:
        """Device-side flags of the parameters that are not all finite, by name."""
        return {
            f"{module_name} parameter '{name}'": ~torch.isfinite(param).all()
            for module_name, module in (("actor", self.actor), ("critic", self.critic), ("duals", self.duals))
            for name, param in module.named_parameters()
        }

    def _state_diagnostics(self) -> dict[str, float]:
        """Duals, friction and step sizes after the update."""
        friction = self.actor.process.friction.detach()
        step_sizes = self.actor.process.step_sizes.detach()
        return {
            "trust_region/kl_multiplier": self.duals.kl_multiplier.item(),
            "entropy/coef": self.duals.entropy_coef.item(),
            "entropy/target": float(self.target_entropy),
            "critic/reward_scale": float(self.return_scale.scale) if self.return_scale is not None else 1.0,
            "critic/value_min": float(self.critic.value_range[0]),
            "critic/value_max": float(self.critic.value_range[1]),
            "diffusion/friction_mean": float(friction.mean()),
            "diffusion/friction_min": float(friction.min()),
            "diffusion/friction_max": float(friction.max()),
            "diffusion/dt_mean": float(step_sizes.mean()),
            "diffusion/dt_total": float(step_sizes.sum()),
        }

    # ------------------------------------------------------------------ runner interface


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    """Stop gradients into ``module``'s parameters (they still flow through its inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(module.parameters(), flags, strict=True):
            param.requires_grad_(flag)
