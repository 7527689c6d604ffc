"""benchmarks/speed.py counts real work: PPO's matmul FLOPs are the analytic ones, and every count repeats exactly."""

import os
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import speed  # noqa: E402
from pages import structural_flops  # noqa: E402

NUM_ENVS, STEPS, OBS, ACT = 8, 4, 6, 2
PPO_WIDTHS = [16, 8]
TRUDI_WIDTHS, DENOISING_STEPS, TIME_FREQUENCIES, TIME_EMBEDDING = [16, 16], 2, 4, 3


def tiny_cfgs() -> tuple[dict, dict]:
    """The synthetic task's configs, shrunk: TruDi with 2 denoising steps and small networks, PPO at 16-8."""
    trudi, ppo = speed.synthetic_cfgs(STEPS, PPO_WIDTHS)
    trudi["actor"] |= {
        "hidden_dims": TRUDI_WIDTHS,
        "num_denoising_steps": DENOISING_STEPS,
        "time_frequencies": TIME_FREQUENCIES,
        "time_embedding_dim": TIME_EMBEDDING,
    }
    trudi["critic"] |= {"hidden_dim": 32, "num_bins": 11}
    trudi["algorithm"] |= {"num_mini_batches": 2}
    return trudi, ppo


@pytest.fixture(scope="module")
def measured() -> dict[str, list[dict]]:
    """Each algorithm measured twice (one timed iteration each) on the same tiny synthetic task."""
    env = speed.SyntheticEnv(NUM_ENVS, OBS, ACT, "cpu")
    trudi, ppo = tiny_cfgs()
    return {
        name: [speed.measure(env, cfg, 1, "cpu") for _ in range(2)] for name, cfg in (("trudi", trudi), ("ppo", ppo))
    }


def mlp_flops(widths: list[int]) -> tuple[int, int]:
    """Forward matmul FLOPs of one sample through an MLP of these layer widths, and those of its first layer."""
    layers = list(zip(widths, widths[1:], strict=False))
    return sum(2 * i * o for i, o in layers), 2 * layers[0][0] * layers[0][1]


def test_ppo_flops_are_the_analytic_ones(measured):
    actor, actor_first = mlp_flops([OBS, *PPO_WIDTHS, ACT])
    critic, critic_first = mlp_flops([OBS, *PPO_WIDTHS, 1])
    samples, epochs = NUM_ENVS * STEPS, 5
    row = measured["ppo"][0]
    # Rollout: actor and critic at each step, the critic once more at the last state (compute_returns).
    assert row["flops"]["rollout"] == samples * (actor + critic) + NUM_ENVS * critic
    # Update: forward, weight gradients, and input gradients of every layer but the first (observations need none).
    assert row["flops"]["update"] == epochs * samples * (3 * (actor + critic) - actor_first - critic_first)


@pytest.mark.parametrize("algo", ["trudi", "ppo"])
def test_counts_are_positive_and_repeat_exactly(measured, algo):
    first, second = measured[algo]
    for quantity in ("flops", "dispatches"):
        assert all(first[quantity][phase] > 0 for phase in ("rollout", "update")), quantity
        assert first[quantity] == second[quantity], quantity
    assert all(value > 0 for value in first["seconds"].values())


def test_trudi_rollout_flops_are_its_structure_and_step_embeddings(measured):
    """TruDi's rollout is the structural count plus, per chain drawn, its batch-independent step embedding."""
    frequencies, embedding, width = TIME_FREQUENCIES, TIME_EMBEDDING, TRUDI_WIDTHS[0]
    # Per chain: the embedding MLP (2F -> F -> E) and the first layer's step columns (E -> H) at each of the N steps.
    per_chain = DENOISING_STEPS * 2 * (2 * frequencies * frequencies + frequencies * embedding + embedding * width)
    chains = STEPS + 3  # one at each next state, one at the rollout's first step, two for the logged action std
    row = measured["trudi"][0]
    structural = structural_flops(row["structure"], "rollout") * NUM_ENVS * STEPS
    assert row["flops"]["rollout"] == round(structural) + chains * per_chain
