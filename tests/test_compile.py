"""The runner's ``torch_compile_mode``: the compiled rollout and actor step compute what the eager ones do.

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


def _runner(torch_compile_mode: str | None) -> OnPolicyRunner:
    torch.manual_seed(0)
    return small_bandit_runner(torch_compile_mode=torch_compile_mode)


def _parameters(runner: OnPolicyRunner) -> list[torch.Tensor]:
    return [p.detach().clone() for p in (*runner.alg.actor.parameters(), *runner.alg.critic.parameters())]


def test_compiled_training_matches_eager_training():
    torch._dynamo.reset()
    trained = {}
    # inductor's own patch context: it restores the setting for the tests that follow (export reads it too).
    with inductor_config.patch(fallback_random=True):
        for mode in (None, "default"):
            runner = _runner(mode)
            initial = _parameters(runner)
            runner.learn(2)
            trained[mode] = _parameters(runner)
    errors = [(c - e).abs().max().item() for c, e in zip(trained["default"], trained[None], strict=True)]
    moved = [(e - i).abs().max().item() for e, i in zip(trained[None], initial, strict=True)]
    print(f"max |compiled - eager| {max(errors):.2e}; largest parameter change in training {max(moved):.2e}")
    assert max(errors) < 1e-4
    assert max(moved) > 1e-3  # training moved the parameters, so the match is not between two untouched nets


def test_cuda_graph_wrapper_changes_no_value_around_eager_functions():
    # The CUDA-graph modes wrap the compiled chain and actor step in graph_safe (a new graph step per call, outputs
    # copied out of the static buffers). On the CPU inductor captures no graph, so test the wrapper itself: around the
    # eager functions, training must match plain eager training exactly.
    trained = {}
    for wrapped in (False, True):
        runner = _runner(None)
        if wrapped:
            rollout, learner = runner.alg.rollout, runner.alg.learner
            rollout.sample_chain, learner.policy_terms = (
                graph_safe(rollout.sample_chain),
                graph_safe(learner.policy_terms),
            )
        runner.learn(2)
        trained[wrapped] = _parameters(runner)
    assert all(torch.equal(w, e) for w, e in zip(trained[True], trained[False], strict=True))


def test_an_unknown_compile_mode_is_one_line_naming_the_modes():
    torch.manual_seed(0)
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["torch_compile_mode"] = "fastest"
    with pytest.raises(ConfigError, match="torch_compile_mode='fastest' is invalid: allowed values are 'default'"):
        OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)
