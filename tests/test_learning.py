"""TruDi learns a real MuJoCo task: its deterministic return after a short fixed budget beats the untrained policy."""

from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import get_task, train_cfg
from trudi.workflow import evaluate, seed_everything

TASK = "InvertedPendulum-v5"
ITERATIONS = 200  # 16 envs x 32 steps x 200 = 102k env steps


def test_trudi_learns_inverted_pendulum():
    seed_everything(1)
    task = get_task(TASK)
    env = task.make_env(task.num_envs, 1, "cpu")
    eval_env = task.make_env(task.num_envs, 100, "cpu")
    runner = OnPolicyRunner(env, train_cfg(TASK, "trudi"), log_dir=None)
    untrained, _ = evaluate(runner.get_inference_policy(), eval_env, num_episodes=16)
    runner.learn(ITERATIONS)
    trained, _ = evaluate(runner.get_inference_policy(), eval_env, num_episodes=16)
    print(f"deterministic return: untrained {untrained:.1f}, after {ITERATIONS} iterations {trained:.1f}")
    # Measured (CPU, 2026-11-24, these seeds): untrained 24.2; 120 iterations 234.9; 200 iterations 991.2.
    assert trained > 10 * untrained
    assert trained > 500.0
    env.close()
    eval_env.close()
