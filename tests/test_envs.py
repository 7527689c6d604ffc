"""Tests for the Gymnasium adapter and the two-mode bandit (real environments, no mocks)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from rsl_rl.env import VecEnv
from rsl_rl.runners import OnPolicyRunner
from tensordict import TensorDict

from trudi.envs import GymVecEnv, TwoModeBandit
from trudi.envs.bandit import mode_shares

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

TASK = "InvertedPendulum-v5"
NUM_ENVS = 4
SEED = 3


@pytest.fixture
def pendulum():
    env = GymVecEnv(TASK, num_envs=NUM_ENVS, seed=SEED)
    yield env
    env.close()


def _reference_first_obs(action: float, seed: int) -> np.ndarray:
    """Step a plain Gymnasium env once with an action given in the env's own units."""
    env = gym.make(TASK)
    env.reset(seed=seed)
    obs, *_ = env.step(np.array([action], dtype=np.float32))
    env.close()
    return obs


# ---------------------------------------------------------------------------------------------------------------------
# GymVecEnv
# ---------------------------------------------------------------------------------------------------------------------


def test_import_does_not_require_gymnasium():
    # `trudi.envs` must stay simulator-free: run in a fresh interpreter so this module's gymnasium import doesn't count.
    source_dir = str(Path(__file__).resolve().parents[1] / "source")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source_dir, os.environ.get("PYTHONPATH")]))}
    code = "import sys, trudi.envs; assert 'gymnasium' not in sys.modules, 'gymnasium imported eagerly'"
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_gym_attributes_and_shapes(pendulum):
    env = pendulum
    assert isinstance(env, VecEnv)
    assert env.num_envs == NUM_ENVS
    assert env.num_actions == 1
    assert env.max_episode_length == 1000
    assert env.step_dt == pytest.approx(0.04)
    assert env.unwrapped is env
    assert env.cfg == {"task": TASK, "num_envs": NUM_ENVS, "seed": SEED, "make_kwargs": {}}
    assert env.episode_length_buf.shape == (NUM_ENVS,) and env.episode_length_buf.dtype == torch.long

    obs = env.get_observations()
    assert isinstance(obs, TensorDict)
    assert list(obs.keys()) == ["policy"]
    assert tuple(obs.batch_size) == (NUM_ENVS,)
    assert obs["policy"].shape == (NUM_ENVS, 4) and obs["policy"].dtype == torch.float32

    obs, rewards, dones, extras = env.step(torch.zeros(NUM_ENVS, 1))
    assert obs["policy"].shape == (NUM_ENVS, 4) and obs["policy"].dtype == torch.float32
    assert rewards.shape == (NUM_ENVS,) and rewards.dtype == torch.float32
    assert dones.shape == (NUM_ENVS,) and dones.dtype == torch.long
    assert extras["time_outs"].shape == (NUM_ENVS,)
    assert isinstance(extras["log"], dict)
    assert torch.equal(env.episode_length_buf, torch.ones(NUM_ENVS, dtype=torch.long))


def test_gym_seeding_and_action_rescaling():
    # InvertedPendulum's action space is [-3, 3]: normalized +1 / -1 / 0.5 must act like 3 / -3 / 1.5, and values
    # beyond [-1, 1] must be clipped. Env i is seeded with SEED + i, so each row matches its own reference env.
    cases = [(1.0, 3.0), (-1.0, -3.0), (0.5, 1.5), (7.0, 3.0)]
    for normalized, physical in cases:
        env = GymVecEnv(TASK, num_envs=NUM_ENVS, seed=SEED)
        obs, *_ = env.step(torch.full((NUM_ENVS, 1), normalized))
        env.close()
        for i in range(NUM_ENVS):
            expected = _reference_first_obs(physical, SEED + i)
            np.testing.assert_allclose(obs["policy"][i].numpy(), expected, rtol=1e-5, atol=1e-6)
    # Different envs got different seeds, hence different initial states.
    env = GymVecEnv(TASK, num_envs=NUM_ENVS, seed=SEED)
    first = env.get_observations()["policy"]
    env.close()
    assert not torch.allclose(first[0], first[1])


def test_gym_autoreset_in_same_step(pendulum):
    env = pendulum
    gen = torch.Generator().manual_seed(0)
    for step in range(1, 500):  # noqa: B007 (used after the loop)
        prev_len = env.episode_length_buf.clone()
        obs, _, dones, extras = env.step(torch.rand(NUM_ENVS, 1, generator=gen) * 2 - 1)
        if dones.any():
            break
    else:
        pytest.fail("no InvertedPendulum episode ended within 500 random steps")

    done = dones.bool()
    # Finished envs restart their counter; running ones keep counting.
    assert torch.all(env.episode_length_buf[done] == 0)
    assert torch.equal(env.episode_length_buf[~done], prev_len[~done] + 1)
    assert torch.equal(env.episode_length_buf[~done], torch.full_like(prev_len[~done], step))
    # The pole fell long before the 1000-step limit, so these are terminations and not time-outs.
    assert not extras["time_outs"].any()
    # Reset happened inside this step: the returned observation is a fresh initial state (|x| <= reset noise 0.01),
    # not the fallen pole (|angle| > 0.2).
    assert torch.all(obs["policy"][done].abs() <= 0.01 + 1e-6)
    assert torch.equal(env.get_observations()["policy"], obs["policy"])
    # The fallen pole's last observation comes back in extras["final_obs"], as Isaac Lab's compute_final_obs gives it:
    # every env's row, the pre-reset observation where an episode ended, the returned one elsewhere.
    final = extras["final_obs"]["policy"]
    assert final.shape == obs["policy"].shape
    assert torch.all(final[done][:, 1].abs() > 0.2)
    assert torch.equal(final[~done], obs["policy"][~done])


def test_gym_time_limit_sets_time_outs():
    env = GymVecEnv(TASK, num_envs=NUM_ENVS, seed=SEED, max_episode_steps=5)
    assert env.max_episode_length == 5
    for _ in range(4):
        _, _, dones, extras = env.step(torch.zeros(NUM_ENVS, 1))
        assert not dones.any() and not extras["time_outs"].any()
    _, _, dones, extras = env.step(torch.zeros(NUM_ENVS, 1))
    env.close()
    # Zero force keeps the pole up for 5 steps, so every episode is truncated by the time limit.
    assert torch.all(dones == 1)
    assert torch.all(extras["time_outs"])
    assert torch.all(env.episode_length_buf == 0)


def test_gym_invalid_task_id():
    with pytest.raises(ValueError, match="NoSuchTask-v0"):
        GymVecEnv("NoSuchTask-v0", num_envs=2)


def test_gym_unsupported_space():
    # CartPole has a Discrete action space.
    with pytest.raises(ValueError, match="CartPole-v1.*Discrete"):
        GymVecEnv("CartPole-v1", num_envs=2)


def test_gym_with_stock_rsl_rl_ppo(pendulum):
    train_cfg = {
        "num_steps_per_env": 8,
        "save_interval": 50,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {"class_name": "PPO"},
        "actor": {
            "class_name": "MLPModel",
            "hidden_dims": [32, 32],
            "activation": "elu",
            "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 1.0},
        },
        "critic": {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu"},
    }
    torch.manual_seed(0)
    runner = OnPolicyRunner(pendulum, train_cfg, log_dir=None, device="cpu")
    runner.learn(num_learning_iterations=2, init_at_random_ep_len=True)
    assert runner.current_learning_iteration == 1
    for p in runner.alg.actor.parameters():
        assert torch.isfinite(p).all()


# ---------------------------------------------------------------------------------------------------------------------
# TwoModeBandit
# ---------------------------------------------------------------------------------------------------------------------


def test_bandit_rewards_and_dones():
    env = TwoModeBandit(num_envs=4)
    assert isinstance(env, VecEnv)
    assert env.num_actions == 1 and env.max_episode_length == 1 and env.step_dt == 1.0 and env.unwrapped is env
    obs = env.get_observations()
    assert torch.equal(obs["policy"], torch.ones(4, 1))

    actions = torch.tensor([[-0.6], [0.6], [0.0], [5.0]])
    obs, rewards, dones, extras = env.step(actions)
    assert rewards.dtype == torch.float32 and rewards.shape == (4,)
    assert rewards[0].item() == pytest.approx(1.0) and rewards[1].item() == pytest.approx(1.0)
    assert rewards[2].item() < 1e-3
    # Out-of-range actions are clipped to 1.0, which is 0.4 away from the upper mode.
    assert rewards[3].item() == pytest.approx(np.exp(-(0.4**2) / (2 * 0.15**2)), rel=1e-5)
    assert torch.equal(dones, torch.ones(4, dtype=torch.long))
    assert not extras["time_outs"].any()
    assert torch.equal(obs["policy"], torch.ones(4, 1))
    assert torch.equal(env.episode_length_buf, torch.zeros(4, dtype=torch.long))

    # Deterministic: the same actions give the same rewards.
    assert torch.equal(env.step(actions)[1], rewards)


def test_bandit_multi_dim_uses_first_coordinate():
    env = TwoModeBandit(num_envs=2, action_dim=3, modes=(-0.5, 0.5), width=0.1)
    assert env.num_actions == 3
    _, rewards, _, _ = env.step(torch.tensor([[0.5, 0.9, -0.9], [0.5, -1.0, 1.0]]))
    assert torch.allclose(rewards, torch.ones(2))


def test_mode_shares():
    env = TwoModeBandit(num_envs=1)
    actions = torch.cat([torch.full((30, 1), -0.65), torch.full((60, 1), 0.55), torch.full((10, 1), 0.0)])
    low, high = env.mode_shares(actions)
    assert low == pytest.approx(0.3) and high == pytest.approx(0.6)
    assert env.mode_shares(actions.squeeze(-1), radius=0.01) == (0.0, 0.0)
    assert mode_shares(actions, modes=(0.0,), radius=0.1) == (pytest.approx(0.1),)


class FixedLengthEpisodes(VecEnv):
    """Environment ``i`` ends every episode after ``lengths[i]`` steps with reward 0.5 per step; resets on ``reset``."""

    def __init__(self, lengths: list[int]) -> None:
        self.num_envs, self.num_actions, self.device = len(lengths), 1, "cpu"
        self.max_episode_length = max(lengths)
        self.lengths = torch.tensor(lengths)
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long)
        self.cfg = {}

    def get_observations(self) -> TensorDict:
        return TensorDict({"policy": torch.zeros(self.num_envs, 1)}, batch_size=[self.num_envs])

    def reset(self) -> tuple[TensorDict, dict]:
        self.episode_length_buf.zero_()
        return self.get_observations(), {}

    def step(self, actions: torch.Tensor) -> tuple[TensorDict, torch.Tensor, torch.Tensor, dict]:
        self.episode_length_buf += 1
        dones = self.episode_length_buf >= self.lengths
        self.episode_length_buf[dones] = 0
        return self.get_observations(), torch.full((self.num_envs,), 0.5), dones.long(), {}


@pytest.mark.parametrize(("num_episodes", "expected"), [(3, [5, 1, 3]), (4, [5, 1, 3, 2]), (6, [5, 1, 3, 2, 5, 1])])
def test_evaluate_counts_whole_episodes_in_env_order(num_episodes, expected):
    """Episodes after a reset, in environment order: not the shortest first, and no episode cut by an earlier call."""
    from trudi.workflow import evaluate

    env = FixedLengthEpisodes([5, 1, 3, 2])
    for _ in range(3):  # leave the environments mid-episode, as a training rollout does
        env.step(torch.zeros(4, 1))
    mean, std, length = evaluate(lambda obs: torch.zeros(4, 1), env, num_episodes)
    assert mean == pytest.approx(0.5 * np.mean(expected))
    assert std == pytest.approx(0.5 * np.std(expected))
    assert length == pytest.approx(np.mean(expected))


def test_evaluate_builds_no_autograd_graph():
    from trudi.workflow import evaluate

    grad_modes = []

    def policy(obs):
        grad_modes.append(torch.is_grad_enabled())
        return torch.zeros(4, 1)

    evaluate(policy, FixedLengthEpisodes([5, 1, 3, 2]), 4)
    assert grad_modes and not any(grad_modes)


def test_evaluate_names_unfinished_episodes():
    from trudi.workflow import evaluate

    env = FixedLengthEpisodes([5, 1, 3, 2])
    with pytest.raises(RuntimeError, match="only 2 of 4 evaluation episodes finished within 2 steps"):
        evaluate(lambda obs: torch.zeros(4, 1), env, 4, max_steps=2)


def test_gym_reset_starts_new_episodes(pendulum):
    pendulum.step(torch.zeros(NUM_ENVS, 1))
    assert bool((pendulum.episode_length_buf == 1).all())
    obs, extras = pendulum.reset()
    assert obs["policy"].shape == (NUM_ENVS, 4)
    assert torch.equal(obs["policy"], pendulum.get_observations()["policy"])
    assert bool((pendulum.episode_length_buf == 0).all()) and extras == {}


def test_any_continuous_gymnasium_id_trains_and_plays_back(tmp_path):
    # Pendulum-v1 is none of the embedded tasks: it gets the locomotion sizes and every algorithm default.
    common = ["--task", "Pendulum-v1", "--log_root", str(tmp_path), "--num_envs", "4"]
    train = [sys.executable, str(SCRIPTS / "train.py"), *common, "--max_iterations", "2", "agent.num_steps_per_env=8"]
    result = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    play = [sys.executable, str(SCRIPTS / "play.py"), *common, "--checkpoint", "latest", "--episodes", "4"]
    result = subprocess.run(play, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "deterministic policy: mean return" in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("task", "message"),
    [("CartPole-v1", "action space Discrete(2) is not supported"), ("NoSuch-v0", "not a registered Gymnasium id")],
)
def test_unsupported_task_ids_fail_in_one_line(tmp_path, task, message):
    train = [sys.executable, str(SCRIPTS / "train.py"), "--task", task, "--log_root", str(tmp_path)]
    result = subprocess.run(train, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in (result.stdout + result.stderr).strip().splitlines()[-1]
