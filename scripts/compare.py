"""Compare runs from their TensorBoard logs: ``Train/mean_reward`` against env steps and against wall-clock time.

    python scripts/compare.py logs/rsl_rl/hopper_trudi/2026-12-01_10-00-00 logs/rsl_rl/hopper_ppo/2026-12-01_11-00-00
    python scripts/compare.py RUN_DIR [RUN_DIR ...] --out reports/hopper

Reads the event files RSL-RL's runner writes into each run directory (TruDi and PPO runs alike; ours, Isaac Lab's
and mjlab's) and writes ``compare.png`` (one line per run, labelled by algorithm and run) and ``compare.md`` (per run:
the final mean reward, env steps, seconds, and the reward reached at the smallest of the runs' wall-clock budgets and
at the smallest env-step count, the equal-budget comparisons).

Env steps are iterations (as RSL-RL numbers them; a resumed run continues its checkpoint's count) times
``num_steps_per_env`` (``params/agent.yaml``) times the number of environments (``params/env.yaml``, else inferred
from ``Perf/total_fps`` and the iteration time). Wall-clock seconds are counted from the first event of the run
directory, written when training starts.
"""

from __future__ import annotations

import argparse
import glob
import math
import os
import statistics
from dataclasses import dataclass

import yaml

from trudi import cli
from trudi.checkpoint import atomic_write_text
from trudi.config import ConfigError

REWARD_TAG = "Train/mean_reward"
"""The tag plotted: the mean return of the episodes finished in the last 100 (RSL-RL's logger)."""


@dataclass
class Run:
    """One run's reward curve."""

    name: str
    """``<experiment>/<run directory>``."""
    algorithm: str
    """The algorithm class's name (``TruDi``, ``PPO``)."""
    iterations: int
    """Iterations logged."""
    steps: list[int]
    """Env steps at each logged reward."""
    seconds: list[float]
    """Wall-clock seconds at each logged reward."""
    rewards: list[float]
    """``Train/mean_reward`` values."""

    @property
    def label(self) -> str:
        """The legend entry: algorithm and run."""
        return f"{self.algorithm} {self.name}"


class _TolerantLoader(yaml.SafeLoader):
    """A safe YAML loader that reads Python-tagged nodes (Isaac Lab dumps tuples as ``!!python/tuple``) as data."""


def _construct_tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TolerantLoader.add_multi_constructor("", _construct_tagged)


def _read_yaml(path: str) -> dict:
    """A YAML mapping, or ``{}`` when the file is missing; a malformed file is a one-line error."""
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            data = yaml.load(file, Loader=_TolerantLoader)  # noqa: S506 (a safe loader with data-only constructors)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path!r} is invalid: not readable YAML ({' '.join(str(error).split())}).") from None
    return data if isinstance(data, dict) else {}


def _num_envs(env_cfg: dict) -> int | None:
    """``num_envs`` of an env config: top level (ours) or under ``scene`` (Isaac Lab, mjlab)."""
    for section in (env_cfg, env_cfg.get("scene")):
        value = section.get("num_envs") if isinstance(section, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _algorithm_name(agent_cfg: dict) -> str:
    """``trudi.rsl_rl:TruDi`` -> ``TruDi``, ``PPO`` -> ``PPO``."""
    algorithm = agent_cfg.get("algorithm")
    class_name = algorithm.get("class_name") if isinstance(algorithm, dict) else None
    if not isinstance(class_name, str) or not class_name:
        return "unknown algorithm"
    return class_name.replace(":", ".").rsplit(".", 1)[-1]


def _scalars(accumulator, tag: str) -> list:
    return accumulator.Scalars(tag) if tag in accumulator.Tags().get("scalars", []) else []


def _event_files(run_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(glob.escape(run_dir), "*tfevents*")))


def load_run(run_dir: str) -> Run:
    """Read one run directory's reward curve; a missing directory or one without rewards is a one-line error."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = os.path.normpath(run_dir)
    if not os.path.isdir(run_dir):
        raise ConfigError(f"run directory {run_dir!r} is invalid: no such directory.")
    if not _event_files(run_dir):
        runs = sorted(d for d in os.listdir(run_dir) if _event_files(os.path.join(run_dir, d)))
        hint = f"; it holds runs, pass one of them: {', '.join(runs[-3:])}" if runs else ""
        raise ConfigError(
            f"run directory {run_dir!r} is invalid: no TensorBoard event files (events.out.tfevents.*) in it{hint}."
        )
    accumulator = EventAccumulator(run_dir, size_guidance={"scalars": 0})  # 0: keep every point, not a sample
    accumulator.Reload()
    rewards = _scalars(accumulator, REWARD_TAG)
    if not rewards:
        raise ConfigError(
            f"run directory {run_dir!r} is invalid: no {REWARD_TAG} in its event files (no episode finished yet?)."
        )
    agent_cfg = _read_yaml(os.path.join(run_dir, "params", "agent.yaml"))
    env_cfg = _read_yaml(os.path.join(run_dir, "params", "env.yaml"))
    steps_per_iteration = _steps_per_iteration(run_dir, accumulator, agent_cfg, env_cfg)
    start = accumulator.FirstEventTimestamp()
    return Run(
        name=os.path.join(os.path.basename(os.path.dirname(run_dir)), os.path.basename(run_dir)),
        algorithm=_algorithm_name(agent_cfg),
        iterations=len(_scalars(accumulator, "Perf/total_fps")) or len(rewards),
        steps=[(event.step + 1) * steps_per_iteration for event in rewards],
        seconds=[event.wall_time - start for event in rewards],
        rewards=[event.value for event in rewards],
    )


def _steps_per_iteration(run_dir: str, accumulator, agent_cfg: dict, env_cfg: dict) -> int:
    """Env steps per iteration: ``num_steps_per_env * num_envs`` (times the GPUs), else measured from the logs."""
    fps = {event.step: event.value for event in _scalars(accumulator, "Perf/total_fps")}
    collection = {event.step: event.value for event in _scalars(accumulator, "Perf/collection_time")}
    learning = {event.step: event.value for event in _scalars(accumulator, "Perf/learning_time")}
    # RSL-RL logs fps = int(steps per iteration / iteration time), so this recovers the steps per iteration to within
    # one iteration time's worth of steps.
    measured = [fps[it] * (collection[it] + learning[it]) for it in fps if it in collection and it in learning]
    measured_steps = statistics.median(measured) if measured else None
    steps_per_env = agent_cfg.get("num_steps_per_env")
    num_envs = _num_envs(env_cfg)
    if isinstance(steps_per_env, int) and steps_per_env > 0 and num_envs is not None:
        per_rank = steps_per_env * num_envs
        # Only rank 0 logs under torchrun, but its fps counts the steps of every rank.
        world_size = round(measured_steps / per_rank) if measured_steps else 1
        return per_rank * max(world_size, 1)
    if measured_steps:
        if isinstance(steps_per_env, int) and steps_per_env > 0:
            return max(round(measured_steps / steps_per_env), 1) * steps_per_env
        return max(round(measured_steps), 1)
    raise ConfigError(
        f"run directory {run_dir!r} is invalid: cannot tell its env steps per iteration (no num_steps_per_env in"
        " params/agent.yaml with num_envs in params/env.yaml, and no Perf/total_fps in its event files)."
    )


def reward_at(run: Run, axis: str, budget: float) -> float | None:
    """The last mean reward logged at or before ``budget`` on ``axis`` (``"steps"`` or ``"seconds"``)."""
    reached = [reward for x, reward in zip(getattr(run, axis), run.rewards, strict=True) if x <= budget * (1 + 1e-9)]
    return reached[-1] if reached else None


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _cell(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2f}"


def table(runs: list[Run]) -> str:
    """The markdown comparison table, with the equal wall-clock and equal env-step budgets in its header."""
    seconds_budget = min(run.seconds[-1] for run in runs)
    steps_budget = min(run.steps[-1] for run in runs)
    at_seconds, at_steps = f"{_seconds(seconds_budget)} s", f"{steps_budget:,} steps"
    lines = [
        f"# {REWARD_TAG}",
        "",
        f"Equal budgets: the smallest wall-clock time of the runs ({at_seconds}) and the smallest env-step count"
        f" ({at_steps}); a run's reward there is the last one it logged by then (— : none logged yet).",
        "",
        "| run | algorithm | iterations | env steps | seconds | final mean reward"
        f" | reward at {at_seconds} | reward at {at_steps} |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.name} | {run.algorithm} | {run.iterations} | {run.steps[-1]:,} | {_seconds(run.seconds[-1])}"
            f" | {_cell(run.rewards[-1])} | {_cell(reward_at(run, 'seconds', seconds_budget))}"
            f" | {_cell(reward_at(run, 'steps', steps_budget))} |"
        )
    return "\n".join(lines) + "\n"


def plot(runs: list[Run], path: str) -> None:
    """Write the two panels, reward against env steps and against wall-clock seconds, to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_steps, by_time) = plt.subplots(1, 2, figsize=(13, 4.8))
    for run in runs:
        marker = "." if len(run.rewards) < 50 else None
        by_steps.plot(run.steps, run.rewards, marker=marker, label=run.label)
        by_time.plot(run.seconds, run.rewards, marker=marker, label=run.label)
    by_time.axvline(min(run.seconds[-1] for run in runs), color="grey", linestyle="--", linewidth=1)
    for axes, xlabel in ((by_steps, "env steps"), (by_time, "wall-clock seconds (dashed: equal budget)")):
        axes.set_xlabel(xlabel)
        axes.set_ylabel(REWARD_TAG)
        axes.grid(alpha=0.3)
    by_steps.set_title("against env steps")
    by_time.set_title("against wall-clock time")
    by_steps.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Read the runs, write ``compare.png`` and ``compare.md`` into ``--out``; returns their paths."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories holding event files")
    parser.add_argument("--out", default=".", help="directory for compare.png and compare.md (default: here)")
    args = parser.parse_args(argv)
    runs = [load_run(run_dir) for run_dir in args.run_dirs]
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ConfigError(f"--out={args.out!r} is invalid: a file, expected a directory.")
    os.makedirs(args.out, exist_ok=True)
    paths = {"png": os.path.join(args.out, "compare.png"), "md": os.path.join(args.out, "compare.md")}
    plot(runs, paths["png"])
    text = table(runs)
    atomic_write_text(paths["md"], text)
    print(text)
    print(f"[trudi] wrote {paths['png']} and {paths['md']}")
    return paths


if __name__ == "__main__":
    cli.run(main)
