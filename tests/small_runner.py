"""A small TruDi runner shared by the core tests that train a couple of iterations and compare the results."""

from trudi.envs import TwoModeBandit
from trudi.rsl_rl import OnPolicyRunner
from trudi.tasks import train_cfg


def small_bandit_runner(torch_compile_mode: str | None = None, **algorithm) -> OnPolicyRunner:
    """A TruDi runner on TwoModeBandit with small networks (2 denoising steps, 2 x 2 mini-batches) and these options."""
    cfg = train_cfg("TwoModeBandit", "trudi")
    cfg["actor"].update(hidden_dims=[32, 32], num_denoising_steps=2)
    cfg["critic"]["hidden_dim"] = 64
    cfg["algorithm"].update(num_learning_epochs=2, num_mini_batches=2, **algorithm)
    cfg["torch_compile_mode"] = torch_compile_mode
    return OnPolicyRunner(TwoModeBandit(num_envs=64), cfg, log_dir=None)
