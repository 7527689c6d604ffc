"""TruDi agent configs for Isaac Lab's RSL-RL workflow, every option at its SPEC default.

``TruDiOnPolicyRunnerCfg`` is an ``RslRlOnPolicyRunnerCfg`` (runner ``class_name`` stays ``"OnPolicyRunner"``, the
only runner Isaac Lab's RL entry points build); TruDi enters through the algorithm and model ``class_name`` strings,
which rsl-rl-lib >= 5 resolves as ``"module:Class"``.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING

from isaaclab.utils import configclass
from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg


@configclass
class TruDiActorCfg(RslRlMLPModelCfg):
    """``trudi.rsl_rl:DiffusionActor``.

    It subclasses the MLP model config because Isaac Lab's config migration reads ``distribution_cfg`` and
    ``stochastic`` on every actor config.
    """

    class_name: str = "trudi.rsl_rl:DiffusionActor"
    hidden_dims: list[int] = [256, 256, 256]
    """Hidden widths of the control network."""
    activation: str = "gelu"
    obs_normalization: bool = True
    distribution_cfg: None = None
    """Must stay ``None``: the denoising chain is the action distribution."""
    num_denoising_steps: int = 8
    """``N``."""
    init_std: float = 2.5
    """``sigma_0`` of the Gaussian prior."""
    schedule: str = "cosine"
    """Step-size schedule: ``cosine``, ``linear`` or ``constant``."""
    learn_friction: bool = True
    init_friction: float = 1.0
    learn_dt: bool = False
    per_step_dt: bool = False
    ode_control_scale: float = 1.0
    """Control scale ``c`` of the deterministic (ODE) sampler."""
    action_scale: float = 1.0
    """Environment action = ``action_scale * tanh(x_N)``."""
    time_frequencies: int = 32
    time_embedding_dim: int = 16


@configclass
class TruDiCriticCfg:
    """``trudi.rsl_rl:QCritic``, the distributional (HL-Gauss) Q critic with its self-predictive head."""

    class_name: str = "trudi.rsl_rl:QCritic"
    hidden_dim: int = 512
    num_layers: int = 2
    num_bins: int = 151
    value_min: float | str = -10.0
    """Lower end of the value support, or ``"auto"`` (set from a warm-up, see docs/algorithm.md)."""
    value_max: float | str = 10.0
    hl_gauss_sigma: float = 0.75
    obs_normalization: bool = True
    distribution_cfg: None = None
    """Must stay ``None``; present because Isaac Lab's config migration reads it on every model config."""
    stochastic: bool = False
    """Read and then removed by Isaac Lab's config migration; never reaches the critic."""


@configclass
class TruDiAlgorithmCfg:
    """``trudi.rsl_rl:TruDi``: critic step, gated trust-region actor step, dual steps."""

    class_name: str = "trudi.rsl_rl:TruDi"
    num_learning_epochs: int = 2
    num_mini_batches: int = 32
    learning_rate: float = 3e-4
    dual_learning_rate: float = 0.01
    """Adam learning rate of ``log alpha`` and ``log lambda`` (about this much change per step)."""
    max_grad_norm: float = 0.5
    gamma: float = 0.99
    lam: float = 0.95
    trust_region: str = "gate"
    """``gate`` (TruDi), ``penalty`` or ``none``."""
    kl_bound: float = 0.1
    """``epsilon``, the bound on the trajectory KL per state."""
    kl_samples: int = 1
    """``K``, old-policy chains per state for the KL estimate."""
    kl_mode: str = "full"
    """``full`` closed-form Gaussian KL or ``mean`` (mean term only)."""
    kl_direction: str = "forward"
    """``forward`` KL(old || new) on K old-policy chains, or ``reverse`` KL(new || old) on the loss's own chain."""
    kl_chains: str = "rollout"
    """Old-policy chains of the forward KL: ``mini_batch`` (K fresh per mini-batch), ``update`` (K per state, once per
    update) or ``rollout`` (the rollout's own chain; needs ``kl_samples = 1``)."""
    sarsa_bootstrap: bool = True
    """The chain sampled at the next state for the bootstrap is also the next action (one chain per env step)."""
    gate_aware_backward: bool = False
    """Build the forward KL's graph only at the states the gated loss penalises (same gradient; eager mode only)."""
    mixed_precision: str = "none"
    """``none`` (float32) or ``bf16``: the network passes under bfloat16 autocast; the chain math stays float32."""
    torch_compile: bool = False
    """``torch.compile`` the rollout chain and the actor step's chain and KL (compiled in the first iteration)."""
    cuda_graphs: bool = False
    """With ``torch_compile``: capture those functions as CUDA graphs (``mode="reduce-overhead"``)."""
    init_entropy_coef: float = 0.01
    learn_entropy_coef: bool = True
    entropy_target_mult: float = 4.0
    """``c_H``: the target entropy is ``H_ref - c_H * action_dim`` (nats per action dimension below the reference)."""
    entropy_target_reference: str = "initial"
    """``initial`` (``H_ref``: the initial policy's entropy estimate) or ``zero`` (``H_ref = 0``, SPEC)."""
    init_kl_multiplier: float = 0.01
    learn_kl_multiplier: bool = True
    aux_loss_coef: float = 1.0
    reward_normalization: bool = True
    """Divide rewards by the running RMS of the discounted return: every critic and dual quantity is unit-free."""
    auto_support_margin: float = 2.0
    clipped_target_warning: float = 0.05
    grad_reduce_bucket_mb: float = 25.0


@configclass
class TruDiOnPolicyRunnerCfg(RslRlOnPolicyRunnerCfg):
    """Runner config of a TruDi agent; the stock ``OnPolicyRunner`` runs it."""

    obs_groups: dict[str, list[str]] = {"actor": ["policy"], "critic": ["policy"]}
    actor: TruDiActorCfg = TruDiActorCfg()
    critic: TruDiCriticCfg = TruDiCriticCfg()
    algorithm: TruDiAlgorithmCfg = TruDiAlgorithmCfg()


RUNNER_FIELDS_FROM_PPO = (
    "seed",
    "device",
    "num_steps_per_env",
    "max_iterations",
    "init_at_random_ep_len",
    "clip_actions",
    "check_for_nan",
    "save_interval",
    "run_name",
    "logger",
    "neptune_project",
    "wandb_project",
    "load_run",
    "load_checkpoint",
)
"""Runner settings a TruDi config takes over from the task's PPO config: rollout, budget, logging, checkpoints."""


def trudi_cfg_from_ppo(ppo_cfg: RslRlOnPolicyRunnerCfg) -> TruDiOnPolicyRunnerCfg:
    """Derive a TruDi runner config from a task's PPO runner config.

    Rollout length, iteration budget, observation groups (actor and critic inputs), discount and logging settings
    come from the PPO config; the networks and TruDi options keep their SPEC defaults. ``experiment_name`` gets a
    ``_trudi`` suffix so TruDi and PPO runs never share a log folder (or a ``--checkpoint latest``).
    """
    cfg = TruDiOnPolicyRunnerCfg()
    for name in RUNNER_FIELDS_FROM_PPO:
        value = getattr(ppo_cfg, name, MISSING)
        if not _is_missing(value):
            setattr(cfg, name, copy.deepcopy(value))
    obs_groups = getattr(ppo_cfg, "obs_groups", MISSING)
    if not _is_missing(obs_groups) and obs_groups:
        cfg.obs_groups = copy.deepcopy(obs_groups)
    cfg.experiment_name = f"{ppo_cfg.experiment_name}_trudi"
    cfg.algorithm.gamma = ppo_cfg.algorithm.gamma
    cfg.algorithm.lam = ppo_cfg.algorithm.lam
    return cfg


def _is_missing(value: object) -> bool:
    # configclass deep-copies defaults, so an unset field holds a copy of MISSING rather than MISSING itself.
    return isinstance(value, type(MISSING))
