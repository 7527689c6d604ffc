"""TruDi agent configs for Isaac Lab's RSL-RL workflow, generated from the options declared in :mod:`trudi.options`.

``TruDiOnPolicyRunnerCfg`` is an ``RslRlOnPolicyRunnerCfg`` (runner ``class_name`` stays ``"OnPolicyRunner"``, the
only runner Isaac Lab's RL entry points build); TruDi enters through the algorithm and model ``class_name`` strings,
which rsl-rl-lib >= 5 resolves as ``"module:Class"``.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING

from isaaclab.utils import configclass
from isaaclab_rl.rsl_rl import RslRlMLPModelCfg, RslRlOnPolicyRunnerCfg

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
    come from the PPO config; the networks and TruDi options keep their SPEC defaults, except that ``torch_compile``
    is on (below). ``experiment_name`` gets a ``_trudi`` suffix so TruDi and PPO runs never share a log folder (or a
    ``--checkpoint latest``).
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
    # Isaac Lab runs are long (hundreds to thousands of iterations) at a fixed env count, so the one-off compile of the
    # first iteration (about 20 s with a warm inductor cache, 1.5 min cold, on the 2-core CPU) pays for itself: the
    # compiled update is 1.3x faster on Isaac-Ant at 256 envs (docs/results/speed.md). It computes the same update
    # (tests/test_compile.py).
    cfg.algorithm.torch_compile = True
    return cfg


def _is_missing(value: object) -> bool:
    # configclass deep-copies defaults, so an unset field holds a copy of MISSING rather than MISSING itself.
    return isinstance(value, type(MISSING))
