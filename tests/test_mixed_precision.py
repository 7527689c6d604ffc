"""``algorithm.mixed_precision: bf16``: the network passes run in bfloat16, the chain and the losses in float32.

CPU autocast runs the same bfloat16 kernels a GPU would choose for these layers, so the dtypes and the accuracy are
checked here; the speed it buys is a benchmark (docs/results/speed.md), not a test.
"""

import math

import torch

from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.runtime import Runtime
from trudi.tasks import train_cfg


def _runner(mixed_precision: str) -> OnPolicyRunner:
    torch.manual_seed(0)
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"]["hidden_dims"] = [32, 32]
    cfg["critic"]["hidden_dim"] = 64
    cfg["algorithm"]["mixed_precision"] = mixed_precision
    return OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)


def test_bf16_runs_the_network_passes_in_bfloat16_and_keeps_the_math_in_float32():
    runner = _runner("bf16")
    alg = runner.alg
    layer_dtypes = set()

    def record(module, inputs, output):
        layer_dtypes.add(output.dtype)

    hooks = [alg.actor.control_net.mlp[-1].register_forward_hook(record)]
    hooks += [alg.critic.head[-1].register_forward_hook(record), alg.critic.predictor[-1].register_forward_hook(record)]
    obs = runner.env.get_observations()
    with torch.inference_mode():
        actions = alg.act(obs)
        obs, rewards, dones, extras = runner.env.step(actions)
        alg.process_env_step(obs, rewards, dones, extras)
    assert layer_dtypes == {torch.bfloat16}
    assert actions.dtype == torch.float32
    stored = [alg.storage.soft_rewards, alg.storage.next_values, alg.storage.next_embeddings]
    assert {t.dtype for t in stored} == {torch.float32}

    layer_dtypes.clear()
    alg.storage.clear()
    runner.learn(2)  # rollouts and updates end to end
    for hook in hooks:
        hook.remove()
    assert layer_dtypes == {torch.bfloat16}
    params = [*alg.actor.parameters(), *alg.critic.parameters(), *alg.duals.parameters()]
    assert {p.dtype for p in params} == {torch.float32}
    assert all(torch.isfinite(p).all() for p in params)
    moments = [state[key] for state in alg.optimizer.state.values() for key in ("exp_avg", "exp_avg_sq")]
    assert moments and {m.dtype for m in moments} == {torch.float32}


def test_bf16_chain_matches_float32_to_bfloat16_accuracy():
    alg = _runner("bf16").alg
    # Trained-looking controls: the initial output layer is ~0, which would hide any difference.
    with torch.no_grad():
        for param in alg.actor.control_net.parameters():
            param.normal_(0.0, 0.3)
    state = torch.randn(256, alg.actor.obs_dim)
    results = {}
    for name in ("none", "bf16"):
        torch.manual_seed(1)
        with torch.no_grad(), Runtime("cpu", name).autocast():
            x_final, log_likelihood, _ = alg.actor.sde_chain(state)
        results[name] = (x_final, log_likelihood)
    (x32, ll32), (x16, ll16) = results["none"], results["bf16"]
    assert x16.dtype == ll16.dtype == torch.float32
    x_error = (x16 - x32).abs().max().item()
    ll_error = (ll16 - ll32).abs().max().item()
    print(f"bf16 vs float32: max |dx_N| {x_error:.2e} (|x_N| up to {x32.abs().max():.1f}), max |dl| {ll_error:.2e}")
    assert 0.0 < x_error < 0.05 * x32.abs().max().item()  # bf16 was used, and is ~2-3 significant digits
    assert math.isfinite(ll_error) and ll_error < 0.05 * ll32.abs().max().item()
