"""TruDi as a plug-in: RSL-RL's stock ``OnPolicyRunner`` (not trudi's subclass) builds and trains it from a plain dict.

Runs unchanged on every supported rsl-rl-lib (CI runs this file on 5.5.x and on 5.4.2).
"""

from __future__ import annotations

import copy
import math
import os
from importlib.metadata import version

import pytest
import torch
from rsl_rl.runners import OnPolicyRunner

from trudi.actor import DiffusionActor
from trudi.algorithm import TruDi
from trudi.critic import QCritic
from trudi.envs import TwoModeBandit

NUM_DENOISING_STEPS = 4
CHECKPOINT_KEYS = {
    "actor_state_dict",
    "critic_state_dict",
    "optimizer_state_dict",
    "old_actor_state_dict",
    "duals_state_dict",
    "rng_state",
}
DIAGNOSTICS = [
    "trust_region/kl_mean",
    "trust_region/kl_over_bound_fraction",
    *(f"trust_region/kl_step_{n}" for n in range(NUM_DENOISING_STEPS)),
    "entropy/coef",
    "trust_region/kl_multiplier",
    "entropy/estimate",
    "critic",
    "critic/q_mean",
    "diffusion/friction_mean",
    "diffusion/dt_mean",
    "critic/clipped_target_fraction",
]


def bandit_cfg() -> dict:
    """A complete train config, as Isaac Lab's ``RslRlOnPolicyRunnerCfg.to_dict()`` would produce it."""
    return {
        "seed": 1,
        "num_steps_per_env": 2,
        "max_iterations": 3,
        "save_interval": 2,
        "experiment_name": "plugin_test",
        "run_name": "",
        "logger": "tensorboard",
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "algorithm": {"class_name": "trudi.rsl_rl:TruDi", "num_learning_epochs": 1, "num_mini_batches": 2},
        "actor": {
            "class_name": "trudi.rsl_rl:DiffusionActor",
            "hidden_dims": [32, 32],
            "num_denoising_steps": NUM_DENOISING_STEPS,
        },
        "critic": {
            "class_name": "trudi.rsl_rl:QCritic",
            "hidden_dim": 32,
            "num_bins": 21,
            "value_min": -3.0,
            "value_max": 3.0,
        },
    }


def record_updates(runner: OnPolicyRunner) -> list[dict[str, float]]:
    """Wrap ``runner.alg.update`` so every loss dict the runner logs is also kept here."""
    loss_dicts: list[dict[str, float]] = []
    update = runner.alg.update

    def recording_update() -> dict[str, float]:
        loss_dict = update()
        loss_dicts.append(loss_dict)
        return loss_dict

    runner.alg.update = recording_update
    return loss_dicts


def test_rsl_rl_version_is_supported():
    major, minor, patch = (int(part) for part in version("rsl-rl-lib").split(".")[:3])
    assert (5, 4, 2) <= (major, minor, patch) < (6, 0, 0)


def test_stock_runner_trains_saves_logs_and_resumes(tmp_path):
    torch.manual_seed(0)
    cfg = bandit_cfg()
    env = TwoModeBandit(num_envs=16)
    runner = OnPolicyRunner(env, cfg, log_dir=str(tmp_path), device="cpu")
    assert type(runner) is OnPolicyRunner
    assert type(runner.alg) is TruDi
    assert isinstance(runner.alg.actor, DiffusionActor) and isinstance(runner.alg.critic, QCritic)

    loss_dicts = record_updates(runner)
    runner.learn(num_learning_iterations=3)
    assert runner.current_learning_iteration == 2
    assert len(loss_dicts) == 3
    for loss_dict in loss_dicts:
        missing = [key for key in DIAGNOSTICS if key not in loss_dict]
        assert not missing, f"diagnostics missing from the loss dict: {missing}"
        assert all(isinstance(value, float) and math.isfinite(value) for value in loss_dict.values()), loss_dict
    assert 0.0 <= loss_dicts[-1]["trust_region/kl_over_bound_fraction"] <= 1.0
    assert 0.0 <= loss_dicts[-1]["critic/clipped_target_fraction"] <= 1.0
    assert loss_dicts[-1]["entropy/coef"] > 0.0 and loss_dicts[-1]["trust_region/kl_multiplier"] > 0.0

    # save_interval=2: iterations 0 and 2, the last one also being the final save.
    for it in (0, 2):
        path = tmp_path / f"model_{it}.pt"
        assert path.is_file(), sorted(os.listdir(tmp_path))
    checkpoint = torch.load(tmp_path / "model_2.pt", weights_only=False)
    assert CHECKPOINT_KEYS <= set(checkpoint)
    assert checkpoint["iter"] == 2
    assert isinstance(checkpoint["rng_state"]["torch"], torch.Tensor)
    # After the update the old actor is synced to the actor.
    for key, value in checkpoint["actor_state_dict"].items():
        assert torch.equal(value, checkpoint["old_actor_state_dict"][key]), key

    # TensorBoard events: RSL-RL's Logger writes every loss-dict entry as "Loss/<key>".
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    events = [name for name in os.listdir(tmp_path) if name.startswith("events.out.tfevents")]
    assert events, sorted(os.listdir(tmp_path))
    accumulator = event_accumulator.EventAccumulator(str(tmp_path))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    missing = [key for key in DIAGNOSTICS if f"Loss/{key}" not in tags]
    assert not missing, f"diagnostics missing from TensorBoard: {missing}"
    assert [event.step for event in accumulator.Scalars("Loss/trust_region/kl_mean")] == [0, 1, 2]
    assert "Policy/mean_std" in tags

    # A second stock runner built from the very same dict resumes from the checkpoint.
    resumed = OnPolicyRunner(TwoModeBandit(num_envs=16), cfg, log_dir=None, device="cpu")
    resumed.load(str(tmp_path / "model_2.pt"))
    assert resumed.current_learning_iteration == 2
    for name in ("actor", "critic", "old_actor", "duals"):
        trained, loaded = getattr(runner.alg, name).state_dict(), getattr(resumed.alg, name).state_dict()
        assert trained.keys() == loaded.keys()
        for key, value in trained.items():
            assert torch.equal(value, loaded[key]), f"{name}.{key}"
    resumed_losses = record_updates(resumed)
    resumed.learn(num_learning_iterations=1)  # RSL-RL convention: continues with iteration index 2
    assert len(resumed_losses) == 1 and math.isfinite(resumed_losses[0]["trust_region/kl_mean"])


def test_config_without_critic_section_gets_a_q_critic():
    torch.manual_seed(0)
    cfg = bandit_cfg()
    del cfg["critic"]
    runner = OnPolicyRunner(TwoModeBandit(num_envs=16), cfg, log_dir=None, device="cpu")
    assert type(runner.alg) is TruDi
    assert type(runner.alg.critic) is QCritic
    runner.learn(num_learning_iterations=1)
    assert "critic" not in cfg


@pytest.mark.filterwarnings("ignore:The observation configuration dictionary 'obs_groups':UserWarning")
def test_config_dict_is_not_mutated(tmp_path):
    cfg = bandit_cfg()
    del cfg["obs_groups"]  # resolved in place, as RSL-RL does for PPO
    original = copy.deepcopy(cfg)
    torch.manual_seed(0)
    runner = OnPolicyRunner(TwoModeBandit(num_envs=16), cfg, log_dir=str(tmp_path), device="cpu")
    runner.learn(num_learning_iterations=1)

    # The only changes: algorithm.rnd_cfg=None (rsl-rl 5.4.2's runner and Logger index it), the resolved obs_groups,
    # and the runner's own multi_gpu entry.
    assert cfg["algorithm"] == {**original["algorithm"], "rnd_cfg": None}
    assert cfg["actor"] == original["actor"]
    assert cfg["critic"] == original["critic"]
    assert cfg["obs_groups"]["actor"] == ["policy"] and cfg["obs_groups"]["critic"] == ["policy"]
    assert cfg.pop("multi_gpu") is None
    assert {key: value for key, value in cfg.items() if key not in ("algorithm", "obs_groups")} == {
        key: value for key, value in original.items() if key != "algorithm"
    }

    # The dict can therefore build a second runner, e.g. for evaluation.
    second = OnPolicyRunner(TwoModeBandit(num_envs=16), cfg, log_dir=None, device="cpu")
    assert type(second.alg) is TruDi
    assert cfg["actor"] == original["actor"] and cfg["critic"] == original["critic"]


def test_gym_inverted_pendulum_through_stock_runner():
    pytest.importorskip("gymnasium")
    pytest.importorskip("mujoco")
    from trudi.envs import GymVecEnv

    cfg = bandit_cfg()
    cfg["num_steps_per_env"] = 16
    cfg["algorithm"] |= {"num_mini_batches": 4, "num_learning_epochs": 1}
    cfg["actor"] |= {"hidden_dims": [32, 32]}
    cfg["critic"] = {"class_name": "trudi.rsl_rl:QCritic", "hidden_dim": 64, "value_min": "auto", "value_max": "auto"}
    torch.manual_seed(0)
    env = GymVecEnv("InvertedPendulum-v5", num_envs=4, seed=0)
    try:
        runner = OnPolicyRunner(env, cfg, log_dir=None, device="cpu")
        assert bool(runner.alg.critic.support_pending)
        loss_dicts = record_updates(runner)
        runner.learn(num_learning_iterations=2, init_at_random_ep_len=True)
        actions = runner.get_inference_policy()(env.get_observations())
    finally:
        env.close()
    assert runner.current_learning_iteration == 1
    assert len(loss_dicts) == 2
    # The warm-up rollout set the "auto" support from InvertedPendulum's +1 rewards.
    assert not bool(runner.alg.critic.support_pending)
    low, high = runner.alg.critic.value_range.tolist()
    assert low < high and high > 1.0
    for module in (runner.alg.actor, runner.alg.critic, runner.alg.duals):
        for name, param in module.named_parameters():
            assert torch.isfinite(param).all(), name
    assert all(math.isfinite(value) for value in loss_dicts[-1].values()), loss_dicts[-1]
    assert actions.shape == (4, 1) and torch.all(actions.abs() <= 1.0)


@pytest.mark.parametrize("bucketed", [True, False], ids=["rsl_rl-bucketed-reduce", "fallback-flat-reduce"])
def test_multi_gpu_gradient_reduction(tmp_path, monkeypatch, bucketed):
    """The gradient all-reduce works with rsl-rl's bucketed helper (>= 5.5) and without it (5.4.2 lacks it).

    A real one-rank gloo process group: the sum over ranks is the identity, so dividing by a pretended world size
    of 2 must halve every gradient.
    """
    import rsl_rl.utils

    dist = torch.distributed
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    if not bucketed:
        monkeypatch.delattr(rsl_rl.utils, "reduce_gradients_in_buckets", raising=False)
    elif not hasattr(rsl_rl.utils, "reduce_gradients_in_buckets"):
        pytest.skip(f"rsl-rl-lib {version('rsl-rl-lib')} has no reduce_gradients_in_buckets")

    torch.manual_seed(0)
    runner = OnPolicyRunner(TwoModeBandit(num_envs=16), bandit_cfg(), log_dir=None, device="cpu")
    alg = runner.alg
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        alg.runtime.is_multi_gpu, alg.runtime.world_size = True, 2
        loss = sum(param.square().sum() for param in alg.actor.parameters()) + alg.duals.entropy_coef
        alg.optimizer.zero_grad()
        loss.backward()
        params = [p for group in alg.optimizer.param_groups for p in group["params"] if p.grad is not None]
        expected = [p.grad.clone() / 2 for p in params]
        alg.reduce_parameters()
        for param, grad in zip(params, expected, strict=True):
            assert torch.allclose(param.grad, grad)
        # A full training iteration through the multi-GPU code path.
        alg.runtime.world_size = 1
        runner.learn(num_learning_iterations=1)
    finally:
        dist.destroy_process_group()
    for name, param in alg.actor.named_parameters():
        assert torch.isfinite(param).all(), name
