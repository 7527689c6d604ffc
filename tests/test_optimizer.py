"""TruDi's optimizer: the fused Adam kernel (the default on CPU and CUDA) trains as the per-tensor Adam does, and the
critic's warm-up epochs step the critic alone."""

import torch
from small_runner import small_bandit_runner


def _trained_parameters(fused: bool) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Parameters before and after two training iterations, with the fused or the per-tensor Adam."""
    torch.manual_seed(0)
    runner = small_bandit_runner()
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


def test_a_resumed_run_uses_the_fused_adam_whatever_the_checkpoint_says():
    """Whether Adam is fused belongs to this run's device: a checkpoint of a per-tensor run resumes fused."""
    runner = small_bandit_runner()
    runner.learn(1)
    saved = runner.alg.save()
    for group in saved["optimizer_state_dict"]["param_groups"]:
        group["fused"] = False
    resumed = small_bandit_runner()
    resumed.alg.load(saved, None, strict=True)
    assert all(group["fused"] for group in resumed.alg.optimizer.param_groups)
    resumed.learn(1)  # the fused step accepts the restored state


def _adam_steps(runner, group_name: str) -> set[int]:
    """The Adam step counts of the parameters in one parameter group."""
    optimizer = runner.alg.optimizer
    group = next(group for group in optimizer.param_groups if group["name"] == group_name)
    return {int(optimizer.state[p]["step"]) for p in group["params"] if p in optimizer.state}


def test_critic_warmup_epochs_step_the_critic_alone_before_the_joint_epochs():
    """2 joint epochs x 2 mini-batches step every model 4 times; 3 warm-up epochs add 6 steps of the critic only."""
    for warmup, critic_steps in ((0, 4), (3, 10)):
        runner = small_bandit_runner(critic_warmup_epochs=warmup)
        runner.learn(1)
        assert _adam_steps(runner, "critic") == {critic_steps}
        assert _adam_steps(runner, "actor") == {4}
        assert _adam_steps(runner, "duals") == {4}
