"""TruDi agent configs for Isaac Lab's RSL-RL workflow, generated from the options declared in :mod:`trudi.options`.

``TruDiOnPolicyRunnerCfg`` is an ``RslRlOnPolicyRunnerCfg`` (runner ``class_name`` stays ``"OnPolicyRunner"``, the
only runner Isaac Lab's RL entry points build); TruDi enters through the algorithm and model ``class_name`` strings,
which rsl-rl-lib >= 5 resolves as ``"module:Class"``.
"""

from __future__ import annotations

from isaaclab.utils import configclass
from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg

from trudi.from_ppo import TORCH_COMPILE_MODE, algorithm_fields_from_ppo, runner_fields_from_ppo
from trudi.options import ActorOptions, AlgorithmOptions, CriticOptions, Options, generated_doc, option_fields


def _options_configclass(name: str, options: type[Options], doc: str, base: type = object, **fixed: tuple) -> type:
    """An Isaac Lab ``@configclass``: the ``fixed`` fields, then one field per option of ``options`` at its default.

    ``fixed`` maps field names to ``(annotation, default)``; tuple defaults become lists, as Isaac Lab's configs hold
    sequences. The options and their meanings are declared once, in :mod:`trudi.options`; the class docstring lists
    them.
    """
    annotations, namespace = {}, {}
    for field_name, (annotation, default) in fixed.items():
        annotations[field_name], namespace[field_name] = annotation, default
    for field_name, annotation, default, _ in option_fields(options):
        annotations[field_name] = annotation.replace("tuple[int, ...]", "list[int]")
        namespace[field_name] = list(default) if isinstance(default, tuple) else default
    namespace |= {"__annotations__": annotations, "__module__": __name__, "__qualname__": name}
    namespace["__doc__"] = generated_doc(doc, options)
    return configclass(type(name, (base,), namespace))


TruDiActorCfg = _options_configclass(
    "TruDiActorCfg",
    ActorOptions,
    "``trudi.rsl_rl:DiffusionActor``. It subclasses the MLP model config because Isaac Lab's config migration reads"
    " ``distribution_cfg`` and ``stochastic`` on every actor config; ``distribution_cfg`` must stay ``None`` (the"
    " denoising chain is the action distribution).",
    base=RslRlMLPModelCfg,
    class_name=("str", "trudi.rsl_rl:DiffusionActor"),
    distribution_cfg=("None", None),
)
TruDiCriticCfg = _options_configclass(
    "TruDiCriticCfg",
    CriticOptions,
    "``trudi.rsl_rl:QCritic``, the distributional (HL-Gauss) Q critic with its self-predictive head."
    " ``distribution_cfg`` (must stay ``None``) and ``stochastic`` (removed again before the critic is built) are"
    " there because Isaac Lab's config migration reads them on every model config.",
    class_name=("str", "trudi.rsl_rl:QCritic"),
    distribution_cfg=("None", None),
    stochastic=("bool", False),
)
TruDiAlgorithmCfg = _options_configclass(
    "TruDiAlgorithmCfg",
    AlgorithmOptions,
    "``trudi.rsl_rl:TruDi``: critic step, gated trust-region actor step, dual steps.",
    class_name=("str", "trudi.rsl_rl:TruDi"),
)


@configclass
class TruDiOnPolicyRunnerCfg(RslRlOnPolicyRunnerCfg):
    """Runner config of a TruDi agent; the stock ``OnPolicyRunner`` runs it."""

    obs_groups: dict[str, list[str]] = {"actor": ["policy"], "critic": ["policy"]}
    """Observation groups of the actor and the critic."""
    actor: TruDiActorCfg = TruDiActorCfg()
    """The diffusion actor."""
    critic: TruDiCriticCfg = TruDiCriticCfg()
    """The Q critic."""
    algorithm: TruDiAlgorithmCfg = TruDiAlgorithmCfg()
    """The TruDi algorithm."""
    torch_compile_mode: str | None = TORCH_COMPILE_MODE
    """``torch.compile`` mode of TruDi's update (``None``: eager); see :data:`trudi.from_ppo.TORCH_COMPILE_MODE`.
    Typed wider than PPO's field: TruDi also takes the CUDA-graph modes (``trudi.algorithm.COMPILE_MODES``)."""


def trudi_cfg_from_ppo(ppo_cfg: RslRlOnPolicyRunnerCfg) -> TruDiOnPolicyRunnerCfg:
    """Derive a TruDi runner config from a task's PPO runner config, by the rule of :mod:`trudi.from_ppo`.

    Rollout length, iteration budget, observation groups (actor and critic inputs), discount and logging settings
    come from the PPO config; the networks and the other TruDi options keep their defaults. ``experiment_name`` gets
    a ``_trudi`` suffix so TruDi and PPO runs never share a log folder (or a ``--checkpoint latest``).
    """
    cfg = TruDiOnPolicyRunnerCfg()
    for name, value in runner_fields_from_ppo(ppo_cfg).items():
        setattr(cfg, name, value)
    for name, value in algorithm_fields_from_ppo(ppo_cfg).items():
        setattr(cfg.algorithm, name, value)
    return cfg
