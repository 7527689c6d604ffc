"""Defaults that behave the same whatever the reward's unit, and duals that settle within a run (docs/algorithm.md).

These would have caught the failures of the 2026-11-24 defaults: duals that moved by less than a factor 1.6 over a
whole default run, and an entropy bonus and a critic support in raw reward units.
"""

import inspect

import pytest
import torch
from tensordict import TensorDict

from trudi.algorithm import TruDi
from trudi.envs import GymVecEnv
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


class ScaledRewards(GymVecEnv):
    """InvertedPendulum-v5 with every reward multiplied by ``factor``."""

    def __init__(self, factor: float, **kwargs) -> None:
        super().__init__("InvertedPendulum-v5", **kwargs)
        self.factor = factor

    def step(self, actions):
        obs, rewards, dones, extras = super().step(actions)
        return obs, rewards * self.factor, dones, extras


def _train(factor: float, iterations: int = 4, **algorithm) -> tuple[OnPolicyRunner, dict[str, float]]:
    torch.manual_seed(0)
    env = ScaledRewards(factor, num_envs=8, seed=0)
    cfg = train_cfg("InvertedPendulum-v5", "trudi")
    cfg["num_steps_per_env"] = 16
    cfg["actor"]["num_denoising_steps"] = 4  # a cheaper chain: these runs test units and duals, not the sampler
    cfg["algorithm"].update(algorithm)
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    runner.learn(iterations)
    stats = runner.alg.learner._state_diagnostics()
    env.close()
    return runner, stats


@pytest.fixture(scope="module")
def scaled_runs() -> dict[float, tuple[OnPolicyRunner, dict[str, float]]]:
    return {factor: _train(factor) for factor in (0.01, 1.0, 100.0)}


def test_reward_scale_follows_the_rewards_unit(scaled_runs):
    scales = {factor: stats["critic/reward_scale"] for factor, (_, stats) in scaled_runs.items()}
    assert scales[1.0] > 1.0  # a balancing task: constant reward 1, returns of several steps
    for factor in (0.01, 100.0):
        assert scales[factor] == pytest.approx(factor * scales[1.0], rel=1e-4)


def test_multiplying_the_rewards_leaves_training_unchanged(scaled_runs):
    reference_runner, reference = scaled_runs[1.0]
    obs = TensorDict({"policy": torch.randn(64, reference_runner.alg.actor.obs_dim)}, batch_size=[64])

    def actions(runner):
        with torch.no_grad():
            return runner.alg.actor(obs)

    for factor in (0.01, 100.0):
        runner, stats = scaled_runs[factor]
        # The normalised statistics: the duals, the critic's unit-free support and the learned policy.
        for key in (
            "entropy/coef",
            "trust_region/kl_multiplier",
            "entropy/target",
            "critic/value_min",
            "critic/value_max",
        ):
            assert stats[key] == pytest.approx(reference[key], rel=1e-3, abs=1e-6), key
        assert torch.allclose(actions(runner), actions(reference_runner), atol=1e-3)


def test_without_normalisation_the_same_runs_differ():
    small, small_stats = _train(0.01, reward_normalization=False)
    large, large_stats = _train(100.0, reward_normalization=False)
    assert small_stats["critic/reward_scale"] == large_stats["critic/reward_scale"] == 1.0
    probe = TensorDict({"policy": torch.randn(64, small.alg.actor.obs_dim)}, batch_size=[64])
    with torch.no_grad():
        assert (small.alg.actor(probe) - large.alg.actor(probe)).abs().max() > 1e-2


def test_duals_move_by_more_than_ten_times_in_a_short_run_when_far_from_target():
    # Entropy far above its target (an unreachable target) and the KL far above its bound (a tiny bound): both duals
    # must respond by more than a factor 10 within 6 iterations (6 x 2 epochs x 32 mini-batches = 384 Adam steps).
    _, stats = _train(1.0, iterations=6, entropy_target_mult=50.0, kl_bound_rule="fixed", kl_bound=1e-6)
    defaults = inspect.signature(TruDi.__init__).parameters
    alpha_0, lambda_0 = defaults["init_entropy_coef"].default, defaults["init_kl_multiplier"].default
    alpha, multiplier = stats["entropy/coef"], stats["trust_region/kl_multiplier"]
    print(f"alpha {alpha_0} -> {alpha:.3g}, lambda {lambda_0} -> {multiplier:.3g}")
    assert stats["entropy/coef"] < alpha_0 / 10
    assert stats["trust_region/kl_multiplier"] > lambda_0 * 10


def test_initial_critic_predicts_about_zero():
    torch.manual_seed(0)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=8, seed=0)
    runner = OnPolicyRunner(env, train_cfg("InvertedPendulum-v5", "trudi"), log_dir=None)
    obs = env.get_observations()
    with torch.no_grad():
        q_values = runner.alg.critic(obs, torch.rand(8, 1) * 2 - 1)
    low, high = runner.alg.critic.value_range.tolist()
    assert q_values.abs().max() < 0.02 * (high - low)
    env.close()


def test_entropy_coef_floor_bounds_alpha_from_below():
    # The same unreachable entropy target as above drives alpha down by a constant factor per step; the floor holds.
    floor = 1e-3
    _, stats = _train(1.0, iterations=6, entropy_target_mult=50.0, entropy_coef_floor=floor)
    assert stats["entropy/coef"] == pytest.approx(floor, rel=1e-5)
