"""TruDi: trust-region diffusion policies, as an RSL-RL algorithm beside PPO in the stock ``OnPolicyRunner``."""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from rsl_rl.env import VecEnv
from rsl_rl.utils import resolve_callable, resolve_obs_groups
from tensordict import TensorDict

from trudi.actor import DiffusionActor
from trudi.config import ConfigError, check_int, check_known_keys
from trudi.critic import QCritic
from trudi.options import AlgorithmOptions, takes_options
from trudi.reward_scale import ReturnScale
from trudi.sampler import squash
from trudi.storage import Transition, TruDiStorage
from trudi.trust_region import (
    LagrangeDuals,
    OldChains,
    ProgressBound,
    actor_objective,
    critic_fit_bound,
    forward_trajectory_kl,
    gate_aware_forward_kl,
    reverse_trajectory_kl,
    sample_old_chains,
)

DEFAULT_CRITIC = "trudi.rsl_rl:QCritic"
"""Critic class used when a config names only the algorithm and the actor."""
DEFAULT_ACTOR = "trudi.rsl_rl:DiffusionActor"
"""The actor class TruDi is written for."""
MAX_STATS = ("trust_region/kl_max",)
"""Logged statistics reduced by a maximum across ranks; all others are averaged."""
MIXED_PRECISION = {"none": None, "bf16": torch.bfloat16}
"""The autocast dtype of the network passes for each ``algorithm.mixed_precision`` (``None``: float32 throughout)."""
FUSED_ADAM_DEVICES = ("cpu", "cuda")
"""Device types with a fused Adam kernel in torch; elsewhere (mps, xpu) Adam runs its per-tensor ops."""


@dataclass
class _PolicySample:
    """One SDE chain per environment, sampled in the rollout, and what the algorithm keeps of it."""

    x_final: torch.Tensor
    """The last latent ``x_N`` (E, d); the action is ``tanh(x_N)``."""
    log_likelihood: torch.Tensor
    """The pseudo log-likelihood ``l`` of the chain (E,)."""
    latents: torch.Tensor | None = None
    """``x_0 .. x_{N-1}`` (N, E, d), kept with ``kl_chains: rollout``."""
    means: torch.Tensor | None = None
    """The kernel means along the chain (N, E, d), kept with ``kl_chains: rollout``."""
    value: torch.Tensor | None = None
    """``Q(s, tanh(x_N))`` (E,), once the critic has evaluated it."""


class TruDi:
    """Trust-region diffusion policy optimisation (docs/algorithm.md §1).

    Per iteration: collect a rollout with SDE samples (and a second chain at each next state for the soft reward and
    the bootstrap value) -> lambda-returns on Q -> this update's KL bound (``kl_bound_rule``) ->
    ``critic_warmup_epochs x num_mini_batches`` critic steps ->
    ``num_learning_epochs x num_mini_batches`` of {critic step; actor step with the per-state trust-region gate; dual
    steps} -> update the observation normalisers -> sync the old actor.
    """

    actor: DiffusionActor
    """The diffusion policy being trained."""
    old_actor: DiffusionActor
    """Frozen copy of the policy that collected the current rollout; the trust region is measured against it."""
    critic: QCritic
    """The distributional Q critic."""
    duals: LagrangeDuals
    """Entropy temperature and KL multiplier."""
    storage: TruDiStorage
    """Rollout buffers."""

    @takes_options(AlgorithmOptions)
    def __init__(
        self,
        actor: DiffusionActor,
        critic: QCritic,
        storage: TruDiStorage,
        device: str = "cpu",
        multi_gpu_cfg: dict | None = None,
        rnd_cfg: dict | None = None,
        **options: Any,
    ) -> None:
        """Create the algorithm.

        Args:
            actor: The diffusion actor.
            critic: The Q critic.
            storage: Rollout storage sized for ``num_envs x num_steps_per_env``.
            device: Torch device.
            multi_gpu_cfg: Set by the runner under ``torchrun``: ranks and world size.
            rnd_cfg: Must be ``None`` (random network distillation is not supported); present because RSL-RL reads it.
            **options: The ``algorithm`` options, each declared (type, default, allowed values, meaning) in
                :class:`~trudi.options.AlgorithmOptions`.
        """
        o = AlgorithmOptions.validated(options)
        # Every option is an attribute of the same name; the learning rate sits behind the property RSL-RL reads.
        for name, value in vars(o).items():
            setattr(self, "_learning_rate" if name == "learning_rate" else name, value)
        # The selected states vary in number, which the compiled graphs' fixed shapes cannot follow.
        self.gate_aware_backward = o.gate_aware_backward and not o.torch_compile
        if o.kl_chains == "rollout" and o.kl_samples != 1:
            raise ConfigError(
                f"algorithm.kl_samples={o.kl_samples!r} is invalid with algorithm.kl_chains='rollout': the rollout"
                " keeps one chain per state; use 1, or kl_chains 'update' or 'mini_batch' for more."
            )
        if o.kl_bound_rule == "critic_fit" and o.kl_bound_min > o.kl_bound:
            raise ConfigError(
                f"algorithm.kl_bound_min={o.kl_bound_min!r} is invalid with algorithm.kl_bound={o.kl_bound!r}: the"
                " critic_fit bound runs from kl_bound_min up to kl_bound; use a value <= kl_bound, or kl_bound_rule"
                " 'fixed'."
            )
        # This update's bound: kl_bound, or under progress / critic_fit set at the start of each update.
        self.update_kl_bound = o.kl_bound
        # A kl_bound outside [kl_bound_min, kl_bound_max] widens the progress range to it rather than being refused.
        self.progress_bound = ProgressBound(
            o.kl_bound, min(o.kl_bound_min, o.kl_bound), max(o.kl_bound_max, o.kl_bound), o.kl_bound_growth
        )
        if o.cuda_graphs and not o.torch_compile:
            raise ConfigError(
                "algorithm.cuda_graphs=True is invalid with algorithm.torch_compile=False: CUDA graphs are captured by"
                " torch.compile(mode='reduce-overhead'); set torch_compile to True as well."
            )
        if rnd_cfg is not None:
            raise ConfigError(f"algorithm.rnd_cfg={rnd_cfg!r} is invalid: TruDi does not support RND; use None.")
        batch_size = storage.num_envs * storage.num_steps
        if o.num_mini_batches > batch_size:
            raise ConfigError(
                f"algorithm.num_mini_batches={o.num_mini_batches} is invalid: must be <= num_envs * num_steps_per_env"
                f" = {batch_size}."
            )

        self.device = device
        self.actor = actor
        self.critic = critic
        self.storage = storage
        self.old_actor = copy.deepcopy(actor).requires_grad_(False)
        # Old-policy chains kept in the storage instead of re-simulated in every mini-batch.
        self._stored_chains = self.kl_direction == "forward" and self.kl_chains != "mini_batch"
        self._rollout_chains = self._stored_chains and self.kl_chains == "rollout"
        if self._stored_chains:
            num_stored = 1 if self._rollout_chains else self.kl_samples
            storage.reserve_chains(num_stored, actor.process.num_steps, actor.action_dim)
        # Rollout batches (num_envs) and mini-batches have fixed sizes, so each graph is compiled once per grad mode.
        self._sample_chain, self._policy_terms = actor.sde_chain, self._chain_and_kl
        if o.torch_compile:
            mode = "reduce-overhead" if o.cuda_graphs else "default"
            self._sample_chain = torch.compile(self._sample_chain, dynamic=False, mode=mode)
            self._policy_terms = torch.compile(self._policy_terms, dynamic=False, mode=mode)
        if o.cuda_graphs:
            self._sample_chain, self._policy_terms = graph_safe(self._sample_chain), graph_safe(self._policy_terms)
        self.duals = LagrangeDuals(
            o.init_entropy_coef, o.init_kl_multiplier, o.learn_entropy_coef, o.learn_kl_multiplier
        ).to(device)
        self.return_scale = ReturnScale(storage.num_envs, self.gamma).to(device) if o.reward_normalization else None
        # One Adam over three groups: each step only touches the parameters that received gradients. The fused kernel
        # (one pass over all parameters instead of a dozen per-tensor ops) computes the same update; 128 steps per
        # iteration made the unfused one 5% of the update on small networks.
        self.optimizer = torch.optim.Adam(
            [
                {"params": list(actor.parameters()), "name": "actor"},
                {"params": list(critic.parameters()), "name": "critic"},
                {"params": list(self.duals.parameters()), "name": "duals", "lr": self.dual_learning_rate},
            ],
            lr=self._learning_rate,
            fused=torch.device(device).type in FUSED_ADAM_DEVICES,
        )
        self.is_multi_gpu = multi_gpu_cfg is not None
        self.gpu_world_size = multi_gpu_cfg["world_size"] if multi_gpu_cfg else 1
        self.gpu_global_rank = multi_gpu_cfg["global_rank"] if multi_gpu_cfg else 0
        self.rnd = None
        self.intrinsic_rewards = None
        # Per-step state between act() and process_env_step().
        self._last_obs: TensorDict | None = None
        self._last_actions: torch.Tensor | None = None
        self._last_sample: _PolicySample | None = None
        # With sarsa_bootstrap: the chain sampled at the last next state, the action of the next act().
        self._next_sample: _PolicySample | None = None
        # Device-side flags so the rollout loop never waits on the host; checked once per iteration.
        self._nonfinite: dict[str, torch.Tensor] = {}
        self._warned_clipping = False

    # ------------------------------------------------------------------ factory

    @staticmethod
    def construct_algorithm(obs: TensorDict, env: VecEnv, cfg: dict, device: str) -> TruDi:
        """Build actor, critic, storage and algorithm from an RSL-RL train config dict.

        Sub-configs are deep-copied (rsl-rl 5.4.2's PPO pops ``class_name`` in place; we never mutate the caller's
        dict apart from the keys the runner itself needs: ``algorithm.rnd_cfg`` and the resolved ``obs_groups``).
        """
        # rsl-rl 5.4.2's runner and logger index cfg["algorithm"]["rnd_cfg"] directly.
        cfg["algorithm"].setdefault("rnd_cfg", None)
        alg_cfg = copy.deepcopy(cfg["algorithm"])
        actor_cfg = copy.deepcopy(cfg.get("actor") or {})
        critic_cfg = copy.deepcopy(cfg.get("critic") or {"class_name": DEFAULT_CRITIC})
        alg_class = resolve_callable(alg_cfg.pop("class_name"))
        if "class_name" not in actor_cfg:
            raise ConfigError("actor.class_name is missing: set it to 'trudi.rsl_rl:DiffusionActor'.")
        actor_class = _resolve_model_class("actor", actor_cfg.pop("class_name"), DiffusionActor, DEFAULT_ACTOR)
        critic_class = _resolve_model_class(
            "critic", critic_cfg.pop("class_name", DEFAULT_CRITIC), QCritic, DEFAULT_CRITIC
        )
        check_known_keys(
            "algorithm", alg_cfg, alg_class, skip=("actor", "critic", "storage", "device", "multi_gpu_cfg")
        )
        check_known_keys("actor", actor_cfg, actor_class, skip=("obs", "obs_groups", "obs_set", "output_dim"))
        check_known_keys("critic", critic_cfg, critic_class, skip=("obs", "obs_groups", "obs_set", "action_dim"))
        num_steps = check_int("num_steps_per_env", cfg.get("num_steps_per_env"), minimum=1)

        cfg["obs_groups"] = resolve_obs_groups(obs, cfg.get("obs_groups") or {}, ["actor", "critic"])
        actor = actor_class(obs, cfg["obs_groups"], "actor", env.num_actions, **actor_cfg).to(device)
        critic = critic_class(obs, cfg["obs_groups"], "critic", env.num_actions, **critic_cfg).to(device)
        storage = TruDiStorage(env.num_envs, num_steps, obs, env.num_actions, critic.embedding_dim, device)
        return alg_class(actor, critic, storage, device=device, multi_gpu_cfg=cfg.get("multi_gpu"), **alg_cfg)

    # ------------------------------------------------------------------ rollout

    def act(self, obs: TensorDict) -> torch.Tensor:
        """Sample actions with the SDE chain; returns environment actions ``action_scale * tanh(x_N)``.

        With ``sarsa_bootstrap`` the chain that :meth:`process_env_step` sampled at these observations is used.
        """
        sample = self._next_sample if self._next_sample is not None else self._sample_policy(obs)
        self._next_sample = None
        # Environments may reuse their observation buffers in place, so keep a copy until the step is stored.
        self._last_obs = obs.clone()
        self._last_actions = squash(sample.x_final)
        self._last_sample = sample
        return self.actor.action_scale * self._last_actions

    def _check_observations(self, obs: TensorDict) -> None:
        """Fail in one line, naming the group, when an observation group's shape or dtype is not the first one's.

        Compares metadata only (no device read), against the storage laid out from the environment's first
        observations. :meth:`process_env_step` checks every observation the environment returns; those are the ones
        :meth:`act` is called with next.
        """
        for group, stored in self.storage.observations.items():
            if group not in obs.keys():
                raise ConfigError(f"observation group '{group}' is missing from the environment's observations.")
            value = obs[group]
            if value.shape[1:] != stored.shape[2:] or value.dtype != stored.dtype:
                raise ConfigError(
                    f"observation group '{group}' has shape {tuple(value.shape)} and dtype {value.dtype}; expected"
                    f" (num_envs, {', '.join(map(str, stored.shape[2:]))}) and {stored.dtype}, as at the first step."
                )

    def _sample_policy(self, obs: TensorDict) -> _PolicySample:
        """One SDE chain per environment, keeping its path when the trust region will reuse it."""
        with self._autocast():
            state = self.actor.get_latent(obs)
            if self._rollout_chains:
                x_final, log_likelihood, _, path = self._sample_chain(state, return_path=True)
                latents, means = (torch.stack(column) for column in zip(*path, strict=True))
                return _PolicySample(x_final, log_likelihood, latents, means)
            x_final, log_likelihood, _ = self._sample_chain(state)
        return _PolicySample(x_final, log_likelihood)

    def process_env_step(
        self, obs: TensorDict, rewards: torch.Tensor, dones: torch.Tensor, extras: dict[str, torch.Tensor]
    ) -> None:
        """Store one transition with its soft reward and bootstrap value.

        A second SDE chain samples ``a' ~ pi(.|s')`` at the next observation: ``V' = Q(s', a')`` and the soft reward
        ``r~ = r - gamma * alpha * l(a'|s')`` (the entropy bonus is dropped after a termination, as in the JAX
        reference, since no next state exists).

        Time-outs: RSL-RL environments reset inside ``step``, so on a time-out ``obs`` is already the first observation
        of the next episode. Where the environment gives the pre-reset observation (``extras["final_obs"]``: Isaac
        Lab's ``compute_final_obs``, the Gymnasium adapter), a time-out bootstraps exactly from ``Q(s_final, a')``
        with ``a' ~ pi(.|s_final)`` and its entropy bonus. Otherwise it bootstraps from the last real state:
        ``V' = Q(s_t, a_t)`` and the entropy bonus of the chain that produced ``a_t`` (the one-step-early
        approximation of PPO's ``r + gamma * V(s_t)``). The self-predictive loss is masked after every episode end.
        """
        self._check_observations(obs)
        rewards = rewards.view(-1).float()
        dones = dones.view(-1).bool()
        time_outs = extras.get("time_outs")
        time_outs = torch.zeros_like(dones) if time_outs is None else time_outs.to(self.device).view(-1).bool() & dones
        terminations = dones & ~time_outs
        self._flag_nonfinite(obs, rewards)

        last = self._last_sample
        next_sample = self._sample_policy(obs)
        with self._autocast():
            next_embeddings = self.critic.embed(obs, squash(next_sample.x_final))
            next_sample.value = self.critic.value(self.critic.logits(next_embeddings))
            # With sarsa_bootstrap, Q(s_t, a_t) is the previous step's next value, except at a rollout's first step.
            last_values = last.value if last.value is not None else self.critic(self._last_obs, self._last_actions)
        # Time-outs bootstrap from the last real state (one step early) unless the pre-reset observation is known.
        bootstrap_values, bootstrap_log_likelihood = last_values, last.log_likelihood
        if "final_obs" in extras:
            bootstrap_values, bootstrap_log_likelihood = self._final_obs_bootstrap(
                extras["final_obs"], time_outs, bootstrap_values, bootstrap_log_likelihood
            )
        next_values = torch.where(time_outs, bootstrap_values, next_sample.value)
        next_log_likelihood = torch.where(time_outs, bootstrap_log_likelihood, next_sample.log_likelihood)
        entropy_bonus = -self.gamma * self.duals.entropy_coef * next_log_likelihood * (~terminations).float()
        self.storage.add(
            Transition(
                observations=self._last_obs,
                actions=self._last_actions,
                rewards=rewards,
                entropy_bonus=entropy_bonus,
                terminations=terminations,
                truncations=time_outs,
                next_values=next_values,
                next_embeddings=next_embeddings,
                chain_latents=last.latents,
                chain_means=last.means,
            )
        )
        if self.sarsa_bootstrap:
            self._next_sample = next_sample

    def _final_obs_bootstrap(
        self, final_obs: dict, time_outs: torch.Tensor, values: torch.Tensor, log_likelihood: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``Q(s_final, a')`` and ``l(a'|s_final)``, ``a' ~ pi(.|s_final)``, in the rows of the timed-out envs.

        Only those rows are evaluated: finding them reads the time-out mask on the host once per step, which costs
        less than a chain over every environment's final observation.
        """
        env_ids = time_outs.nonzero(as_tuple=True)[0]
        if env_ids.numel() == 0:
            return values, log_likelihood
        final = TensorDict(
            {key: value.to(self.device)[env_ids] for key, value in final_obs.items() if torch.is_tensor(value)},
            batch_size=[env_ids.numel()],
        )
        with self._autocast():
            # Eager: the number of timed-out envs changes from step to step, which a fixed-shape compiled chain
            # would recompile (or capture as a new CUDA graph) for.
            x_final, final_log_likelihood, _ = self.actor.sde_chain(self.actor.get_latent(final))
            final_values = self.critic(final, squash(x_final))
        return values.index_copy(0, env_ids, final_values), log_likelihood.index_copy(0, env_ids, final_log_likelihood)

    def compute_returns(self, obs: TensorDict) -> None:
        """Compute the lambda-returns of the rollout; on the first call with an ``auto`` support, set it first.

        Auto support rule: with ``h = 1 / (1 - gamma)`` and ``r_lo, r_hi`` the smallest and largest soft reward of
        the warm-up rollout, ``[value_min, value_max] = margin * h * [min(r_lo, 0), max(r_hi, 0)]``: the range of
        discounted returns of a reward held at either extreme forever, widened by ``auto_support_margin`` (2) because
        rewards grow as the policy improves. The clipped-target fraction is logged every update to catch the rest.
        """
        self._raise_if_nonfinite("rollout")
        storage = self.storage
        reward_scale = 1.0
        if self.return_scale is not None:
            episode_ends = storage.terminations | storage.truncations
            old_scale, reward_scale = self.return_scale.update(storage.rewards, episode_ends)
            # The stored V' came from the critic in the old unit; Q is linear in the rewards' unit.
            storage.next_values.mul_(old_scale / reward_scale)
        storage.set_soft_rewards(reward_scale)
        with self._autocast():
            self.actor.measure_action_std(obs)  # what the runner logs as the action std, on the rollout's last states
        if bool(self.critic.support_pending):
            self._set_auto_support()
        storage.compute_returns(self.gamma, self.lam)

    # ------------------------------------------------------------------ update

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
        if self.kl_bound_rule == "progress":
            self.update_kl_bound = self.progress_bound.step(self._mean_rollout_reward())
        elif self.kl_bound_rule == "critic_fit":
            explained_variance = self._critic_explained_variance(observations)
            self.update_kl_bound = critic_fit_bound(explained_variance, self.kl_bound_min, self.kl_bound)
            fit_stats["critic/explained_variance"] = explained_variance
        if self._stored_chains and self.kl_chains == "update":
            with self._autocast(), torch.no_grad():
                state = self.old_actor.get_latent(observations)
                self.storage.set_chains(sample_old_chains(self.old_actor, state, self.kl_samples))
        # Critic-only passes first: the actor's first steps then climb a critic that has already seen this rollout.
        for batch in self.storage.mini_batches(self.num_mini_batches, self.critic_warmup_epochs, old_chains=False):
            self._critic_step(batch)
        for batch in self.storage.mini_batches(self.num_mini_batches, self.num_learning_epochs):
            batch_stats = self._critic_step(batch) | self._actor_step(batch)
            for key, value in batch_stats.items():
                stats.setdefault(key, []).append(value.detach())

        # Normalisers change only here, after the update, so rollout and update saw the same statistics (the first
        # rollout already went into them in _start).
        if not first_update:
            self.actor.update_normalization(observations)
            self.critic.update_normalization(observations)
        self.old_actor.load_state_dict(self.actor.state_dict())
        self.storage.clear()
        self._next_sample = None  # sampled by the policy before this update

        loss_dict = self._reduce_stats(stats)
        self._raise_if_nonfinite("update", loss_dict)
        loss_dict |= fit_stats | {"trust_region/kl_bound": self.update_kl_bound} | self._state_diagnostics()
        if loss_dict["critic/clipped_target_fraction"] > self.clipped_target_warning and not self._warned_clipping:
            self._warned_clipping = True
            low, high = self.critic.value_range.tolist()
            warnings.warn(
                f"TruDi: {loss_dict['critic/clipped_target_fraction']:.1%} of the critic's return targets fall outside"
                f" its support [{low:g}, {high:g}]; widen critic.value_min/value_max or use 'auto'.",
                stacklevel=2,
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
        with torch.no_grad(), self._autocast():
            state = self.old_actor.get_latent(observations)
            if self._rollout_chains:
                # One step at a time: the whole rollout's N * T * E latents in one pass would hold N times the
                # activations of any mini-batch.
                latents, means = (
                    chains.flatten(0, 2) for chains in (self.storage.chain_latents, self.storage.chain_means)
                )
                condition = self.old_actor.condition(state)
                for n in range(self.old_actor.process.num_steps):
                    means[:, n] = self.old_actor.step_mean(latents[:, n], condition, n)
            running = self.old_actor.sde_chain(state)[2]
        self.duals.start(self._mean_over_ranks(-running.mean()))

    def _mean_over_ranks(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` (a per-rank mean over equal batch sizes) averaged over the torchrun ranks; unchanged alone."""
        if self.is_multi_gpu:
            torch.distributed.all_reduce(value)
            value /= self.gpu_world_size
        return value

    def _mean_rollout_reward(self) -> float:
        """The stored rollout's mean raw reward per step, over all ranks."""
        return float(self._mean_over_ranks(self.storage.rewards.mean()))

    def _critic_explained_variance(self, observations: TensorDict) -> float:
        """``1 - Var(G - Q(s, a)) / Var(G)`` over the stored rollout (all ranks), before the critic trains on it.

        ``G`` are the rollout's lambda-returns; the critic has not seen them, so this is how well it predicts returns
        of states and actions it is about to be trusted on. One critic pass over the rollout, no graph.
        """
        with torch.no_grad(), self._autocast():
            predictions = self.critic(observations, self.storage.actions.flatten(0, 1)).double()
        returns = self.storage.returns.flatten().double()
        errors = returns - predictions
        # Sums, so that torchrun ranks combine exactly: count, sum and sum of squares of returns and of errors (in
        # float64: variance from sums of squares loses float32's digits when the mean is large against the spread).
        sums = torch.stack(
            [torch.tensor(float(returns.numel()), device=returns.device), returns.sum(), returns.square().sum()]
            + [errors.sum(), errors.square().sum()]
        )
        if self.is_multi_gpu:
            torch.distributed.all_reduce(sums)
        count, return_sum, return_square_sum, error_sum, error_square_sum = sums.tolist()
        return_variance = return_square_sum / count - (return_sum / count) ** 2
        error_variance = error_square_sum / count - (error_sum / count) ** 2
        return 1.0 - error_variance / max(return_variance, 1e-8)

    @property
    def target_entropy(self) -> torch.Tensor:
        """``H_ref - c_H * d`` with ``H_ref`` the initial policy's entropy estimate (or 0, see the constructor)."""
        reference = self.duals.initial_entropy if self.entropy_target_reference == "initial" else 0.0
        return reference - self.entropy_target_mult * self.actor.action_dim

    def _critic_step(self, batch) -> dict[str, torch.Tensor]:
        """Cross-entropy to HL-Gauss targets of the lambda-returns plus the self-predictive loss."""
        with self._autocast():
            embedding = self.critic.embed(batch.observations, batch.actions)
            logits = self.critic.logits(embedding)
            predicted_embedding = self.critic.predict_next_embedding(embedding)
        value_loss = -(self.critic.target_probs(batch.returns) * F.log_softmax(logits, dim=-1)).sum(-1).mean()
        # After an episode end (environments reset inside step) the stored next embedding is of the next episode.
        keep = (~batch.episode_ends).float()
        prediction_error = (predicted_embedding - batch.next_embeddings).pow(2).mean(-1)
        aux_loss = (prediction_error * keep).sum() / keep.sum().clamp(min=1.0)
        self._apply_gradients(value_loss + self.aux_loss_coef * aux_loss, self.critic.parameters())
        low, high = self.critic.value_range
        clipped = ((batch.returns < low) | (batch.returns > high)).float().mean()
        return {
            "critic": value_loss,
            "critic_aux": aux_loss,
            "critic/q_mean": self.critic.value(logits).mean(),
            "critic/return_mean": batch.returns.mean(),
            "critic/clipped_target_fraction": clipped,
        }

    def _actor_step(self, batch) -> dict[str, torch.Tensor]:
        """Gated max-entropy pathwise step inside the trajectory-KL trust region, then the dual steps."""
        with self._autocast():
            state = self.actor.get_latent(batch.observations)
            x_final, log_likelihood, running, kl, kl_per_step = self._policy_terms(state, batch.old_chains)
            with _frozen(self.critic):
                q_value = self.critic(batch.observations, squash(x_final))
        actor_loss = actor_objective(
            self.trust_region,
            kl,
            log_likelihood,
            q_value,
            self.duals.entropy_coef,
            self.duals.kl_multiplier,
            self.update_kl_bound,
        ).mean()
        entropy = -running.mean()
        dual_loss = self.duals.entropy_loss(entropy, self.target_entropy)
        if self.trust_region != "none":
            dual_loss = dual_loss + self.duals.kl_loss(kl.mean(), self.update_kl_bound)
        self._apply_gradients(actor_loss + dual_loss, self.actor.parameters())
        if self.entropy_coef_floor > 0.0:
            # Projected dual ascent: alpha stays in [entropy_coef_floor, inf).
            with torch.no_grad():
                self.duals.log_entropy_coef.clamp_(min=math.log(self.entropy_coef_floor))
        stats = {
            "actor": actor_loss,
            "trust_region/kl_mean": kl.mean(),
            "trust_region/kl_max": kl.max(),
            "trust_region/kl_over_bound_fraction": (kl >= self.update_kl_bound).float().mean(),
            "entropy/estimate": entropy,
        }
        stats |= {f"trust_region/kl_step_{n}": value for n, value in enumerate(kl_per_step)}
        return stats

    def _chain_and_kl(self, state: torch.Tensor, old_chains: OldChains | None) -> tuple[torch.Tensor, ...]:
        """The actor step's chain (``x_N``, log-likelihood, running part) and trajectory KL (per state, per step).

        ``old_chains`` are the stored old-policy chains of these states, or ``None`` to sample them here.
        """
        if self.kl_direction == "reverse":
            x_final, log_likelihood, running, path = self.actor.sde_chain(state, return_path=True)
            kl, kl_per_step = reverse_trajectory_kl(self.actor, self.old_actor, state, path, self.kl_mode)
        else:
            x_final, log_likelihood, running = self.actor.sde_chain(state)
            if old_chains is None:
                old_chains = sample_old_chains(self.old_actor, state, self.kl_samples)
            if self.gate_aware_backward:
                kl, kl_per_step = gate_aware_forward_kl(
                    self.actor,
                    self.old_actor,
                    state,
                    old_chains,
                    self.trust_region,
                    self.update_kl_bound,
                    self.kl_mode,
                )
            else:
                kl, kl_per_step = forward_trajectory_kl(self.actor, self.old_actor, state, old_chains, self.kl_mode)
        return x_final, log_likelihood, running, kl, kl_per_step

    def _autocast(self) -> contextlib.AbstractContextManager:
        """The context of the network passes: bfloat16 autocast with ``mixed_precision: bf16``, else a no-op.

        Only forward passes run under it; backward and the optimizer step run outside, as autocast requires.
        """
        dtype = MIXED_PRECISION[self.mixed_precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=dtype)

    def _reduce_stats(self, stats: dict[str, list[torch.Tensor]]) -> dict[str, float]:
        """Average each statistic over the mini-batches; under torchrun, first reduce each mini-batch over the ranks.

        Per mini-batch, the statistics in :data:`MAX_STATS` take the maximum over ranks and the others the mean. With
        equal per-rank batch sizes (as torchrun runs have) that is what one process would log for the concatenated
        mini-batch, because every statistic is a batch mean or a batch maximum. Two collectives per update.
        """
        keys = list(stats)
        table = torch.stack([torch.stack(stats[key]) for key in keys])  # (num_stats, num_updates)
        if self.is_multi_gpu:
            maxima = table.clone()
            torch.distributed.all_reduce(table, op=torch.distributed.ReduceOp.SUM)
            torch.distributed.all_reduce(maxima, op=torch.distributed.ReduceOp.MAX)
            use_max = torch.tensor([key in MAX_STATS for key in keys], device=table.device).unsqueeze(-1)
            table = torch.where(use_max, maxima, table / self.gpu_world_size)
        return dict(zip(keys, table.mean(-1).tolist(), strict=True))

    def _apply_gradients(self, loss: torch.Tensor, clipped_params: Iterable[nn.Parameter]) -> None:
        """Backward, average across ranks, clip the given parameters' gradient norm and step."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.is_multi_gpu:
            self.reduce_parameters()
        nn.utils.clip_grad_norm_(list(clipped_params), self.max_grad_norm)
        self.optimizer.step()

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

    @property
    def learning_rate(self) -> float:
        """The Adam learning rate (constant)."""
        return self._learning_rate

    def get_policy(self) -> DiffusionActor:
        """The policy model (deterministic ODE sampler by default)."""
        return self.actor

    def train_mode(self) -> None:
        """Put the trained models in training mode."""
        self.actor.train()
        self.critic.train()

    def eval_mode(self) -> None:
        """Put the trained models in evaluation mode (the normalisers stop updating)."""
        self.actor.eval()
        self.critic.eval()

    def save(self) -> dict:
        """Everything needed to resume: models (with their normalisers), optimizer, old actor, duals, RNG state."""
        rng_state = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng_state["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "actor_state_dict": self.actor.state_dict(),
            "critic_state_dict": self.critic.state_dict(),
            "optimizer_state_dict": self.optimizer.state_dict(),
            "old_actor_state_dict": self.old_actor.state_dict(),
            "duals_state_dict": self.duals.state_dict(),
            "progress_bound_state_dict": self.progress_bound.state_dict(),
            "return_scale_state_dict": self.return_scale.state_dict() if self.return_scale is not None else None,
            "rng_state": rng_state,
        }

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Restore what ``load_cfg`` selects (all by default).

        ``load_cfg`` keys: ``actor``, ``critic``, ``optimizer``, ``iteration`` (as PPO) and TruDi's ``old_actor``,
        ``duals``, ``rng``. A checkpoint without an old actor (e.g. written by an earlier tool) syncs it to the actor.
        Returns whether the runner should restore the iteration counter.
        """
        if load_cfg is None:
            load_cfg = {key: True for key in ("actor", "critic", "optimizer", "iteration", "old_actor", "duals", "rng")}
        if load_cfg.get("actor"):
            self.actor.load_state_dict(loaded_dict["actor_state_dict"], strict=strict)
            self._next_sample = None
        if load_cfg.get("critic"):
            self.critic.load_state_dict(loaded_dict["critic_state_dict"], strict=strict)
        if load_cfg.get("optimizer"):
            # Whether Adam runs fused depends on this run's device, not the checkpoint's; set before loading, so the
            # step counters are placed the way the fused kernel needs them.
            state = loaded_dict["optimizer_state_dict"]
            fused = self.optimizer.defaults["fused"]
            state = {**state, "param_groups": [{**group, "fused": fused} for group in state["param_groups"]]}
            self.optimizer.load_state_dict(state)
            # The learning rate is a constant of the config, not state: a resumed run uses the configured one.
            for group in self.optimizer.param_groups:
                group["lr"] = self.dual_learning_rate if group.get("name") == "duals" else self._learning_rate
        if load_cfg.get("old_actor") and "old_actor_state_dict" in loaded_dict:
            self.old_actor.load_state_dict(loaded_dict["old_actor_state_dict"], strict=strict)
        elif load_cfg.get("actor"):
            self.old_actor.load_state_dict(self.actor.state_dict())
        if load_cfg.get("duals") and "duals_state_dict" in loaded_dict:
            self.duals.load_state_dict(loaded_dict["duals_state_dict"], strict=strict)
            scale_state = loaded_dict.get("return_scale_state_dict")
            if self.return_scale is not None and scale_state is not None:
                self.return_scale.load_state_dict(scale_state, strict=strict)
            # Checkpoints from before the progress rule have no bound state: such a run restarts it at kl_bound.
            if "progress_bound_state_dict" in loaded_dict:
                self.progress_bound.load_state_dict(loaded_dict["progress_bound_state_dict"], strict=strict)
                if self.kl_bound_rule == "progress":
                    self.update_kl_bound = float(self.progress_bound.bound)
        # Only rank 0's generators are in a checkpoint; the other ranks keep their own (per-rank seeded) ones, or every
        # rank would draw the same noise after a resume.
        if load_cfg.get("rng") and "rng_state" in loaded_dict and self.gpu_global_rank == 0:
            torch.set_rng_state(loaded_dict["rng_state"]["torch"].cpu())
            if "cuda" in loaded_dict["rng_state"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(loaded_dict["rng_state"]["cuda"])
        return bool(load_cfg.get("iteration"))

    def broadcast_parameters(self) -> None:
        """Copy rank 0's models, old actor and duals (with the normaliser statistics and critic support) to every rank.

        The optimizer state is not sent: it is empty at the start and restored from the same checkpoint on a resume.
        """
        modules = [self.actor, self.critic, self.old_actor, self.duals]
        if self.return_scale is not None:
            modules.append(self.return_scale)  # its persistent statistics; each rank keeps its own envs' returns
        for module in modules:
            for tensor in module.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)

    def reduce_parameters(self) -> None:
        """Average gradients across ranks; the duals' too, so every rank takes the same trust-region decision."""
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        try:
            from rsl_rl.utils import reduce_gradients_in_buckets
        except ImportError:  # rsl-rl-lib < 5.5: one flat all-reduce, as its own PPO does
            grads = [p.grad.view(-1) for p in params if p.grad is not None]
            flat = torch.cat(grads)
            torch.distributed.all_reduce(flat, op=torch.distributed.ReduceOp.SUM)
            flat /= self.gpu_world_size
            offset = 0
            for grad in grads:
                grad.copy_(flat[offset : offset + grad.numel()])
                offset += grad.numel()
            return
        reduce_gradients_in_buckets(params, self.gpu_world_size, self.grad_reduce_bucket_mb)

    # ------------------------------------------------------------------ internals

    def _set_auto_support(self) -> None:
        """Set the critic support from the warm-up rollout (rule in :meth:`compute_returns`)."""
        soft_rewards = self.storage.soft_rewards[: self.storage.step]
        bounds = torch.stack([-soft_rewards.min(), soft_rewards.max()])
        if self.is_multi_gpu:
            torch.distributed.all_reduce(bounds, op=torch.distributed.ReduceOp.MAX)
        reward_low, reward_high = -float(bounds[0]), float(bounds[1])
        scale = self.auto_support_margin / (1.0 - self.gamma) if self.gamma < 1.0 else self.auto_support_margin
        value_min, value_max = scale * min(reward_low, 0.0), scale * max(reward_high, 0.0)
        if value_max - value_min < 1e-6:
            value_min, value_max = -1.0, 1.0
        old_low, old_high = self.critic.value_range.tolist()
        self.critic.set_support(value_min, value_max)
        # Q is linear in the support, so values computed during the warm-up map exactly onto the new support.
        self.storage.next_values.sub_(old_low).mul_((value_max - value_min) / (old_high - old_low)).add_(value_min)
        print(
            f"[TruDi] critic support set to [{value_min:.3g}, {value_max:.3g}] from warm-up soft rewards in"
            f" [{reward_low:.3g}, {reward_high:.3g}]"
        )

    def _flag_nonfinite(self, obs: TensorDict, rewards: torch.Tensor) -> None:
        """Accumulate on the device whether any observation group or reward was non-finite."""
        for name, tensor in [*((f"observation group '{k}'", v) for k, v in obs.items()), ("reward", rewards)]:
            bad = ~torch.isfinite(tensor).all()
            self._nonfinite[name] = bad if name not in self._nonfinite else self._nonfinite[name] | bad

    def _raise_if_nonfinite(self, stage: str, losses: dict[str, float] | None = None) -> None:
        """Stop training (before anything is saved) if the rollout, a loss or a parameter went non-finite.

        All flags are read from the device at once. Under torchrun they are OR-ed over the ranks so that all ranks
        stop together instead of the healthy ones waiting forever in the next collective.
        """
        names, flags = list(self._nonfinite), list(self._nonfinite.values())
        self._nonfinite.clear()
        k = len(flags)  # the rollout's flags come first, then the parameters
        if losses is not None:
            for module_name, module in (("actor", self.actor), ("critic", self.critic), ("duals", self.duals)):
                for name, param in module.named_parameters():
                    names.append(f"{module_name} parameter '{name}'")
                    flags.append(~torch.isfinite(param).all())
        bad = []
        if flags:
            stacked = torch.stack(flags).float()
            if self.is_multi_gpu:
                torch.distributed.all_reduce(stacked, op=torch.distributed.ReduceOp.MAX)
            bad = stacked.bool().tolist()
        culprits = [name for name, flag in zip(names[:k], bad[:k], strict=True) if flag]
        if losses is not None:
            culprits += [f"loss '{key}'" for key, value in losses.items() if not math.isfinite(value)]
        culprits += [name for name, flag in zip(names[k:], bad[k:], strict=True) if flag]
        if culprits:
            raise FloatingPointError(
                f"TruDi stopped: non-finite values in the {stage}: {', '.join(culprits[:8])}"
                f"{' ...' if len(culprits) > 8 else ''}. No checkpoint was written after this point; the last saved"
                " one is intact."
            )


def graph_safe(function: Callable) -> Callable:
    """Wrap a function compiled with CUDA graphs so that its outputs survive the next replay.

    Each call starts a new graph step (``cudagraph_mark_step_begin``, so a replay may reuse the buffers of the previous
    call) and returns copies of the output tensors: the rollout keeps a chain's outputs across the next call, and the
    actor step's outputs are still needed in its backward pass. Around an uncompiled function the wrapper changes no
    value (``tests/test_compile.py``).
    """

    def call(*args, **kwargs):
        torch.compiler.cudagraph_mark_step_begin()
        return _copy_tensors(function(*args, **kwargs))

    return call


def _copy_tensors(value: object) -> object:
    """``value`` with every tensor in it (nested in tuples and lists) cloned."""
    if torch.is_tensor(value):
        return value.clone()
    if isinstance(value, tuple | list):
        return type(value)(_copy_tensors(item) for item in value)
    return value


def _resolve_model_class(section: str, class_name: object, base: type, default: str) -> type:
    """Resolve ``<section>.class_name`` and require a subclass of ``base``; one-line ConfigError otherwise."""
    try:
        model_class = resolve_callable(class_name)
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise ConfigError(
            f"{section}.class_name={class_name!r} is invalid: cannot be resolved ({error}); use {default!r}."
        ) from None
    if not (isinstance(model_class, type) and issubclass(model_class, base)):
        raise ConfigError(
            f"{section}.class_name={class_name!r} is invalid: TruDi needs a {base.__name__} (or a subclass),"
            f" e.g. {default!r}."
        )
    return model_class


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
