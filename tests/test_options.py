"""Every option of the algorithm, actor and critic refuses nan, inf, wrong types and out-of-range values.

The cases are generated from the constructor signatures, so an option added later is covered the day it is added:
its kind comes from its default's type, and an option whose kind cannot be told fails
``test_every_option_has_a_known_kind`` until it is declared here.
"""

from __future__ import annotations

import inspect
import math
import os

import pytest

from trudi.actor import DiffusionActor
from trudi.algorithm import TruDi
from trudi.config import ConfigError
from trudi.critic import QCritic
from trudi.envs import TwoModeBandit
from trudi.options import SECTIONS as SCHEMA_SECTIONS
from trudi.options import markdown_table

NUM_ENVS = 16
NUM_STEPS = 2  # batch of 32: the default num_mini_batches (32) is valid too

# Parameters that are wiring, not options a user sets in a config.
NOT_OPTIONS = {
    "self",
    "actor",
    "critic",
    "storage",
    "device",
    "multi_gpu_cfg",
    "obs",
    "obs_groups",
    "obs_set",
    "output_dim",
    "action_dim",
    "distribution_cfg",
    "rnd_cfg",
}
SECTIONS = {"algorithm": TruDi, "actor": DiffusionActor, "critic": QCritic}

# Number options for which a negative value is valid; every other one must refuse -1.
SIGNED = {"algorithm.entropy_target_mult", "critic.value_min", "critic.value_max"}
# Integer options for which 0 is valid; every other one must refuse it.
ZERO_ALLOWED = {"algorithm.critic_warmup_epochs", "algorithm.kl_backtrack_steps"}
# Out-of-range values beyond the generic ones (0 and -1 for integers, -1 for numbers): strict or upper bounds.
EXTRA_OUT_OF_RANGE: dict[str, list] = {
    "algorithm.learning_rate": [0.0],
    "algorithm.dual_learning_rate": [0.0],
    "algorithm.max_grad_norm": [0.0],
    "algorithm.gamma": [1.5],
    "algorithm.lam": [1.5],
    "algorithm.kl_bound": [0.0],
    "algorithm.init_entropy_coef": [0.0],
    "algorithm.init_kl_multiplier": [0.0],
    "algorithm.auto_support_margin": [0.5],
    "algorithm.clipped_target_warning": [1.5],
    "algorithm.grad_reduce_bucket_mb": [0.0],
    "algorithm.num_mini_batches": [NUM_ENVS * NUM_STEPS + 1],
    "actor.init_std": [0.0],
    "actor.init_friction": [0.0],
    "actor.action_scale": [0.0],
    "critic.num_bins": [1],
    "critic.hl_gauss_sigma": [0.0],
    "critic.value_min": [20.0],  # above the default value_max
    "critic.value_max": [-20.0],  # below the default value_min
}

NAN, INF = float("nan"), float("inf")
# Per kind: nan, inf, wrong types, and the generic out-of-range values.
BAD_VALUES = {
    "float": [NAN, INF, -INF, "0.5", True, None, [1.0]],
    "int": [NAN, INF, "4", 2.5, 2.0, True, None, 0, -1],
    "bool": [NAN, INF, "yes", "true", 1, 0, None],
    "choice": [NAN, INF, "no-such-choice", "", 1, None],
    "sequence": [NAN, INF, "256", 256, None, [], [0], [-16], [16, 2.5], [16, NAN], [16, INF], [True]],
}


def option_kind(default) -> str | None:
    """The kind of an option, told by its default's type; ``None`` when it cannot be told."""
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "choice"
    if isinstance(default, list | tuple):
        return "sequence"
    return None


def options() -> list[tuple[str, str, object]]:
    """``(section, name, default)`` of every option of the three constructors, from their signatures."""
    found = []
    for section, cls in SECTIONS.items():
        for name, parameter in inspect.signature(cls.__init__).parameters.items():
            if name not in NOT_OPTIONS and parameter.kind is not inspect.Parameter.VAR_KEYWORD:
                found.append((section, name, parameter.default))
    return found


def bad_values(field: str, kind: str) -> list:
    values = list(BAD_VALUES[kind])
    if kind == "float" and field not in SIGNED:
        values.append(-1.0)
    if field in ZERO_ALLOWED:
        values.remove(0)
    return values + EXTRA_OUT_OF_RANGE.get(field, [])


CASES = [
    (section, name, value)
    for section, name, default in options()
    if option_kind(default) is not None
    for value in bad_values(f"{section}.{name}", option_kind(default))
]


@pytest.fixture(scope="module")
def env() -> TwoModeBandit:
    return TwoModeBandit(num_envs=NUM_ENVS)


def tiny_cfg() -> dict:
    """A valid train config with small networks; every option left out takes its default."""
    return {
        "num_steps_per_env": NUM_STEPS,
        "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "multi_gpu": None,
        "algorithm": {"class_name": "trudi.rsl_rl:TruDi", "num_mini_batches": 2},
        "actor": {"class_name": "trudi.rsl_rl:DiffusionActor", "hidden_dims": [8], "num_denoising_steps": 2},
        "critic": {"class_name": "trudi.rsl_rl:QCritic", "hidden_dim": 8, "num_bins": 11},
    }


def construct(env: TwoModeBandit, cfg: dict) -> TruDi:
    return TruDi.construct_algorithm(env.get_observations(), env, cfg, "cpu")


def test_options_are_found():
    names = {f"{section}.{name}" for section, name, _ in options()}
    assert {"algorithm.kl_bound", "algorithm.grad_reduce_bucket_mb", "actor.ode_control_scale"} <= names
    assert {"actor.hidden_dims", "critic.hl_gauss_sigma", "critic.value_min"} <= names
    assert not names & {f"{section}.{name}" for section in SECTIONS for name in NOT_OPTIONS}


def test_every_option_has_a_known_kind():
    unknown = [f"{section}.{name}={default!r}" for section, name, default in options() if option_kind(default) is None]
    assert not unknown, f"options whose kind the test cannot tell from the default (declare them here): {unknown}"


def test_declared_ranges_name_existing_options():
    names = {f"{section}.{name}" for section, name, _ in options()}
    assert set(EXTRA_OUT_OF_RANGE) | SIGNED <= names


def test_every_option_accepts_its_default(env):
    cfg = tiny_cfg()
    for section, name, default in options():
        cfg[section][name] = default
    assert isinstance(construct(env, cfg), TruDi)


@pytest.mark.parametrize(
    ("section", "name", "value"), CASES, ids=[f"{section}.{name}={value!r:.20}" for section, name, value in CASES]
)
def test_bad_value_is_refused_with_one_line_naming_the_option(env, section, name, value):
    cfg = tiny_cfg()
    cfg[section][name] = value
    with pytest.raises(ConfigError) as info:
        construct(env, cfg)
    message = str(info.value)
    assert "\n" not in message, f"error message spans several lines:\n{message}"
    assert f"{section}.{name}=" in message, message
    if isinstance(value, float) and not math.isfinite(value):
        assert f"{section}.{name}={value!r}" in message, message


@pytest.mark.parametrize("options", SCHEMA_SECTIONS, ids=lambda options: options.section)
def test_docs_option_tables_are_the_declared_options(options):
    # docs/algorithm.md §2 holds the tables `python -m trudi.options` prints from the one declaration.
    with open(os.path.join(os.path.dirname(__file__), "..", "docs", "algorithm.md"), encoding="utf-8") as file:
        assert markdown_table(options) in file.read(), "regenerate the table with: python -m trudi.options"
