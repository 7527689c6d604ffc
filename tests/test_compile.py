"""``algorithm.torch_compile``: the compiled rollout and actor step compute what the eager ones do.

Inductor compiles for the CPU here as it would for a GPU (fused kernels; CUDA graphs are not used). With
``fallback_random`` its random draws come from the eager generator, so the same seed gives the same samples and a
whole training iteration can be compared number by number.
"""

import torch
import torch._inductor.config as inductor_config

from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


def _runner(torch_compile: bool) -> OnPolicyRunner:
    torch.manual_seed(0)
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"].update(hidden_dims=[32, 32], num_denoising_steps=2)
    cfg["critic"]["hidden_dim"] = 64
    cfg["algorithm"].update(torch_compile=torch_compile, num_learning_epochs=2, num_mini_batches=2)
    return OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)


def _parameters(runner: OnPolicyRunner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*runner.alg.actor.parameters(), *runner.alg.critic.parameters())]


def test_compiled_training_matches_eager_training():
    torch._dynamo.reset()
    trained = {}
    # inductor's own patch context: it restores the setting for the tests that follow (export reads it too).
    with inductor_config.patch(fallback_random=True):
        for torch_compile in (False, True):
            runner = _runner(torch_compile)
            initial = _parameters(runner)
            runner.learn(2)
            trained[torch_compile] = _parameters(runner)
    errors = [(c - e).abs().max().item() for c, e in zip(trained[True], trained[False], strict=True)]
    moved = [(e - i).abs().max().item() for e, i in zip(trained[False], initial, strict=True)]
    print(f"max |compiled - eager| {max(errors):.2e}; largest parameter change in training {max(moved):.2e}")
    assert max(errors) < 1e-4
    assert max(moved) > 1e-3  # training moved the parameters, so the match is not between two untouched nets
