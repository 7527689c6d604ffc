"""TruDi agent configs for mjlab's RSL-RL workflow (plain dataclasses, as mjlab's own ``mjlab.rl`` configs).

mjlab's ``train`` turns the agent config into a dict with ``dataclasses.asdict`` and hands it to an RSL-RL runner,
which resolves ``class_name`` strings such as ``"trudi.rsl_rl:TruDi"``. TruDi rejects keys its constructors do not
take, so these dataclasses hold exactly the constructor keywords, generated from the options declared in
:mod:`trudi.options` (``tests/mjlab/test_mjlab.py`` checks them against the constructors), and nothing of mjlab's
MLP model config (``cnn_cfg``, ``rnn_*``, ...).
Every field is reachable from mjlab's command line, e.g. ``--agent.algorithm.kl-bound 0.2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, make_dataclass

from mjlab.rl import RslRlBaseRunnerCfg, RslRlOnPolicyRunnerCfg

from trudi.from_ppo import TORCH_COMPILE_MODE, algorithm_fields_from_ppo, runner_fields_from_ppo
from trudi.options import ActorOptions, AlgorithmOptions, CriticOptions, Options, generated_doc, option_fields


def _options_dataclass(name: str, options: type[Options], class_name: str, doc: str) -> type:
    """A dataclass with ``class_name``, then one field per option of ``options`` at its default.

    The options and their meanings are declared once, in :mod:`trudi.options`; the class docstring lists them.
    """
    specs = [("class_name", "str", field(default=class_name))]
    specs += [(key, annotation, field(default=default)) for key, annotation, default, _ in option_fields(options)]
    return make_dataclass(name, specs, namespace={"__doc__": generated_doc(doc, options), "__module__": __name__})


TruDiActorCfg = _options_dataclass(
    "TruDiActorCfg",
    ActorOptions,
    "trudi.rsl_rl:DiffusionActor",
    "``trudi.rsl_rl:DiffusionActor``: the diffusion policy.",
)
TruDiCriticCfg = _options_dataclass(
    "TruDiCriticCfg", CriticOptions, "trudi.rsl_rl:QCritic", "``trudi.rsl_rl:QCritic``: the distributional Q critic."
)
TruDiAlgorithmCfg = _options_dataclass(
    "TruDiAlgorithmCfg",
    AlgorithmOptions,
    "trudi.rsl_rl:TruDi",
    "``trudi.rsl_rl:TruDi``: critic step, gated trust-region actor step, dual steps.",
)


@dataclass
class TruDiOnPolicyRunnerCfg(RslRlBaseRunnerCfg):
    """mjlab runner config with TruDi's algorithm, actor and critic; the runner fields are mjlab's."""

    actor: TruDiActorCfg = field(default_factory=TruDiActorCfg)
    """The diffusion actor."""
    critic: TruDiCriticCfg = field(default_factory=TruDiCriticCfg)
    """The Q critic."""
    algorithm: TruDiAlgorithmCfg = field(default_factory=TruDiAlgorithmCfg)
    """The TruDi algorithm."""
    torch_compile_mode: str | None = TORCH_COMPILE_MODE
    """``torch.compile`` mode of TruDi's update (``None``: eager), RSL-RL's runner-level key; see
    :data:`trudi.from_ppo.TORCH_COMPILE_MODE`. mjlab 1.6's runner config has no such field, so it is declared here:
    ``train`` hands the runner ``dataclasses.asdict`` of this config, where ``TruDi.construct_algorithm`` reads it."""


def trudi_cfg_from_ppo(
    ppo_cfg: RslRlOnPolicyRunnerCfg,
    actor: TruDiActorCfg | None = None,
    critic: TruDiCriticCfg | None = None,
    algorithm: TruDiAlgorithmCfg | None = None,
) -> TruDiOnPolicyRunnerCfg:
    """A TruDi runner config derived from a task's PPO runner config, by the rule of :mod:`trudi.from_ppo`.

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
    return TruDiOnPolicyRunnerCfg(
        **runner_fields_from_ppo(ppo_cfg),
        actor=actor or TruDiActorCfg(),
        critic=critic or TruDiCriticCfg(),
        algorithm=algorithm or TruDiAlgorithmCfg(**algorithm_fields_from_ppo(ppo_cfg)),
    )
