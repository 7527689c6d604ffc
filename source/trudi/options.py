"""Every TruDi option, declared once: name, type, default, allowed values and meaning (docs/algorithm.md §2).

Each section of a train config has a frozen dataclass here, with a docstring under every field (the way Isaac Lab
documents its configs). Everything else is derived from these classes:

- the constructors of :class:`~trudi.algorithm.TruDi`, :class:`~trudi.actor.DiffusionActor` and
  :class:`~trudi.critic.QCritic` take the options as keywords (:func:`takes_options` writes them into their
  signatures), validate them with :meth:`Options.validated` and read them as typed fields (``self.cfg.kl_bound``);
- each option's own values are checked by its declaration's ``check``, and rules that tie options together by the
  section's :meth:`Options.check_combination`;
- the Isaac Lab ``@configclass`` configs (``trudi_isaaclab.agents``) and the mjlab dataclasses
  (``trudi_mjlab.agents``) are generated from them with :func:`option_fields`;
- the option tables of docs/algorithm.md are printed by ``python -m trudi.options`` (``tests/test_options.py``
  checks that the document holds exactly that).

Adding an option is one field here; the code then reads it from the validated options object.
"""

from __future__ import annotations

import ast
import inspect
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from functools import cache, partial
from typing import Any, TypeVar

from trudi.config import ConfigError, check_bool, check_choice, check_dims, check_float, check_int, fail_unknown_key
from trudi.sampler import SCHEDULES

TRUST_REGION_MODES = ("gate", "penalty", "none")
"""``gate``: per-state switch between objective and KL penalty (default); ``penalty``: objective + KL penalty
everywhere; ``none``: no trust region (ablation)."""
KL_MODES = ("full", "mean")
"""``full``: closed-form Gaussian KL per step (default). ``mean``: only the mean term, as in the reference."""
KL_DIRECTIONS = ("forward", "reverse")
"""``forward``: ``KL(old || new)`` on K old-policy chains per state (default). ``reverse``: ``KL(new || old)`` on the
actor loss's own new-policy chain, which costs N old-network passes per state instead of 2 K N."""
KL_CHAINS = ("mini_batch", "update", "rollout")
"""Where the forward KL's old-policy chains come from. ``mini_batch``: ``K`` fresh chains per state in every
mini-batch (SPEC). ``update``: ``K`` chains per state sampled once per update and reused by every epoch (the old policy
is frozen during an update, so they have the same distribution, but the epochs' estimates are correlated).
``rollout``: the chain that produced the stored action, kept by the rollout (the actor equals the old policy while it
collects, so it is an old-policy sample; ``K = 1``, no extra passes)."""
KL_BOUND_RULES = ("fixed", "progress", "critic_fit")
"""How each update's bound is set. ``fixed``: ``kl_bound`` every update (SPEC). ``progress`` (default): starts at
``kl_bound``, widened after a rollout whose mean reward per step rose since the previous rollout and narrowed after
one where it did not, within ``[kl_bound_min, kl_bound_max]``. ``critic_fit``: from ``kl_bound_min`` up to ``kl_bound``
as the critic explains more of the variance of the update's fresh returns."""
ENTROPY_TARGET_REFERENCES = ("initial", "zero")
"""``H_ref`` of the entropy target ``H_ref - c_H d``: the initial policy's estimate, or 0 (SPEC)."""
MIXED_PRECISION_MODES = ("none", "bf16")
"""``none``: float32 everywhere; ``bf16``: network passes under bfloat16 autocast."""
AUTO_SUPPORT = "auto"
"""The value of ``critic.value_min`` and ``critic.value_max`` that sets the support from a warm-up rollout."""


def option(default: Any, check: Callable[[str, Any], Any] | None, symbol: str = "—") -> Any:
    """A dataclass field with its default, the check of its values and the symbol docs/algorithm.md gives it.

    ``check(field_name, value)`` returns the value to use or raises a one-line
    :class:`~trudi.config.ConfigError`; ``None`` leaves the value to the section's
    :meth:`Options.check_combination`, for options whose rule involves another option.
    """
    return field(default=default, metadata={"check": check, "symbol": symbol})


def positive(field_name: str, value: Any) -> float:
    """A finite float > 0."""
    return check_float(field_name, value, minimum=0.0, strict_minimum=True)


def non_negative(field_name: str, value: Any) -> float:
    """A finite float >= 0."""
    return check_float(field_name, value, minimum=0.0)


def fraction(field_name: str, value: Any) -> float:
    """A float in [0, 1]."""
    return check_float(field_name, value, minimum=0.0, maximum=1.0)


def above_one(field_name: str, value: Any) -> float:
    """A finite float > 1."""
    return check_float(field_name, value, minimum=1.0, strict_minimum=True)


def at_least(minimum: int) -> Callable[[str, Any], int]:
    """An int >= ``minimum``."""
    return partial(check_int, minimum=minimum)


def one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    """One of ``choices``."""
    return partial(check_choice, choices=choices)


OptionsT = TypeVar("OptionsT", bound="Options")


@dataclass(frozen=True, kw_only=True)
class Options:
    """A config section's options; subclasses declare them."""

    section = ""
    """The config section (``algorithm``, ``actor``, ``critic``): the prefix of error messages."""

    @classmethod
    def validated(cls: type[OptionsT], values: dict[str, Any], section: str | None = None) -> OptionsT:
        """The options in ``values`` (the others at their defaults), each checked; a bad one raises one line.

        Args:
            values: Keyword arguments of the constructor (the section of a train config).
            section: Prefix of the error messages, when it is not :attr:`section` (the actor's is its ``obs_set``).
        """
        section = section or cls.section
        known = {f.name: f for f in fields(cls)}
        for key, value in values.items():
            if key not in known:
                fail_unknown_key(section, key, value, known, cls.__name__)
        checked = {}
        for name, value in values.items():
            check = known[name].metadata["check"]
            checked[name] = value if check is None else check(f"{section}.{name}", value)
        options = cls(**checked)
        options.check_combination(section)
        return options

    def check_combination(self, section: str) -> None:
        """Raise a one-line :class:`~trudi.config.ConfigError` if options that depend on each other disagree.

        Args:
            section: Prefix of the error messages.
        """


def takes_options(options: type[Options]) -> Callable[[Callable], Callable]:
    """Give a constructor that takes ``**options`` a signature listing every option as a keyword with its default.

    ``inspect.signature`` then shows what the constructor accepts, as if each option were written out; RSL-RL,
    the config checks and the tests read the options from there.
    """

    def decorate(init: Callable) -> Callable:
        signature = inspect.signature(init)
        params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        params += [
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
            for f in fields(options)
        ]
        init.__signature__ = signature.replace(parameters=params)
        return init

    return decorate


@cache
def field_docs(options: type[Options]) -> dict[str, str]:
    """The docstring under each field of ``options``, read from its source (as Sphinx reads attribute docs)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(options)))
    body = tree.body[0].body
    docs = {}
    for statement, following in zip(body, body[1:], strict=False):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                docs[statement.target.id] = " ".join(str(following.value.value).split())
    return docs


def option_fields(options: type[Options]) -> list[tuple[str, str, Any, str]]:
    """``(name, annotation, default, meaning)`` of every option, for the extensions' generated configs."""
    docs = field_docs(options)
    return [(f.name, f.type, f.default, docs[f.name]) for f in fields(options)]


def generated_doc(summary: str, options: type[Options]) -> str:
    """The docstring of a config class generated from ``options``: ``summary``, then each option and its meaning."""
    lines = [f"- ``{name}`` ({default!r}): {meaning}" for name, _, default, meaning in option_fields(options)]
    return f"{summary}\n\nOptions (declared in :class:`{options.__module__}.{options.__name__}`):\n\n" + "\n".join(
        lines
    )


# ---------------------------------------------------------------------------------------------------------------------
# the three sections


@dataclass(frozen=True, kw_only=True)
class AlgorithmOptions(Options):
    """``algorithm.*``: :class:`~trudi.algorithm.TruDi` (``class_name: trudi.rsl_rl:TruDi``)."""

    section = "algorithm"

    num_learning_epochs: int = option(2, at_least(1), "epochs")
    """passes over each rollout"""
    num_mini_batches: int = option(32, at_least(1), "minibatches")
    """mini-batches per epoch (≤ num_envs·num_steps_per_env)"""
    critic_warmup_epochs: int = option(0, at_least(0))
    """critic-only passes over each rollout before the `num_learning_epochs` joint ones, so that the actor's first
    steps climb a critic already fitted to this rollout's returns (§1.10)"""
    learning_rate: float = option(3e-4, positive, "lr")
    """Adam learning rate of the actor and the critic (constant)"""
    dual_learning_rate: float = option(0.01, positive)
    """Adam learning rate of $\\log\\alpha$ and $\\log\\lambda$: about this much change per step while the constraint
    is violated, so S steps can move a dual by a factor $e^{0.01 S}$ (§1.4)"""
    max_grad_norm: float = option(0.5, positive, "grad clip")
    """gradient-norm clip, applied separately to the actor step and the critic step"""
    gamma: float = option(0.99, fraction, "γ")
    """discount"""
    lam: float = option(0.95, fraction, "λ (returns)")
    """λ of the λ-returns"""
    trust_region: str = option("gate", one_of(TRUST_REGION_MODES))
    """`gate` / `penalty` / `none` (§1.3)"""
    kl_bound: float = option(0.1, positive, "ε")
    """per-state bound on the trajectory KL (SPEC 0.1): with `kl_bound_rule: progress` (default), the first update's
    bound; with `fixed`, every update's; with `critic_fit`, the bound of an update whose critic explains all of the
    fresh returns' variance"""
    kl_bound_rule: str = option("progress", one_of(KL_BOUND_RULES))
    """`progress` (default): each update's bound is the last one times `kl_bound_growth` if the rollout's mean reward
    per step rose since the previous rollout, divided by it if it did not (an equal reward is no progress), within
    [`kl_bound_min`, `kl_bound_max`], widened to include `kl_bound` if it lies outside (§1.2); `fixed`: `kl_bound`
    every update (SPEC); `critic_fit`: each update's bound grows from `kl_bound_min` to `kl_bound` with the square of
    the critic's explained variance of that update's fresh λ-returns, measured before it trains on them (§1.2;
    measured not to pay at this project's CPU budgets)"""
    kl_bound_min: float = option(0.01, positive, "ε_min")
    """the smallest bound of `progress` and `critic_fit` (`critic_fit`: ≤ `kl_bound`)"""
    kl_bound_max: float = option(0.1, positive, "ε_max")
    """the largest bound of `progress` (≥ `kl_bound`; SPEC's 0.1)"""
    kl_bound_growth: float = option(1.25, above_one)
    """the factor by which `progress` widens or narrows the bound per update"""
    kl_backtrack_steps: int = option(0, at_least(0))
    """after the last mini-batch, halve the actor's whole update toward the policy that collected the rollout up to
    this many times, until the realised mean trajectory KL (`trust_region/kl_realised_mean`) is within the bound;
    an update still over it after them is undone. 0: off (SPEC: the gate alone)"""
    kl_samples: int = option(1, at_least(1), "K")
    """old-policy chains per state (must be 1 with `kl_chains: rollout`)"""
    kl_mode: str = option("full", one_of(KL_MODES), "kl_mode")
    """`full` closed-form KL or `mean` term only"""
    kl_direction: str = option("forward", one_of(KL_DIRECTIONS))
    """`forward` KL(old‖new) on K old chains, or `reverse` KL(new‖old) on the loss's own chain (§1.2)"""
    kl_chains: str = option("update", one_of(KL_CHAINS))
    """old chains of the forward KL: K per state sampled once per update (`update`), the rollout's own (`rollout`)
    or K fresh per mini-batch (`mini_batch`, SPEC) (§1.2)"""
    sarsa_bootstrap: bool = option(True, check_bool)
    """the chain sampled at $s'$ for $V'$ and the bonus is also the next action (§1.7)"""
    gate_aware_backward: bool = option(False, check_bool)
    """build the forward KL's graph only at the states whose loss reads it (over the bound with `gate`), after a
    graph-free pass picks them: same loss and gradient; one host sync per mini-batch; eager mode only (ignored when
    the runner's `torch_compile_mode` compiles the update). Measured not to pay at `kl_bound` 0.1, where about 40% of
    states are over the bound (docs/algorithm.md §7)"""
    mixed_precision: str = option("none", one_of(MIXED_PRECISION_MODES))
    """`none` (float32) or `bf16`: rollout and update network passes under bfloat16 autocast; networks return
    float32, so the chain, KL, losses and optimizer stay float32"""
    init_entropy_coef: float = option(0.01, positive, "α₀")
    """initial temperature"""
    learn_entropy_coef: bool = option(True, check_bool)
    """adapt α by dual ascent"""
    entropy_coef_floor: float = option(0.0, non_negative, "α_min")
    """lower bound of α, kept by projecting $\\log\\alpha$ after each dual step (0: none). With the entropy above an
    unreachable target, the log-form dual step lowers α by a constant factor per step without end (§1.4)"""
    entropy_target_mult: float = option(4.0, check_float, "c_H")
    """target entropy $H_{ref} - c_H d$"""
    entropy_target_reference: str = option("initial", one_of(ENTROPY_TARGET_REFERENCES))
    """$H_{ref}$: the initial policy's entropy estimate (`initial`) or 0 (`zero`, SPEC) (§1.4)"""
    init_kl_multiplier: float = option(0.01, positive, "λ₀")
    """initial KL multiplier"""
    learn_kl_multiplier: bool = option(True, check_bool)
    """adapt λ by dual ascent"""
    aux_loss_coef: float = option(1.0, non_negative, "aux weight")
    """weight of the self-predictive loss"""
    reward_normalization: bool = option(True, check_bool)
    """divide rewards by the running RMS of the discounted return (§1.5)"""
    auto_support_margin: float = option(2.0, partial(check_float, minimum=1.0))
    """widening factor of the `auto` critic support (≥ 1)"""
    clipped_target_warning: float = option(0.05, fraction)
    """warn once when this fraction of targets falls outside the support"""
    grad_reduce_bucket_mb: float = option(25.0, positive)
    """bucket size of the multi-GPU gradient all-reduce"""

    def check_combination(self, section: str) -> None:
        """``kl_chains: rollout`` keeps one chain per state; ``critic_fit`` runs from ``kl_bound_min`` up."""
        if self.kl_chains == "rollout" and self.kl_samples != 1:
            raise ConfigError(
                f"{section}.kl_samples={self.kl_samples!r} is invalid with {section}.kl_chains='rollout': the rollout"
                " keeps one chain per state; use 1, or kl_chains 'update' or 'mini_batch' for more."
            )
        if self.kl_bound_rule == "critic_fit" and self.kl_bound_min > self.kl_bound:
            raise ConfigError(
                f"{section}.kl_bound_min={self.kl_bound_min!r} is invalid with {section}.kl_bound={self.kl_bound!r}:"
                " the critic_fit bound runs from kl_bound_min up to kl_bound; use a value <= kl_bound, or"
                " kl_bound_rule 'fixed'."
            )

    @property
    def stores_old_chains(self) -> bool:
        """Whether the forward KL's old chains are kept in the storage (``update``, ``rollout``), not re-sampled."""
        return self.kl_direction == "forward" and self.kl_chains != "mini_batch"

    @property
    def keeps_rollout_chains(self) -> bool:
        """Whether the rollout keeps the chain behind each action as the forward KL's old chain."""
        return self.stores_old_chains and self.kl_chains == "rollout"


@dataclass(frozen=True, kw_only=True)
class ActorOptions(Options):
    """``actor.*``: :class:`~trudi.actor.DiffusionActor` (``class_name: trudi.rsl_rl:DiffusionActor``, required)."""

    section = "actor"

    hidden_dims: tuple[int, ...] = option(
        (256, 256, 256), lambda name, value: tuple(check_dims(name, value)), "4 layers × 256"
    )
    """hidden widths of the control MLP (plus the output layer)"""
    activation: str = option("gelu", one_of(("gelu",)))
    """only `gelu` is allowed"""
    obs_normalization: bool = option(True, check_bool)
    """running observation normalisation"""
    num_denoising_steps: int = option(8, at_least(1), "N")
    """denoising steps"""
    init_std: float = option(0.5, positive, "σ₀")
    """prior std (fixed); the untrained policy's actions are $\\tanh$ of this spread (SPEC 2.5: near ±1, §1.1)"""
    schedule: str = option("cosine", one_of(SCHEDULES), "sched")
    """`cosine` / `linear` / `constant`"""
    learn_friction: bool = option(True, check_bool, "γ learned")
    """train the per-dimension friction"""
    init_friction: float = option(1.0, positive, "γ init")
    """initial friction"""
    learn_dt: bool = option(False, check_bool, "learn dt")
    """train the step size(s)"""
    per_step_dt: bool = option(False, check_bool, "per-step dt")
    """one raw step size per step instead of a scalar (trained only with `learn_dt`)"""
    # A negative scale would push the deterministic chain against the learned control: no meaning, so refused.
    ode_control_scale: float = option(1.0, non_negative, "c")
    """control scale in the ODE sampler (≥ 0; 0 is the uncontrolled prior drift)"""
    action_scale: float = option(1.0, positive, "action scale")
    """factor on $\\tanh(x_N)$ for the environment"""
    time_frequencies: int = option(32, at_least(1))
    """Fourier frequencies of the step embedding"""
    time_embedding_dim: int = option(16, at_least(1))
    """width of the step embedding"""


@dataclass(frozen=True, kw_only=True)
class CriticOptions(Options):
    """``critic.*``: :class:`~trudi.critic.QCritic` (``class_name: trudi.rsl_rl:QCritic``, section optional)."""

    section = "critic"

    hidden_dim: int = option(512, at_least(1), "512")
    """width of the encoder, head and predictor"""
    num_layers: int = option(2, at_least(1), "2 layers")
    """encoder blocks (Linear + RMSNorm + SiLU)"""
    num_bins: int = option(151, at_least(2), "B")
    """atoms of the value distribution"""
    value_min: float | str = option(-10.0, None, "vmin")
    """lower end of the support (normalised unit, §1.5), or `"auto"` (with `value_max`)"""
    value_max: float | str = option(10.0, None, "vmax")
    """upper end of the support (normalised unit, §1.5), or `"auto"` (with `value_min`)"""
    hl_gauss_sigma: float = option(0.75, positive, "σ (bins)")
    """HL-Gauss width in bin widths"""
    obs_normalization: bool = option(True, check_bool)
    """running observation normalisation"""

    def check_combination(self, section: str) -> None:
        """The support: both ends ``auto``, or two finite numbers in increasing order."""
        ends = {"value_min": self.value_min, "value_max": self.value_max}
        auto = [value == AUTO_SUPPORT for value in ends.values()]
        if any(auto) and not all(auto):
            raise ConfigError(
                f"{section}.value_min={self.value_min!r}, {section}.value_max={self.value_max!r} are invalid: set both"
                f" to '{AUTO_SUPPORT}' or both to numbers."
            )
        if all(auto):
            return
        for name, value in ends.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ConfigError(
                    f"{section}.{name}={value!r} is invalid: must be a finite number, or '{AUTO_SUPPORT}' for both"
                    f" {section}.value_min and {section}.value_max."
                )
        if not self.value_min < self.value_max:
            raise ConfigError(
                f"{section}.value_min={self.value_min!r} is invalid: must be below"
                f" {section}.value_max={self.value_max!r}."
            )

    @property
    def auto_support(self) -> bool:
        """Whether the support is set from a warm-up rollout."""
        return self.value_min == AUTO_SUPPORT


SECTIONS: tuple[type[Options], ...] = (AlgorithmOptions, ActorOptions, CriticOptions)
"""The option sections, in the order docs/algorithm.md lists them."""


# ---------------------------------------------------------------------------------------------------------------------
# the option tables of docs/algorithm.md


def _markdown_default(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, tuple):
        return f"({', '.join(map(str, value))})"
    return repr(value)


def markdown_table(options: type[Options]) -> str:
    """The option table of one section: key, default, SPEC symbol, meaning."""
    docs = field_docs(options)
    rows = ["| key | default | SPEC | meaning |", "|---|---|---|---|"]
    for f in fields(options):
        rows.append(f"| `{f.name}` | {_markdown_default(f.default)} | {f.metadata['symbol']} | {docs[f.name]} |")
    return "\n".join(rows)


if __name__ == "__main__":
    for section in SECTIONS:
        print(f"{section.__doc__}\n\n{markdown_table(section)}\n")
