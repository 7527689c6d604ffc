"""Export parity, save -> load -> resume equivalence, atomic checkpoints and the non-finite stop."""

import os

import numpy as np
import onnxruntime
import pytest
import torch

from trudi.checkpoint import atomic_torch_save
from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


def _cfg(**algorithm) -> dict:
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"]["hidden_dims"] = [32, 32]
    cfg["critic"]["hidden_dim"] = 64
    cfg["save_interval"] = 1
    cfg["algorithm"].update(algorithm)
    return cfg


def _runner(log_dir=None, seed=0, env=None, **algorithm) -> OnPolicyRunner:
    torch.manual_seed(seed)
    return OnPolicyRunner(env or TwoModeBandit(num_envs=64), _cfg(**algorithm), log_dir=log_dir)


def test_jit_and_onnx_exports_match_the_torch_policy(tmp_path):
    runner = _runner()
    runner.learn(3)  # trained control net and non-trivial normaliser statistics
    actor = runner.alg.get_policy()
    with torch.no_grad():
        actor.control_net.mlp[-1].weight.normal_(0.0, 3.0)  # make the control matter for the comparison
        actor.observations.normalizer._mean.fill_(0.3)
        actor.observations.normalizer._std.fill_(2.0)
    runner.export_policy_to_jit(str(tmp_path), "policy.pt")
    runner.export_policy_to_onnx(str(tmp_path), "policy.onnx")
    obs = torch.randn(64, 1) * 3.0
    with torch.no_grad():
        expected = runner.get_inference_policy()({"policy": obs})
        jit_actions = torch.jit.load(str(tmp_path / "policy.pt"))(obs)
    session = onnxruntime.InferenceSession(str(tmp_path / "policy.onnx"))
    # RSL-RL exports with the batch-1 dummy input and no dynamic axes: query one observation at a time.
    onnx_actions = np.concatenate([session.run(["actions"], {"obs": row[None].numpy()})[0] for row in obs])
    assert expected.abs().max() > 0.05, "the comparison needs non-trivial actions"
    assert (jit_actions - expected).abs().max().item() < 1e-5
    assert np.abs(onnx_actions - expected.numpy()).max() < 1e-5


def _record_updates(runner: OnPolicyRunner) -> list[dict]:
    records: list[dict] = []
    update = runner.alg.update

    def recording_update():
        records.append(update())
        return records[-1]

    runner.alg.update = recording_update
    return records


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    # TwoModeBandit is stateless, so the env needs no saving and the runs can match exactly on CPU.
    straight = _runner(str(tmp_path / "straight"))
    straight_losses = _record_updates(straight)
    straight.learn(4)

    first = _runner(str(tmp_path / "first"))
    first.learn(2)
    resumed = _runner(str(tmp_path / "resumed"), seed=123)  # a different init, overwritten by the checkpoint
    resumed.load(str(tmp_path / "first" / "model_1.pt"))
    assert resumed.current_learning_iteration == 1
    resumed_losses = _record_updates(resumed)
    resumed.learn(2)

    for key in (
        "critic",
        "actor",
        "trust_region/kl_mean",
        "entropy/estimate",
        "entropy/coef",
        "trust_region/kl_multiplier",
    ):
        assert resumed_losses[-1][key] == pytest.approx(straight_losses[-1][key], rel=1e-6, abs=1e-9), key
    resumed_state = resumed.alg.actor.state_dict()
    for name, value in straight.alg.actor.state_dict().items():
        assert torch.allclose(value, resumed_state[name], atol=1e-6), name
    assert sorted(os.listdir(tmp_path / "resumed"))[-1].startswith("model_")


class _Unpicklable:
    def __reduce__(self):
        raise RuntimeError("killed mid-save")


def test_atomic_save_never_leaves_a_half_written_file(tmp_path):
    path = tmp_path / "model_0.pt"
    atomic_torch_save({"weights": torch.ones(3)}, str(path))
    with pytest.raises(RuntimeError, match="killed mid-save"):
        atomic_torch_save({"weights": torch.zeros(3), "bad": _Unpicklable()}, str(path))
    assert torch.equal(torch.load(path)["weights"], torch.ones(3))
    assert os.listdir(tmp_path) == ["model_0.pt"]


class _InfiniteRewardBandit(TwoModeBandit):
    """The bandit, except that its reward becomes infinite from the third step on (an env bug)."""

    def step(self, actions):
        obs, rewards, dones, extras = super().step(actions)
        self.calls = getattr(self, "calls", 0) + 1
        return obs, rewards if self.calls < 3 else torch.full_like(rewards, float("inf")), dones, extras


def test_non_finite_reward_stops_training_and_keeps_the_last_checkpoint(tmp_path):
    runner = _runner(str(tmp_path), env=_InfiniteRewardBandit(num_envs=64))
    with pytest.raises(FloatingPointError, match="reward"):
        runner.learn(5)
    saved = sorted(os.listdir(tmp_path))
    assert "model_1.pt" in saved and "model_2.pt" not in saved
    checkpoint = torch.load(tmp_path / "model_1.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in checkpoint["actor_state_dict"].values())


def test_non_finite_update_stops_training_and_names_the_culprits(tmp_path):
    runner = _runner(str(tmp_path))
    runner.learn(1)
    # A NaN temperature leaves the environment's rewards finite but poisons every loss and parameter it touches.
    with torch.no_grad():
        runner.alg.duals.log_entropy_coef.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite values in the update: loss 'critic'"):
        runner.learn(1)
    saved = torch.load(tmp_path / "model_0.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in saved["actor_state_dict"].values())
    assert "model_1.pt" not in os.listdir(tmp_path)
