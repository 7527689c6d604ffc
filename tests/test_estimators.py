"""The cheaper estimators of the update and the rollout, each checked against its definition (docs/algorithm.md).

- the batched forward and reverse trajectory KL equal the step-by-step ones, value and gradient;
- the gate-aware forward KL gives the gated actor loss the same value and gradient as the plain KL, for every
  ``trust_region`` mode;
- ``kl_chains: rollout`` keeps chains that are old-policy samples of the stored states, and its KL estimate agrees
  with fresh chains' in expectation; ``kl_chains: update`` stores K chains per state, each of its own state;
- ``sarsa_bootstrap``: the next action is the chain sampled for the bootstrap, so ``V'_t = Q(s_{t+1}, a_{t+1})`` of
  the action actually taken;
- a time-out bootstraps from ``Q(s_final, a')`` where the environment gives the pre-reset observation, and from
  ``Q(s_t, a_t)`` where it does not.
"""

import copy

import pytest
import torch
from rsl_rl.env import VecEnv
from tensordict import TensorDict

from trudi.actor import DiffusionActor
from trudi.config import ConfigError
from trudi.envs import GymVecEnv
from trudi.rsl_rl import OnPolicyRunner
from trudi.sampler import squash
from trudi.storage import OldChains
from trudi.tasks import train_cfg
from trudi.trust_region import (
    actor_objective,
    forward_trajectory_kl,
    gate_aware_forward_kl,
    gaussian_kl,
    reverse_trajectory_kl,
    sample_old_chains,
    trajectory_kl,
)


def _pair(obs_dim: int = 5, action_dim: int = 3) -> tuple[DiffusionActor, DiffusionActor]:
    """An old actor (frozen) and a perturbed new one, both with a non-trivial control."""
    torch.manual_seed(0)
    obs = TensorDict({"policy": torch.zeros(4, obs_dim)}, batch_size=[4])
    old = DiffusionActor(obs, {"actor": ["policy"]}, "actor", action_dim, hidden_dims=[32, 32], obs_normalization=False)
    with torch.no_grad():
        old.control_net.mlp[-1].weight.normal_(0.0, 0.3)
    new = copy.deepcopy(old)
    with torch.no_grad():
        for param in new.parameters():
            param.add_(0.1 * torch.randn_like(param))
    return old.requires_grad_(False), new


def _value_and_grads(loss_fn, module: torch.nn.Module) -> tuple[torch.Tensor, list[torch.Tensor]]:
    module.zero_grad(set_to_none=True)
    kl, _ = loss_fn()
    kl.mean().backward()
    return kl.detach(), [p.grad.clone() for p in module.parameters() if p.grad is not None]


def test_batched_forward_kl_equals_the_step_by_step_kl_value_and_gradient():
    old, new = _pair()
    state = torch.randn(64, 5)
    chains = sample_old_chains(old, state, num_samples=4)
    batched = _value_and_grads(lambda: forward_trajectory_kl(new, old, state, chains, batched=True), new)
    sequential = _value_and_grads(lambda: forward_trajectory_kl(new, old, state, chains, batched=False), new)
    assert batched[0].min() > 0
    assert torch.allclose(batched[0], sequential[0], rtol=1e-6, atol=0)
    assert len(batched[1]) == len(sequential[1]) > 0
    for grad_b, grad_s in zip(batched[1], sequential[1], strict=True):
        assert torch.allclose(grad_b, grad_s, rtol=1e-4, atol=1e-6 * grad_s.abs().max())


@pytest.mark.parametrize("trust_region", ["gate", "penalty", "none"])
def test_gate_aware_kl_gives_the_gated_loss_the_same_value_and_gradient(trust_region):
    old, new = _pair()
    state = torch.randn(64, 5)
    chains = sample_old_chains(old, state, num_samples=2)
    with torch.no_grad():
        kl_bound = float(forward_trajectory_kl(new, old, state, chains)[0].median())  # half the states over it
    # A stand-in objective that, like alpha * l - Q, depends on the new policy at every state.
    objective = new.ode_chain(state, torch.zeros(64, 3)).square().sum(-1)
    alpha, lam = torch.tensor(0.3), torch.tensor(2.0)
    params = [param for param in new.parameters() if param.requires_grad]

    def loss(kl_fn):
        kl, _ = kl_fn()
        return actor_objective(trust_region, kl, objective, -objective, alpha, lam, kl_bound).mean(), kl

    plain_loss, plain_kl = loss(lambda: forward_trajectory_kl(new, old, state, chains))
    plain = torch.autograd.grad(plain_loss, params, retain_graph=True, allow_unused=True)
    aware_loss, aware_kl = loss(lambda: gate_aware_forward_kl(new, old, state, chains, trust_region, kl_bound))
    aware = torch.autograd.grad(aware_loss, params, allow_unused=True)
    assert 0 < int((plain_kl >= kl_bound).sum()) < 64
    assert torch.allclose(aware_kl, plain_kl, rtol=1e-5, atol=0)
    assert torch.allclose(aware_loss, plain_loss, rtol=1e-5, atol=0)
    for grad_a, grad_p in zip(aware, plain, strict=True):
        if grad_p is None:
            assert grad_a is None or not grad_a.any()
        else:
            assert torch.allclose(grad_a, grad_p, rtol=1e-4, atol=1e-6 * grad_p.abs().max())
    assert aware_kl.requires_grad == (trust_region != "none")


def test_batched_reverse_kl_equals_the_step_by_step_definition_value_and_gradient():
    old, new = _pair()
    state = torch.randn(64, 5)

    def step_by_step():
        # KL(N(mu_new,n, 2 eta_new) || N(mu_old,n(x_n), 2 eta_old)) summed over the new chain's steps.
        path = new.sde_chain(state, return_path=True)[3]
        condition_old = old.condition(state)
        var_new, var_old = 2.0 * new.process.etas(), 2.0 * condition_old[0]
        per_step = [
            gaussian_kl(mean, var_new[n], old.step_mean(x, condition_old, n), var_old[n])
            for n, (x, mean) in enumerate(path)
        ]
        return torch.stack(per_step, -1).sum(-1), None

    def batched():
        path = new.sde_chain(state, return_path=True)[3]
        return reverse_trajectory_kl(new, old, state, path)

    torch.manual_seed(1)
    reference = _value_and_grads(step_by_step, new)
    torch.manual_seed(1)
    result = _value_and_grads(batched, new)
    assert torch.allclose(result[0], reference[0], rtol=1e-5, atol=1e-7)
    for grad_b, grad_s in zip(result[1], reference[1], strict=True):
        assert torch.allclose(grad_b, grad_s, rtol=1e-4, atol=1e-6 * grad_s.abs().max())


def _rollout_runner(**algorithm) -> tuple[OnPolicyRunner, GymVecEnv]:
    torch.manual_seed(0)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=8, seed=0)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["algorithm"].update(algorithm)
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    runner.learn(1)  # a critic and an actor that are no longer at their initialisation
    return runner, env


def _collect(runner: OnPolicyRunner, env: GymVecEnv) -> list[torch.Tensor]:
    """One rollout into the storage; returns the actions sent to the environment at each step."""
    alg, obs, sent = runner.alg, env.get_observations(), []
    with torch.inference_mode():
        for _ in range(alg.storage.num_steps):
            actions = alg.act(obs)
            sent.append(actions.clone())
            obs, rewards, dones, extras = env.step(actions)
            alg.process_env_step(obs, rewards, dones, extras)
    return sent


def test_rollout_chains_are_old_policy_samples_of_the_stored_states():
    runner, env = _rollout_runner(kl_chains="rollout", kl_samples=1)
    alg = runner.alg
    _collect(runner, env)
    storage = alg.storage
    observations = storage.observations.flatten(0, 1)
    latents = storage.chain_latents.flatten(0, 1)[:, 0].transpose(0, 1)  # (N, B, d)
    means = storage.chain_means.flatten(0, 1)[:, 0].transpose(0, 1)
    with torch.no_grad():
        state = alg.old_actor.get_latent(observations)
        condition = alg.old_actor.condition(state)
        etas = condition[0]
        # Each stored mean is the old kernel's mean at the stored latent of the same state ...
        assert torch.allclose(means, alg.old_actor.step_means(latents, condition), atol=1e-5)
        # ... the next latent is drawn around it with variance 2 eta_n (standardised noise ~ N(0, 1)) ...
        noise = (latents[1:] - means[:-1]) / torch.sqrt(2.0 * etas[:-1]).unsqueeze(1)
        assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 1.0) < 0.1
        # ... the first latent comes from the prior, and the last step's mean leads to the stored action.
        assert abs(latents[0].std().item() / alg.actor.process.init_std - 1.0) < 0.15
        actions = storage.actions.flatten(0, 1)
        inside = actions.abs() < 0.99  # where tanh was not clipped, x_N = atanh(a)
        last_noise = (torch.atanh(actions) - means[-1]) / torch.sqrt(2.0 * etas[-1])
        assert inside.sum() > 100 and abs(last_noise[inside].std().item() - 1.0) < 0.15
    env.close()


def test_rollout_chains_estimate_the_same_kl_as_fresh_chains():
    # Monte Carlo: over many states the K = 1 rollout estimate and a K = 64 fresh estimate agree on the mean KL.
    old, new = _pair()
    state = torch.randn(4000, 5)
    with torch.no_grad():
        x_final, _, _, path = old.sde_chain(state, return_path=True)  # what the rollout stores
        stored = OldChains(torch.stack([x for x, _ in path]), torch.stack([m for _, m in path]))
        from_rollout = forward_trajectory_kl(new, old, state, stored)[0].mean().item()
        fresh = trajectory_kl(new, old, state, num_samples=64)[0].mean().item()
    assert fresh > 0.02
    assert abs(from_rollout - fresh) < 0.05 * fresh


def test_update_chains_are_k_chains_of_each_state():
    runner, env = _rollout_runner(kl_chains="update", kl_samples=3)
    alg = runner.alg
    _collect(runner, env)
    observations = alg.storage.observations.flatten(0, 1)
    with torch.no_grad():
        state = alg.old_actor.get_latent(observations)
        alg.storage.set_chains(sample_old_chains(alg.old_actor, state, 3))
    batch = next(alg.storage.mini_batches(2, 1))
    assert batch.old_chains.latents.shape[1] == 3 * batch.actions.shape[0]
    with torch.no_grad():
        condition = alg.old_actor.condition(alg.old_actor.get_latent(batch.observations), repeats=3)
        assert torch.allclose(batch.old_chains.means, alg.old_actor.step_means(batch.old_chains.latents, condition))
    env.close()


@pytest.mark.parametrize("sarsa", [True, False])
def test_sarsa_bootstrap_acts_with_the_chain_it_bootstraps_from(sarsa):
    runner, env = _rollout_runner(sarsa_bootstrap=sarsa)
    alg = runner.alg
    sent = _collect(runner, env)
    storage = alg.storage
    ends = storage.terminations | storage.truncations
    with torch.no_grad():
        # Q(s_{t+1}, a_{t+1}) of the actions actually taken at the next step, where the episode went on.
        taken = torch.stack([alg.critic(storage.observations[t + 1], storage.actions[t + 1]) for t in range(31)])
    mask = ~ends[:-1]
    matches = torch.isclose(storage.next_values[:-1][mask], taken[mask], atol=1e-5)
    if sarsa:
        assert matches.all()
        assert torch.allclose(torch.stack(sent[1:]), alg.actor.action_scale * storage.actions[1:])
    else:
        assert matches.float().mean() < 0.5  # a fresh a' at s', not the action taken
    env.close()


def test_sarsa_bootstrap_resamples_after_an_update():
    runner, env = _rollout_runner(sarsa_bootstrap=True)
    alg = runner.alg
    _collect(runner, env)
    assert alg.rollout._next_sample is not None
    with torch.inference_mode():
        alg.compute_returns(env.get_observations())
    alg.update()
    assert alg.rollout._next_sample is None  # the cached chain came from the policy before the update
    env.close()


class _Clock(VecEnv):
    """Episodes of ``LENGTH`` steps that always time out; the observation is the elapsed fraction of the episode.

    The pre-reset observation of a time-out (1.0) is far from both the last real state's and the reset's, so the
    exact bootstrap and the one-step-early approximation differ.
    """

    LENGTH = 4

    def __init__(self, num_envs: int = 8, final_obs: bool = True) -> None:
        self.num_envs, self.num_actions, self.device = num_envs, 1, "cpu"
        self.max_episode_length, self.final_obs, self.cfg = self.LENGTH, final_obs, {}
        self.episode_length_buf = torch.arange(num_envs) % self.LENGTH

    def get_observations(self) -> TensorDict:
        obs = (self.episode_length_buf.float() / self.LENGTH).unsqueeze(-1)
        return TensorDict({"policy": obs}, batch_size=[self.num_envs])

    def step(self, actions):
        self.episode_length_buf += 1
        time_outs = self.episode_length_buf >= self.LENGTH
        extras = {"time_outs": time_outs}
        if self.final_obs:
            extras["final_obs"] = {"policy": self.get_observations()["policy"].clone()}
        self.episode_length_buf[time_outs] = 0
        return self.get_observations(), actions.sum(-1), time_outs.long(), extras


@pytest.mark.parametrize("final_obs", [True, False])
def test_time_outs_bootstrap_from_the_final_observation_when_there_is_one(final_obs):
    env = _Clock(final_obs=final_obs)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["num_steps_per_env"] = 8
    torch.manual_seed(0)
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    runner.learn(2)  # a critic whose value depends on the observation
    alg, obs = runner.alg, env.get_observations()
    with torch.inference_mode():
        alg.act(obs)
        one_step_early = alg.rollout._last_sample.value
        if one_step_early is None:  # the rollout's first step: Q(s_t, a_t) is computed in process_env_step
            one_step_early = alg.critic(obs, squash(alg.rollout._last_sample.x_final))
        obs, rewards, dones, extras = env.step(alg.actor.action_scale * alg.rollout._last_actions)
        time_outs = extras["time_outs"]
        torch.manual_seed(123)
        alg.process_env_step(obs, rewards, dones, extras)
        stored = alg.storage.next_values[alg.storage.step - 1]
        if final_obs:
            # The same draws again: the chain at s' first, then the chains at the final observations.
            torch.manual_seed(123)
            alg.rollout._sample_policy(obs)
            final = TensorDict({"policy": extras["final_obs"]["policy"][time_outs]}, batch_size=[int(time_outs.sum())])
            x_final = alg.rollout.sample_chain(alg.actor.get_latent(final))[0]
            expected = alg.critic(final, squash(x_final))
        else:
            expected = one_step_early[time_outs]
    assert time_outs.sum() == 2
    assert torch.allclose(stored[time_outs], expected, atol=1e-6)
    if final_obs:
        assert (stored[time_outs] - one_step_early[time_outs]).abs().min() > 1e-4  # the two bootstraps differ here


def test_logged_action_std_is_the_std_of_actions_at_a_state():
    old, _ = _pair()
    state_obs = TensorDict({"policy": torch.randn(4000, 5)}, batch_size=[4000])
    torch.manual_seed(0)
    measured = old.measure_action_std(state_obs)
    assert torch.equal(old.output_std, measured)
    with torch.no_grad():
        # Monte Carlo at a few of those states: 2000 draws each, std per state and dimension, then the RMS over states.
        few = state_obs[:20]
        draws = torch.stack([squash(old.sde_chain(old.get_latent(few))[0]) for _ in range(2000)])  # (2000, 20, d)
        reference = draws.var(0).mean(0).sqrt()
    assert torch.allclose(measured, reference, rtol=0.1)


class _Reshaping(_Clock):
    """A clock whose observation group changes shape after the first step."""

    def step(self, actions):
        obs, rewards, dones, extras = super().step(actions)
        return TensorDict({"policy": obs["policy"].repeat(1, 2)}, batch_size=[self.num_envs]), rewards, dones, extras


def test_an_observation_group_of_the_wrong_shape_fails_at_the_first_step_naming_the_group():
    env = _Reshaping(final_obs=False)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["num_steps_per_env"] = 4
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    with pytest.raises(ConfigError) as error:
        runner.learn(1)
    message = str(error.value)
    assert "observation group 'policy' has shape (8, 2)" in message and "\n" not in message
