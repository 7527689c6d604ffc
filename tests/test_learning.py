"""TruDi learns a real MuJoCo task: its deterministic return after a fixed budget beats the untrained policy.

The fast test runs the README's default job (InvertedPendulum-v5, seed 1) for two fifths of its budget; the slow tier
(``pytest -m slow``) runs the whole job on three seeds and asserts what the README promises (>= 900 of 1000).
"""

import pytest

from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, train_cfg
from trudi.workflow import evaluate, seed_everything

TASK = "InvertedPendulum-v5"


def _train_and_evaluate(seed: int, iterations: int) -> tuple[float, float]:
    """Deterministic return of the untrained and of the trained policy (16 whole episodes each)."""
    seed_everything(seed)
    task = get_task(TASK)
    env = task.make_env(task.num_envs, seed, "cpu")
    eval_env = task.make_env(task.num_envs, 100 + seed, "cpu")
    cfg = train_cfg(TASK, "trudi")
    cfg["seed"] = seed
    runner = OnPolicyRunner(env, cfg, log_dir=None)
    untrained = evaluate(runner.get_inference_policy(), eval_env, num_episodes=16).return_mean
    runner.learn(iterations)
    trained = evaluate(runner.get_inference_policy(), eval_env, num_episodes=16).return_mean
    print(f"seed {seed}: deterministic return untrained {untrained:.1f}, after {iterations} iterations {trained:.1f}")
    env.close()
    eval_env.close()
    return untrained, trained


def test_trudi_learns_inverted_pendulum():
    # 16 envs x 32 steps x 80 = 41k env steps. At 40 iterations seeds 1-3 were mid-climb here (878, 1000, 585 on
    # 2026-12-02) and CI's CPU, whose float rounding sends training down another path, measured 122; at 60 and 80
    # every seed was at 1000.
    untrained, trained = _train_and_evaluate(seed=1, iterations=80)
    assert trained > 10 * untrained
    assert trained > 500.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_default_job_reaches_900_on_every_seed(seed):
    iterations = train_cfg(TASK, "trudi")["max_iterations"]
    untrained, trained = _train_and_evaluate(seed, iterations)
    assert trained >= 900.0
