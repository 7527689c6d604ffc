"""TruDi's optimizer: the fused Adam kernel (the default on CPU and CUDA) trains as the per-tensor Adam does."""

import torch

from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


def _trained_parameters(fused: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Parameters before and after two training iterations, with the fused or the per-tensor Adam."""
    torch.manual_seed(0)
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"].update(hidden_dims=[32, 32], num_denoising_steps=2)
    cfg["critic"]["hidden_dim"] = 64
    cfg["algorithm"].update(num_learning_epochs=2, num_mini_batches=2)
    runner = OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)
    optimizer = runner.alg.optimizer
    assert optimizer.defaults["fused"], "TruDi builds the fused Adam on the CPU"
    if not fused:
        groups = [{key: value for key, value in group.items() if key != "fused"} for group in optimizer.param_groups]
        runner.alg.optimizer = torch.optim.Adam(groups, fused=False, foreach=False)
    parameters = [p for group in runner.alg.optimizer.param_groups for p in group["params"]]
    initial = [p.detach().clone() for p in parameters]
    runner.learn(2)
    return initial, [p.detach().clone() for p in parameters]


def test_fused_adam_trains_as_the_per_tensor_adam():
    initial, per_tensor = _trained_parameters(fused=False)
    _, fused = _trained_parameters(fused=True)
    errors = [(f - p).abs().max().item() for f, p in zip(fused, per_tensor, strict=True)]
    moved = [(p - i).abs().max().item() for p, i in zip(per_tensor, initial, strict=True)]
    print(f"max |fused - per-tensor| {max(errors):.2e}; largest parameter change in training {max(moved):.2e}")
    assert max(errors) < 1e-5
    assert max(moved) > 1e-3  # training moved the parameters, so the match is not between two untouched nets
