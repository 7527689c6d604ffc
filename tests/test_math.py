"""The math of docs/algorithm.md §1.1-1.4 checked against independent estimates or hand computations."""

import copy

import torch
from tensordict import TensorDict

from trudi.actor import DiffusionActor
from trudi.critic import hl_gauss_probs
from trudi.sampler import PRE_TANH_LIMIT
from trudi.storage import lambda_returns
from trudi.trust_region import actor_objective, gaussian_kl, reverse_trajectory_kl, trajectory_kl


def _actor(seed: int = 0, **kwargs) -> DiffusionActor:
    torch.manual_seed(seed)
    obs = TensorDict({"policy": torch.zeros(4, 1)}, batch_size=[4])
    groups = {"actor": ["policy"]}
    return DiffusionActor(obs, groups, "actor", 1, hidden_dims=[16, 16], obs_normalization=False, **kwargs)


def test_closed_form_gaussian_kl_matches_monte_carlo():
    torch.manual_seed(0)
    mean_p, var_p = torch.tensor([0.3, -1.0]), torch.tensor([0.5, 2.0])
    mean_q, var_q = torch.tensor([-0.2, 0.4]), torch.tensor([0.8, 1.1])
    x = mean_p + var_p.sqrt() * torch.randn(400_000, 2)
    log_p = torch.distributions.Normal(mean_p, var_p.sqrt()).log_prob(x).sum(-1)
    log_q = torch.distributions.Normal(mean_q, var_q.sqrt()).log_prob(x).sum(-1)
    monte_carlo = (log_p - log_q).mean()
    assert abs(gaussian_kl(mean_p, var_p, mean_q, var_q) - monte_carlo) < 0.01
    # The mean-only form equals the full one when the variances agree.
    assert torch.allclose(gaussian_kl(mean_p, var_p, mean_q, var_p), gaussian_kl(mean_p, var_p, mean_q, var_p, "mean"))


def _sequential_chain_log_likelihood(actor: DiffusionActor, state: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The plain reference of ``sde_chain``: each step's kernel densities summed as the chain is drawn.

    It draws its noise in the order ``sde_chain`` does (the prior, then one draw per step), so with the same seed it
    samples the same chain.
    """
    process, normal = actor.process, torch.distributions.Normal
    condition = actor.condition(state)
    x = torch.randn(state.shape[0], actor.action_dim) * process.init_std
    prior = normal(0.0, process.init_std).log_prob(x).sum(-1)
    running = torch.zeros(state.shape[0])
    for n in range(process.num_steps):
        eta = condition[0][n]
        mean = actor.step_mean(x, condition, n)
        x_next = mean + torch.sqrt(2.0 * eta) * torch.randn_like(x)
        forward = normal(mean, torch.sqrt(2.0 * eta)).log_prob(x_next).sum(-1)
        backward = normal(x_next - eta * x_next / process.init_std**2, torch.sqrt(2.0 * eta)).log_prob(x).sum(-1)
        running = running + forward - backward
        x = x_next
    x_clipped = x.clamp(-PRE_TANH_LIMIT, PRE_TANH_LIMIT)
    running = running - torch.log(1.0 - torch.tanh(x_clipped) ** 2).sum(-1)
    return x, prior + running, running


def test_chain_log_likelihood_equals_the_step_by_step_sum_in_value_and_gradient():
    actor = _actor(learn_dt=True, per_step_dt=True)
    with torch.no_grad():
        actor.control_net.mlp[-1].weight.normal_(0.0, 0.5)  # a control that depends on x_n and s
    state = torch.randn(64, 1)
    results = []
    for chain in (actor.sde_chain, lambda s: _sequential_chain_log_likelihood(actor, s)):
        torch.manual_seed(3)
        x_final, log_likelihood, running = chain(state)
        actor.zero_grad()
        (log_likelihood.sum() + running.sum()).backward()
        grads = [p.grad.clone() for p in actor.parameters() if p.grad is not None]
        results.append((x_final.detach(), log_likelihood.detach(), running.detach(), grads))
    (x, ll, run, grads), (x_ref, ll_ref, run_ref, grads_ref) = results
    assert torch.equal(x, x_ref)  # the same chain
    assert torch.allclose(ll, ll_ref, rtol=1e-5, atol=1e-4) and torch.allclose(run, run_ref, rtol=1e-5, atol=1e-4)
    assert len(grads) == len(grads_ref)
    for grad, grad_ref in zip(grads, grads_ref, strict=True):
        assert torch.allclose(grad, grad_ref, rtol=1e-4, atol=1e-4)


def test_trajectory_kl_is_zero_for_identical_policies():
    actor = _actor()
    kl, per_step = trajectory_kl(actor, copy.deepcopy(actor), torch.randn(32, 1), num_samples=4)
    assert torch.all(kl.abs() < 1e-6) and torch.all(per_step.abs() < 1e-6)


def test_reverse_trajectory_kl_is_zero_for_identical_policies_and_differentiable():
    actor = _actor()
    state = torch.randn(32, 1)
    path = actor.sde_chain(state, return_path=True)[3]
    kl, per_step = reverse_trajectory_kl(actor, copy.deepcopy(actor).requires_grad_(False), state, path)
    assert torch.all(kl.abs() < 1e-6) and torch.all(per_step.abs() < 1e-6)
    moved = copy.deepcopy(actor)
    with torch.no_grad():
        moved.control_net.mlp[-1].bias.fill_(1.0)
    path = moved.sde_chain(state, return_path=True)[3]
    kl = reverse_trajectory_kl(moved, actor.requires_grad_(False), state, path)[0]
    kl.mean().backward()
    assert kl.min() > 0
    assert moved.control_net.mlp[0].weight.grad.abs().sum() > 0 and moved.process.raw_friction.grad.abs().sum() > 0


def _shifted_pair() -> tuple[DiffusionActor, DiffusionActor]:
    old = _actor()
    new = copy.deepcopy(old)
    with torch.no_grad():
        new.control_net.mlp[-1].bias.fill_(3.0)  # shift the control: a different action marginal
        new.process.raw_friction.add_(0.3)
    return old, new


def _histogram_kl(x_p: torch.Tensor, x_q: torch.Tensor) -> float:
    """``KL(p || q)`` of two 1-D sample sets by histogram; coarse-graining can only under-estimate it."""
    edges = torch.linspace(-10, 10, 201)
    p = torch.histogram(x_p.clamp(-9.99, 9.99), edges).hist + 1e-3
    q = torch.histogram(x_q.clamp(-9.99, 9.99), edges).hist + 1e-3
    p, q = p / p.sum(), q / q.sum()
    return (p * (p / q).log()).sum().item()


def test_reverse_trajectory_kl_bounds_the_reverse_marginal_action_kl():
    old, new = _shifted_pair()
    state = torch.zeros(200_000, 1)
    with torch.no_grad():
        x_new, _, _, path = new.sde_chain(state, return_path=True)
        traj_kl = reverse_trajectory_kl(new, old, state, path)[0].mean().item()
        x_old = old.sde_chain(state)[0]
    marginal_kl = _histogram_kl(x_new.squeeze(-1), x_old.squeeze(-1))
    assert marginal_kl > 0.05, "the perturbation must change the marginal for the check to mean anything"
    assert traj_kl >= marginal_kl


def test_trajectory_kl_bounds_the_marginal_action_kl():
    old, new = _shifted_pair()
    state = torch.zeros(1, 1)
    with torch.no_grad():
        traj_kl = trajectory_kl(new, old, state, num_samples=20_000)[0].item()
        # tanh is a bijection, so the marginal KL of actions is the KL of the last latents.
        x_old = old.sde_chain(state.expand(200_000, 1))[0].squeeze(-1)
        x_new = new.sde_chain(state.expand(200_000, 1))[0].squeeze(-1)
    marginal_kl = _histogram_kl(x_old, x_new)
    assert marginal_kl > 0.05, "the perturbation must change the marginal for the check to mean anything"
    assert traj_kl >= marginal_kl


def test_hl_gauss_targets_sum_to_one_and_centre_on_the_target():
    values = torch.tensor([-9.7, -3.3, 0.0, 2.55, 9.9])
    probs = hl_gauss_probs(values, -10.0, 10.0, 151, sigma=0.75 * 20 / 150)
    support = torch.linspace(-10, 10, 151)
    assert torch.allclose(probs.sum(-1), torch.ones(5), atol=1e-5)
    assert torch.all((probs @ support - values).abs() < 20 / 150)


def test_lambda_returns_match_a_hand_computed_example():
    # One env, 4 steps: step 1 terminates, step 2 times out, step 3 is the rollout's last step.
    rewards = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    next_values = torch.tensor([[10.0], [20.0], [30.0], [40.0]])
    terminations = torch.tensor([[False], [True], [False], [False]])
    truncations = torch.tensor([[False], [False], [True], [False]])
    gamma, lam = 0.9, 0.5
    returns = lambda_returns(rewards, next_values, terminations, truncations, gamma, lam)
    g3 = 4.0 + 0.9 * 40.0  # last step: bootstrap
    g2 = 3.0 + 0.9 * 30.0  # time-out: bootstrap from V'
    g1 = 2.0  # termination: no bootstrap
    g0 = 1.0 + 0.9 * (0.5 * g1 + 0.5 * 10.0)
    assert torch.allclose(returns.squeeze(-1), torch.tensor([g0, g1, g2, g3]))
    # A termination on the last step of a rollout does not bootstrap either.
    last = lambda_returns(rewards[:1], next_values[:1], torch.tensor([[True]]), torch.tensor([[False]]), gamma, lam)
    assert last.item() == 1.0


def test_gate_routes_states_over_the_bound_to_the_kl_penalty_only():
    kl = torch.tensor([0.05, 0.2], requires_grad=True)
    log_likelihood = torch.tensor([1.0, 1.0], requires_grad=True)
    q_value = torch.tensor([3.0, 3.0], requires_grad=True)
    alpha, lam = torch.tensor(0.1), torch.tensor(2.0)
    loss = actor_objective("gate", kl, log_likelihood, q_value, alpha, lam, kl_bound=0.1)
    assert torch.allclose(loss, torch.tensor([0.1 * 1.0 - 3.0, 2.0 * 0.2]))
    loss.sum().backward()
    assert torch.allclose(kl.grad, torch.tensor([0.0, 2.0]))
    assert torch.allclose(q_value.grad, torch.tensor([-1.0, 0.0]))
    assert torch.allclose(log_likelihood.grad, torch.tensor([0.1, 0.0]))
