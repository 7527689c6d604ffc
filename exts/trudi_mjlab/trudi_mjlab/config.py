"""TruDi agent configs for mjlab's RSL-RL workflow (plain dataclasses, as mjlab's own ``mjlab.rl`` configs).

mjlab's ``train`` turns the agent config into a dict with ``dataclasses.asdict`` and hands it to an RSL-RL runner,
which resolves ``class_name`` strings such as ``"trudi.rsl_rl:TruDi"``. TruDi rejects keys its constructors do not
take, so these dataclasses hold exactly the constructor keywords (defaults equal to the constructors', which
``tests/mjlab/test_mjlab.py`` checks) and nothing of mjlab's MLP model config (``cnn_cfg``, ``rnn_*``, ...).
Every field is reachable from mjlab's command line, e.g. ``--agent.algorithm.kl-bound 0.2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from mjlab.rl import RslRlBaseRunnerCfg, RslRlOnPolicyRunnerCfg


@dataclass
class TruDiActorCfg:
    """``trudi.rsl_rl:DiffusionActor``: the diffusion policy (see docs/algorithm.md, ``actor.*``)."""

    class_name: str = "trudi.rsl_rl:DiffusionActor"
    """Model class resolved by RSL-RL."""
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    """Hidden widths of the control network."""
    activation: str = "gelu"
    """Activation of the control network; only ``"gelu"``."""
    obs_normalization: bool = True
    """Normalise observations with running statistics."""
    num_denoising_steps: int = 8
    """``N``, the number of denoising steps."""
    init_std: float = 2.5
    """``sigma_0``, the standard deviation of the Gaussian prior."""
    schedule: str = "cosine"
    """Step-size schedule: ``cosine``, ``linear`` or ``constant``."""
    learn_friction: bool = True
    """Train the per-dimension friction."""
    init_friction: float = 1.0
    """Initial friction."""
    learn_dt: bool = False
    """Train the step size(s)."""
    per_step_dt: bool = False
    """One step size per denoising step instead of a scalar times the schedule (trained only with ``learn_dt``)."""
    ode_control_scale: float = 1.0
    """``c``, the control scale of the deterministic (ODE) sampler used by play and export."""
    action_scale: float = 1.0
    """Environment action = ``action_scale * tanh(x_N)``, before mjlab's per-joint action scale."""
    time_frequencies: int = 32
    """Fourier frequencies of the denoising-step embedding."""
    time_embedding_dim: int = 16
    """Width of the denoising-step embedding."""


@dataclass
class TruDiCriticCfg:
    """``trudi.rsl_rl:QCritic``: the distributional Q critic (see docs/algorithm.md, ``critic.*``)."""

    class_name: str = "trudi.rsl_rl:QCritic"
    """Model class resolved by RSL-RL."""
    hidden_dim: int = 512
    """Width of the encoder, head and predictor."""
    num_layers: int = 2
    """Encoder blocks (Linear + RMSNorm + SiLU)."""
    num_bins: int = 151
    """Atoms of the value distribution."""
    value_min: float | str = -10.0
    """Lower end of the value support in the rewards' normalised unit, or ``"auto"`` (set from the warm-up rollout's
    soft rewards)."""
    value_max: float | str = 10.0
    """Upper end of the value support, or ``"auto"``."""
    hl_gauss_sigma: float = 0.75
    """Width of the HL-Gauss target, in bin widths."""
    obs_normalization: bool = True
    """Normalise observations with running statistics."""


@dataclass
class TruDiAlgorithmCfg:
    """``trudi.rsl_rl:TruDi``: critic step, trust-region actor step, dual steps (docs/algorithm.md, ``algorithm.*``)."""

    class_name: str = "trudi.rsl_rl:TruDi"
    """Algorithm class resolved by RSL-RL."""
    num_learning_epochs: int = 2
    """Passes over each rollout."""
    num_mini_batches: int = 32
    """Mini-batches per epoch (at most ``num_envs * num_steps_per_env``)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the actor and the critic (constant)."""
    dual_learning_rate: float = 0.01
    """Adam learning rate of ``log alpha`` and ``log lambda`` (about this much change per step)."""
    max_grad_norm: float = 0.5
    """Gradient-norm clip, applied separately to the actor and the critic step."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """Lambda of the lambda-returns."""
    trust_region: str = "gate"
    """``gate`` (TruDi), ``penalty`` or ``none``."""
    kl_bound: float = 0.1
    """``epsilon``, the per-state bound on the trajectory KL."""
    kl_samples: int = 1
    """``K``, old-policy chains per state for the KL estimate."""
    kl_mode: str = "full"
    """``full`` (closed-form Gaussian KL per step) or ``mean`` (mean term only)."""
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
    """Initial entropy temperature ``alpha``."""
    learn_entropy_coef: bool = True
    """Adapt ``alpha`` towards the entropy target."""
    entropy_target_mult: float = 4.0
    """``c_H``: the target entropy is ``H_ref - c_H * action_dim`` (nats per action dimension below the reference)."""
    entropy_target_reference: str = "initial"
    """``initial`` (``H_ref``: the initial policy's entropy estimate) or ``zero`` (``H_ref = 0``, SPEC)."""
    init_kl_multiplier: float = 0.01
    """Initial KL multiplier ``lambda``."""
    learn_kl_multiplier: bool = True
    """Adapt ``lambda`` by dual ascent."""
    aux_loss_coef: float = 1.0
    """Weight of the critic's self-predictive loss."""
    reward_normalization: bool = True
    """Divide rewards by the running RMS of the discounted return: every critic and dual quantity is unit-free."""
    auto_support_margin: float = 2.0
    """Widening factor (>= 1) of an ``"auto"`` critic support."""
    clipped_target_warning: float = 0.05
    """Warn once when more than this fraction of return targets falls outside the support."""
    grad_reduce_bucket_mb: float = 25.0
    """Bucket size of the multi-GPU gradient all-reduce."""


@dataclass
class TruDiOnPolicyRunnerCfg(RslRlBaseRunnerCfg):
    """mjlab runner config with TruDi's algorithm, actor and critic; the runner fields are mjlab's."""

    actor: TruDiActorCfg = field(default_factory=TruDiActorCfg)
    """The diffusion actor."""
    critic: TruDiCriticCfg = field(default_factory=TruDiCriticCfg)
    """The Q critic."""
    algorithm: TruDiAlgorithmCfg = field(default_factory=TruDiAlgorithmCfg)
    """The TruDi algorithm."""


def trudi_runner_cfg(
    ppo_cfg: RslRlOnPolicyRunnerCfg,
    actor: TruDiActorCfg | None = None,
    critic: TruDiCriticCfg | None = None,
    algorithm: TruDiAlgorithmCfg | None = None,
) -> TruDiOnPolicyRunnerCfg:
    """A TruDi runner config derived from a task's PPO runner config.

    The runner fields (seed, ``obs_groups``, ``num_steps_per_env``, ``max_iterations``, save interval, logger, ...)
    are the task's; the experiment name gains ``_trudi`` so runs never mix with PPO's in ``logs/rsl_rl``. The
    discount and the lambda of the returns are the task's too, since they define its horizon; the other algorithm
    settings are TruDi's, because PPO's learning rate and clipping do not carry over to a trust-region update.

    Args:
        ppo_cfg: The task's registered PPO runner config.
        actor: Actor options; TruDi's defaults if ``None``.
        critic: Critic options; the defaults if ``None`` (rewards are normalised, so one support fits every task).
        algorithm: Algorithm options; TruDi's defaults with the task's ``gamma`` and ``lam`` if ``None``.
    """
    runner_fields = {f.name: getattr(ppo_cfg, f.name) for f in fields(RslRlBaseRunnerCfg)}
    runner_fields["experiment_name"] = f"{ppo_cfg.experiment_name}_trudi"
    return TruDiOnPolicyRunnerCfg(
        **runner_fields,
        actor=actor or TruDiActorCfg(),
        critic=critic or TruDiCriticCfg(),
        algorithm=algorithm or TruDiAlgorithmCfg(gamma=ppo_cfg.algorithm.gamma, lam=ppo_cfg.algorithm.lam),
    )
