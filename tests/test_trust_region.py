"""The trust region holds a full update inside the KL bound; without it the same update leaves it far behind.

Under ``kl_bound_rule: progress`` or ``critic_fit`` the bound the gate holds is the one the rule sets.
"""

import copy

import pytest
import torch

from trudi.envs import GymVecEnv
from trudi.options import AlgorithmOptions
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg
from trudi.trust_region import KLBound, critic_fit_bound, reverse_trajectory_kl, trajectory_kl

KL_BOUND = 0.01


def _kl_after_one_update(
    trust_region: str,
    kl_direction: str = "forward",
    mixed_precision: str = "none",
    scramble_critic: bool = False,
    **algorithm,
) -> tuple[float, OnPolicyRunner]:
    """Mean trajectory KL (in the direction the update bounds) between the policy before and after one update.

    ``scramble_critic`` redraws the critic's output layer before the rollout, so that its values no longer fit the
    returns; ``algorithm`` overrides the options below (the bound ``KL_BOUND``, fixed).
    """
    torch.manual_seed(0)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=8, seed=0)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    # A large learning rate and many epochs so the step would be big without a constraint. lambda starts at 10:
    # with the reference's 0.01 the per-state pull-back is negligible next to the Q gradient until dual ascent
    # (one Adam step on log(lambda) per mini-batch) has raised it, so a single update measured 0.28 (28 eps).
    cfg["algorithm"].update(
        trust_region=trust_region,
        kl_direction=kl_direction,
        mixed_precision=mixed_precision,
        kl_bound_rule="fixed",
        kl_bound=KL_BOUND,
        init_kl_multiplier=10.0,
        learning_rate=1e-3,
        num_learning_epochs=8,
        num_mini_batches=4,
    )
    cfg["algorithm"].update(algorithm)
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    runner.learn(3)  # a critic with some signal, shared by both runs (same seeds)
    alg = runner.alg
    if scramble_critic:
        with torch.no_grad():
            alg.critic.head[-1].weight.normal_(std=1.0)
    obs = env.get_observations()
    with torch.inference_mode():
        for _ in range(cfg["num_steps_per_env"]):
            actions = alg.act(obs)
            obs, rewards, dones, extras = env.step(actions)
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)
    old_actor = copy.deepcopy(alg.actor)
    batch_obs = alg.storage.observations.flatten(0, 1).clone()
    runner.last_update = alg.update()
    with torch.no_grad():
        # Measured at the old normaliser's states: the quantity the trust region bounds.
        state = old_actor.get_latent(batch_obs)
        if kl_direction == "reverse":
            state = state.repeat_interleave(16, dim=0)
            path = alg.actor.sde_chain(state, return_path=True)[3]
            kl = reverse_trajectory_kl(alg.actor, old_actor, state, path)[0]
        else:
            kl, _ = trajectory_kl(alg.actor, old_actor, state, num_samples=16)
    env.close()
    return kl.mean().item(), runner


@pytest.fixture(scope="module")
def measured_kls() -> dict[str, float]:
    kls = {mode: _kl_after_one_update(mode)[0] for mode in ("gate", "none")}
    kls |= {f"{mode}-reverse": _kl_after_one_update(mode, "reverse")[0] for mode in ("gate", "none")}
    return kls | {"gate-bf16": _kl_after_one_update("gate", mixed_precision="bf16")[0]}


def test_gate_keeps_the_update_within_twice_the_bound(measured_kls):
    # Measured 2026-11-24 (CPU, seed 0): gate 0.0059, none 3.24, gate-reverse 0.0050, none-reverse 4.21,
    # gate-bf16 0.0059 (eps = 0.01).
    print(f"trajectory KL after one update: {measured_kls}")
    assert measured_kls["gate"] <= 2 * KL_BOUND
    assert measured_kls["gate-reverse"] <= 2 * KL_BOUND  # kl_direction: reverse bounds KL(new || old) alike
    assert measured_kls["gate-bf16"] <= 2 * KL_BOUND  # mixed_precision: bf16 (the KL is measured in float32 here)


def test_without_trust_region_the_same_update_exceeds_the_bound_widely(measured_kls):
    assert measured_kls["none"] > 10 * KL_BOUND
    assert measured_kls["none-reverse"] > 10 * KL_BOUND


def test_backtracking_holds_the_realised_kl_within_the_bound_at_the_default_multiplier():
    # At the default lambda_0 = 0.01 the gate alone lets this update run far past the bound (docs/algorithm.md §1.3);
    # halving the update until the realised KL is within it holds it, measured here on 16 fresh chains per state.
    default_multiplier = {"init_kl_multiplier": 0.01}
    gate_alone, _ = _kl_after_one_update("gate", **default_multiplier)
    backtracked, runner = _kl_after_one_update("gate", kl_backtrack_steps=10, **default_multiplier)
    logged = runner.last_update
    fraction = logged["trust_region/step_fraction"]
    print(f"gate alone {gate_alone:.4f}, backtracked {backtracked:.4f}, step fraction {fraction}")
    assert gate_alone > 2 * KL_BOUND
    assert logged["trust_region/kl_realised_mean"] <= KL_BOUND
    assert 0.0 < fraction < 1.0  # a shortened step, not an undone one
    assert backtracked <= 1.2 * KL_BOUND


def test_critic_fit_bound_grows_with_the_explained_variance_from_the_floor_to_the_bound():
    assert critic_fit_bound(1.0, 0.01, 0.1) == pytest.approx(0.1)
    assert critic_fit_bound(0.5, 0.01, 0.1) == pytest.approx(0.025)  # half explained: a quarter of the bound
    assert critic_fit_bound(0.2, 0.01, 0.1) == pytest.approx(0.01)  # 0.004 < floor
    assert critic_fit_bound(-3.0, 0.01, 0.1) == pytest.approx(0.01)  # worse than predicting the mean
    assert critic_fit_bound(1.5, 0.01, 0.1) == pytest.approx(0.1)


def test_a_critic_that_fits_nothing_holds_the_update_within_the_floor():
    # A bound of 1.0 that the critic's fit lowers to KL_BOUND: the same update with the bound fixed at 1.0 leaves
    # KL_BOUND far behind, so the gate reads the bound the rule set, not kl_bound.
    options = {"kl_bound": 1.0, "kl_bound_min": KL_BOUND, "scramble_critic": True}
    fitted_kl, runner = _kl_after_one_update("gate", kl_bound_rule="critic_fit", **options)
    fixed_kl, _ = _kl_after_one_update("gate", kl_bound_rule="fixed", **options)
    logged = runner.last_update
    print(f"explained variance {logged['critic/explained_variance']:.3f}, KL {fitted_kl:.4f} vs fixed {fixed_kl:.4f}")
    assert logged["critic/explained_variance"] < 0.0
    assert logged["trust_region/kl_bound"] == pytest.approx(KL_BOUND)
    assert fitted_kl <= 2 * KL_BOUND
    assert fixed_kl > 10 * KL_BOUND


def test_the_explained_variance_is_that_of_the_critic_on_the_fresh_returns():
    torch.manual_seed(0)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=8, seed=0)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["algorithm"].update(kl_bound_rule="critic_fit", kl_bound=0.1, kl_bound_min=0.001)
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    runner.learn(3)
    alg = runner.alg
    with torch.inference_mode():
        obs = env.get_observations()
        for _ in range(cfg["num_steps_per_env"]):
            obs, rewards, dones, extras = env.step(alg.act(obs))
            alg.process_env_step(obs, rewards, dones, extras)
        alg.compute_returns(obs)
    # The same quantity from torch's variances, on a rollout the critic has not trained on yet.
    observations = alg.storage.observations.flatten(0, 1)
    with torch.no_grad():
        predictions = alg.critic(observations, alg.storage.actions.flatten(0, 1))
    returns = alg.storage.returns.flatten()
    expected = 1.0 - (returns - predictions).var() / returns.var()
    measured = alg.learner._critic_explained_variance(observations)
    logged = alg.update()
    env.close()
    print(f"explained variance {measured:.4f}, bound {logged['trust_region/kl_bound']:.4f}")
    assert measured == pytest.approx(expected.item(), abs=1e-3)
    assert logged["critic/explained_variance"] == pytest.approx(measured)
    assert logged["trust_region/kl_bound"] == pytest.approx(critic_fit_bound(measured, 0.001, 0.1))


def test_progress_bound_widens_after_a_rise_narrows_otherwise_and_stays_in_range():
    bound = KLBound(AlgorithmOptions(kl_bound=0.03, kl_bound_min=0.01, kl_bound_max=0.1, kl_bound_growth=1.25))
    assert bound.follow_progress(0.5) == pytest.approx(0.03)  # the first update has nothing to compare with
    assert bound.follow_progress(0.6) == pytest.approx(0.0375)  # rose
    assert bound.follow_progress(0.6) == pytest.approx(0.03)  # equal: no progress, narrowed
    assert bound.follow_progress(0.7) == pytest.approx(0.0375)  # rose
    assert bound.follow_progress(0.4) == pytest.approx(0.03)  # fell
    for reward in range(10):
        last = bound.follow_progress(float(reward))
    assert last == pytest.approx(0.1)  # ceiling
    for reward in range(30, 0, -1):
        last = bound.follow_progress(float(reward))
    assert last == pytest.approx(0.01)  # floor


def _progress_runner(seed: int = 0) -> OnPolicyRunner:
    torch.manual_seed(seed)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=8, seed=seed)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["algorithm"].update(kl_bound_rule="progress", num_mini_batches=4)
    return OnPolicyRunner(env, cfg, log_dir=None)


def test_progress_bound_follows_the_rollouts_reward_and_survives_a_resume():
    runner = _progress_runner()
    alg = runner.alg
    bounds, rewards = [], []
    for _ in range(4):
        runner.learn(1)
        bounds.append(alg.bound.value)
        rewards.append(alg.bound.previous_reward)
    # Each update's bound is the last one widened after a rise in the rollout's mean reward per step, else narrowed.
    for previous, current, last_bound, bound in zip(rewards, rewards[1:], bounds, bounds[1:], strict=False):
        expected = last_bound * 1.25 if current > previous else last_bound / 1.25
        assert bound == pytest.approx(min(0.1, max(0.01, expected)))
    assert alg.learner.bound.value == pytest.approx(bounds[-1])
    # A checkpoint keeps the bound and the last reward; a fresh algorithm loaded from it continues from there.
    resumed = _progress_runner(seed=1)
    resumed.alg.load(alg.save(), None, strict=True)
    assert resumed.alg.bound.value == pytest.approx(bounds[-1])
    assert resumed.alg.bound.previous_reward == pytest.approx(rewards[-1])
    runner.env.close()
    resumed.env.close()


@pytest.mark.parametrize("kl_chains", ["update", "mini_batch"])
def test_the_realised_kl_is_the_trajectory_kl_of_the_whole_update_at_every_state(kl_chains):
    # Logged after the update: old policy (the rollout's) against the updated one, on every stored state. Recomputed
    # here in one unchunked, step-by-step pass at the moment the update measures it.
    from small_runner import small_bandit_runner

    from trudi.trust_region import forward_trajectory_kl, sample_old_chains

    torch.manual_seed(0)
    runner = small_bandit_runner(kl_chains=kl_chains, kl_samples=2)
    learner = runner.alg.learner
    measure, seen = learner._realised_kl, {}

    def recompute_then_measure(observations):
        state = learner.old_actor.get_latent(observations)
        idx = torch.arange(observations.batch_size[0])
        with torch.random.fork_rng():
            random_draw = torch.rand(1)  # the stream's next draw
        with torch.random.fork_rng():
            chains = learner.storage.chains_of(idx) or sample_old_chains(learner.old_actor, state, 2)
        with torch.no_grad():
            kl, _ = forward_trajectory_kl(learner.actor, learner.old_actor, state, chains, batched=False)
        seen["expected"] = (kl.mean().item(), kl.max().item(), (kl >= learner.bound.value).float().mean().item())
        seen["logged"] = measure(observations)
        seen["stream untouched"] = torch.equal(torch.rand(1), random_draw)
        return seen["logged"]

    learner._realised_kl = recompute_then_measure
    logs = []
    runner.alg.update = lambda update=runner.alg.update: logs.append(update()) or logs[-1]
    runner.learn(2)
    mean, largest, over = seen["expected"]
    assert mean > 0.0  # the update moved the policy
    if kl_chains == "update":  # the same stored chains: the same numbers
        assert logs[-1]["trust_region/kl_realised_mean"] == pytest.approx(mean, rel=1e-4)
        assert logs[-1]["trust_region/kl_realised_max"] == pytest.approx(largest, rel=1e-4)
        assert logs[-1]["trust_region/kl_realised_over_bound_fraction"] == pytest.approx(over)
    else:  # fresh chains drawn chunk by chunk: the same quantity estimated from other draws
        assert logs[-1]["trust_region/kl_realised_mean"] == pytest.approx(mean, rel=0.1)
    assert seen["stream untouched"]  # measuring draws nothing from training's random stream
