"""Rollout storage for TruDi and the lambda-returns on Q."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from tensordict import TensorDict


@dataclass
class OldChains:
    """Old-policy chains and the old kernels along them: the samples of the forward trajectory KL.

    Rows are ``B * K`` chains, the ``K`` chains of each state next to each other (state-major), as
    :meth:`DiffusionActor.condition` repeats the states.
    """

    latents: torch.Tensor
    """``x_n`` at which step ``n``'s kernels are compared (N, B*K, d)."""
    means: torch.Tensor
    """The old kernel means ``mu_old,n(x_n)`` (N, B*K, d)."""


def lambda_returns(
    soft_rewards: torch.Tensor,
    next_values: torch.Tensor,
    terminations: torch.Tensor,
    truncations: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """TD(lambda) targets for Q over a rollout, all tensors (T, N).

    ``G_t = r~_t + gamma * (1 - terminated_t) * [ truncated_t ? V'_t : lam * G_{t+1} + (1 - lam) * V'_t ]``
    with ``V'_t = Q(s_{t+1}, a'_{t+1})`` stored at collection time. The last step of the rollout counts as
    truncated (there is no ``G_T`` to recurse into) unless it terminated. Terminations and truncations are
    exclusive: a time-out is stored as truncated, not terminated.
    """
    returns = torch.zeros_like(soft_rewards)
    next_return = next_values[-1]
    for t in reversed(range(soft_rewards.shape[0])):
        truncated = truncations[t] | (t == soft_rewards.shape[0] - 1)
        bootstrap = torch.where(truncated, next_values[t], lam * next_return + (1.0 - lam) * next_values[t])
        # A termination ends the return even on the rollout's last step.
        returns[t] = soft_rewards[t] + gamma * (~terminations[t]).float() * bootstrap
        next_return = returns[t]
    return returns


@dataclass
class Transition:
    """One environment step of every environment, as the algorithm stores it."""

    observations: TensorDict
    """Raw observations of all groups at ``s_t`` (E,)."""
    actions: torch.Tensor
    """Unit-range actions ``tanh(x_N)`` taken at ``s_t`` (E, d)."""
    rewards: torch.Tensor
    """The environment's rewards (E,)."""
    entropy_bonus: torch.Tensor
    """The entropy bonus of the next action, ``-gamma * alpha * l(a'|s')`` (E,), in the rewards' normalised unit."""
    terminations: torch.Tensor
    """Whether the episode ended in a terminal state (E,), bool."""
    truncations: torch.Tensor
    """Whether the episode was cut by a time-out (E,), bool; exclusive with ``terminations``."""
    next_values: torch.Tensor
    """The bootstrap value ``V' = Q(s', a')`` (E,)."""
    next_embeddings: torch.Tensor
    """Critic embedding of ``(s', a')`` (E, embedding_dim), the self-predictive loss's target."""
    chain_latents: torch.Tensor | None = None
    """With ``kl_chains: rollout``: the latents ``x_0 .. x_{N-1}`` of the chain that produced the action (N, E, d)."""
    chain_means: torch.Tensor | None = None
    """With ``kl_chains: rollout``: the kernel means along that chain (N, E, d)."""


@dataclass
class TruDiBatch:
    """One mini-batch of flattened transitions."""

    observations: TensorDict
    """Raw observations of all groups (B,)."""
    actions: torch.Tensor
    """Unit-range actions ``tanh(x_N)`` (B, d)."""
    returns: torch.Tensor
    """Lambda-return targets (B,)."""
    next_embeddings: torch.Tensor
    """Critic embedding of ``(s', a')`` from collection time (B, E)."""
    episode_ends: torch.Tensor
    """Whether the episode ended at this step (B,): the stored next embedding then belongs to the next episode's
    first state, so the self-predictive loss is masked there."""
    old_chains: OldChains | None = None
    """Stored old-policy chains of these states, ``K`` per state (``kl_chains`` ``rollout`` or ``update``)."""


class TruDiStorage:
    """Fixed-size buffers of one rollout of ``num_steps`` steps from ``num_envs`` environments.

    Old-policy chains for the trust region are kept only when :meth:`reserve_chains` asked for them (``kl_chains``
    ``rollout`` or ``update``); otherwise the update re-simulates them.
    """

    def __init__(
        self, num_envs: int, num_steps: int, obs: TensorDict, action_dim: int, embedding_dim: int, device: str
    ) -> None:
        self.num_envs = num_envs
        self.num_steps = num_steps
        self.device = device
        shape = (num_steps, num_envs)
        self.observations = TensorDict(
            {
                key: torch.zeros(*shape, *value.shape[1:], dtype=value.dtype, device=device)
                for key, value in obs.items()
            },
            batch_size=shape,
            device=device,
        )
        self.actions = torch.zeros(*shape, action_dim, device=device)
        self.rewards = torch.zeros(shape, device=device)
        self.entropy_bonus = torch.zeros(shape, device=device)
        """The entropy bonus of the next action, stored by :meth:`add`."""
        self.soft_rewards = torch.zeros(shape, device=device)
        """Normalised reward plus entropy bonus, set by :meth:`set_soft_rewards` before the returns."""
        self.terminations = torch.zeros(shape, dtype=torch.bool, device=device)
        self.truncations = torch.zeros(shape, dtype=torch.bool, device=device)
        self.next_values = torch.zeros(shape, device=device)
        self.next_embeddings = torch.zeros(*shape, embedding_dim, device=device)
        self.returns = torch.zeros(shape, device=device)
        self.chain_latents: torch.Tensor | None = None
        """Old-policy chains' latents (T, E, K, N, d), when reserved."""
        self.chain_means: torch.Tensor | None = None
        """Old kernel means along them (T, E, K, N, d), when reserved."""
        self.step = 0

    def reserve_chains(self, num_samples: int, num_denoising_steps: int, action_dim: int) -> None:
        """Allocate room for ``num_samples`` old-policy chains per transition."""
        shape = (self.num_steps, self.num_envs, num_samples, num_denoising_steps, action_dim)
        self.chain_latents = torch.zeros(shape, device=self.device)
        self.chain_means = torch.zeros(shape, device=self.device)

    def add(self, transition: Transition) -> None:
        """Write one environment step."""
        if self.step >= self.num_steps:
            raise OverflowError(
                f"TruDiStorage holds {self.num_steps} steps per rollout; clear() it before adding more."
            )
        t = self.step
        for key, value in transition.observations.items():
            self.observations[key][t].copy_(value)
        self.actions[t].copy_(transition.actions)
        self.rewards[t].copy_(transition.rewards)
        self.entropy_bonus[t].copy_(transition.entropy_bonus)
        self.terminations[t].copy_(transition.terminations)
        self.truncations[t].copy_(transition.truncations)
        self.next_values[t].copy_(transition.next_values)
        self.next_embeddings[t].copy_(transition.next_embeddings)
        if transition.chain_latents is not None:
            # (N, E, d) -> the storage's (E, K=1, N, d)
            self.chain_latents[t].copy_(transition.chain_latents.transpose(0, 1).unsqueeze(1))
            self.chain_means[t].copy_(transition.chain_means.transpose(0, 1).unsqueeze(1))
        self.step += 1

    def set_chains(self, chains: OldChains) -> None:
        """Store chains sampled for every transition at once (rows in flattened ``(t, env)`` order, K per state)."""
        shape = self.chain_latents.shape
        # (N, T*E*K, d) -> (T, E, K, N, d)
        self.chain_latents.copy_(chains.latents.view(shape[3], *shape[:3], shape[4]).permute(1, 2, 3, 0, 4))
        self.chain_means.copy_(chains.means.view(shape[3], *shape[:3], shape[4]).permute(1, 2, 3, 0, 4))

    def set_soft_rewards(self, reward_scale: float | torch.Tensor = 1.0) -> None:
        """``r~ = r / reward_scale + entropy_bonus`` for the stored steps."""
        self.soft_rewards.copy_(self.rewards / reward_scale + self.entropy_bonus)

    def compute_returns(self, gamma: float, lam: float) -> None:
        """Fill :attr:`returns` with :func:`lambda_returns`."""
        self.returns.copy_(
            lambda_returns(self.soft_rewards, self.next_values, self.terminations, self.truncations, gamma, lam)
        )

    def mini_batches(self, num_mini_batches: int, num_epochs: int, old_chains: bool = True) -> Iterator[TruDiBatch]:
        """Yield shuffled mini-batches, a fresh permutation per epoch.

        ``old_chains=False`` leaves the stored old-policy chains out of the batches (the critic's steps do not read
        them).
        """
        batch_size = self.num_envs * self.num_steps
        mini_batch_size = batch_size // num_mini_batches
        observations = self.observations.flatten(0, 1)
        actions = self.actions.flatten(0, 1)
        returns = self.returns.flatten(0, 1)
        next_embeddings = self.next_embeddings.flatten(0, 1)
        episode_ends = (self.terminations | self.truncations).flatten(0, 1)
        for _ in range(num_epochs):
            permutation = torch.randperm(batch_size, device=self.device)
            for i in range(num_mini_batches):
                idx = permutation[i * mini_batch_size : (i + 1) * mini_batch_size]
                yield TruDiBatch(
                    observations[idx],
                    actions[idx],
                    returns[idx],
                    next_embeddings[idx],
                    episode_ends[idx],
                    self.chains_of(idx) if old_chains else None,
                )

    def chains_of(self, idx: torch.Tensor) -> OldChains | None:
        """The stored old-policy chains of the transitions ``idx`` (flattened ``(t, env)`` order), if any are kept."""
        if self.chain_latents is None:
            return None
        # (T, E, K, N, d) -> (N, B*K, d), the K chains of a state next to each other
        latents, means = (
            chains.flatten(0, 1)[idx].flatten(0, 1).transpose(0, 1) for chains in (self.chain_latents, self.chain_means)
        )
        return OldChains(latents, means)

    def clear(self) -> None:
        """Start a new rollout."""
        self.step = 0
