"""``algorithm.torch_compile``: the compiled rollout and actor step compute what the eager ones do.

Inductor compiles for the CPU here as it would for a GPU (fused kernels; CUDA graphs are not used). With
``fallback_random`` its random draws come from the eager generator, so the same seed gives the same samples and a
whole training iteration can be compared number by number.
"""

import pytest
import torch
import torch._inductor.config as inductor_config
from small_runner import small_bandit_runner

from trudi.algorithm import graph_safe
from trudi.config import ConfigError
from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


def _runner(torch_compile: bool) -> OnPolicyRunner:
    torch.manual_seed(0)
    return small_bandit_runner(torch_compile=torch_compile)


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


def test_cuda_graph_wrapper_changes_no_value_around_eager_functions():
    # algorithm.cuda_graphs wraps the compiled chain and actor step in graph_safe (a new graph step per call, outputs
    # copied out of the static buffers). On the CPU inductor captures no graph, so test the wrapper itself: around the
    # eager functions, training must match plain eager training exactly.
    trained = {}
    for wrapped in (False, True):
        runner = _runner(torch_compile=False)
        if wrapped:
            alg = runner.alg
            alg._sample_chain, alg._policy_terms = graph_safe(alg._sample_chain), graph_safe(alg._policy_terms)
        runner.learn(2)
        trained[wrapped] = _parameters(runner)
    assert all(torch.equal(w, e) for w, e in zip(trained[True], trained[False], strict=True))


def test_cuda_graphs_need_torch_compile():
    torch.manual_seed(0)
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["algorithm"].update(cuda_graphs=True)
    with pytest.raises(ConfigError, match="algorithm.cuda_graphs=True is invalid with algorithm.torch_compile=False"):
        OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)
