"""The rollout half of TruDi: acting, storing transitions with their soft rewards, and the lambda-returns."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict

from trudi.config import ConfigError
from trudi.parts import TruDiPart
from trudi.runtime import stop_if_nonfinite
from trudi.sampler import squash
from trudi.storage import Transition


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


@dataclass(eq=False, repr=False)
class TruDiRollout(TruDiPart):
    """Collects one rollout: an SDE chain per environment and step, and a second one at each next state.

    The second chain gives the bootstrap value ``V' = Q(s', a')`` and the soft reward's entropy bonus; with
    ``sarsa_bootstrap`` it is also the next step's action. After the rollout, :meth:`compute_returns` normalises the
    rewards and fills the storage's lambda-returns (docs/algorithm.md §1.5-§1.7).
    """

    def __post_init__(self) -> None:
        self.sample_chain = self.actor.sde_chain
        """The SDE chain of the rollout; :meth:`TruDi.compile` replaces it with its compiled version."""
        # Per-step state between act() and process_env_step().
        self._last_obs: TensorDict | None = None
        self._last_actions: torch.Tensor | None = None
        self._last_sample: _PolicySample | None = None
        # With sarsa_bootstrap: the chain sampled at the last next state, the action of the next act().
        self._next_sample: _PolicySample | None = None
        # Device-side flags so the rollout loop never waits on the host; checked once per rollout.
        self._nonfinite: dict[str, torch.Tensor] = {}

    def discard_next_sample(self) -> None:
        """Forget the chain sampled for the next action: the policy that sampled it has just changed."""
        self._next_sample = None

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
        with self.runtime.autocast():
            state = self.actor.get_latent(obs)
            if self.cfg.keeps_rollout_chains:
                x_final, log_likelihood, _, path = self.sample_chain(state, return_path=True)
                latents, means = (torch.stack(column) for column in zip(*path, strict=True))
                return _PolicySample(x_final, log_likelihood, latents, means)
            x_final, log_likelihood, _ = self.sample_chain(state)
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
        time_outs = (
            torch.zeros_like(dones) if time_outs is None else time_outs.to(self.runtime.device).view(-1).bool() & dones
        )
        terminations = dones & ~time_outs
        self._flag_nonfinite(obs, rewards)

        last = self._last_sample
        next_sample = self._sample_policy(obs)
        with self.runtime.autocast():
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
        entropy_bonus = -self.cfg.gamma * self.duals.entropy_coef * next_log_likelihood * (~terminations).float()
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
        if self.cfg.sarsa_bootstrap:
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
            {key: value.to(self.runtime.device)[env_ids] for key, value in final_obs.items() if torch.is_tensor(value)},
            batch_size=[env_ids.numel()],
        )
        with self.runtime.autocast():
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
        stop_if_nonfinite("rollout", self._nonfinite, self.runtime)
        self._nonfinite.clear()
        storage = self.storage
        reward_scale = 1.0
        if self.return_scale is not None:
            episode_ends = storage.terminations | storage.truncations
            old_scale, reward_scale = self.return_scale.update(storage.rewards, episode_ends)
            # The stored V' came from the critic in the old unit; Q is linear in the rewards' unit.
            storage.next_values.mul_(old_scale / reward_scale)
        storage.set_soft_rewards(reward_scale)
        with self.runtime.autocast():
            self.actor.measure_action_std(obs)  # what the runner logs as the action std, on the rollout's last states
        if bool(self.critic.support_pending):
            self._set_auto_support()
        storage.compute_returns(self.cfg.gamma, self.cfg.lam)

    def _set_auto_support(self) -> None:
        """Set the critic support from the warm-up rollout (rule in :meth:`compute_returns`)."""
        soft_rewards = self.storage.soft_rewards[: self.storage.step]
        bounds = torch.stack([-soft_rewards.min(), soft_rewards.max()])
        self.runtime.max_over_ranks(bounds)
        reward_low, reward_high = -float(bounds[0]), float(bounds[1])
        scale = (
            self.cfg.auto_support_margin / (1.0 - self.cfg.gamma)
            if self.cfg.gamma < 1.0
            else self.cfg.auto_support_margin
        )
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
