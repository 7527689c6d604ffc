"""TruDi vs RSL-RL PPO learning curves: same runner, same envs, same env-step budget, deterministic evaluation.

    python benchmarks/learning.py --suite gym --algos trudi ppo --seeds 3 --env-steps 300000
    python benchmarks/learning.py --suite isaaclab --env-steps 2000000        # in the Isaac Lab venv
    python benchmarks/learning.py --suite gym --report-only                   # tables and plots from saved runs
    python benchmarks/learning.py --suite smoke --algos trudi --out docs/results/ablations/inverted_pendulum \
        --variant N4 agent.actor.num_denoising_steps=4 --variant eval-SDE eval_sampler=sde     # TruDi variants

A ``--variant LABEL [agent.key=value ...]`` runs TruDi with those overrides under the name ``trudi[LABEL]``;
the token ``eval_sampler=sde`` evaluates the stochastic (SDE) policy instead of the deterministic one.

``--equal-wall-clock`` runs PPO again for each (task, seed) with a budget of seconds instead of env steps: the
training wall-clock of that seed's finished TruDi run. These runs are named ``ppo[equal-wall-clock]``; the report
then gives both algorithms' return at TruDi's wall-clock, and the plots show every run against env steps and
against seconds (users decide by the second).

Each (task, algo, seed) trains in its own process, evaluates the deterministic policy every ``--eval-every``
env steps and saves a checkpoint and its curve after each evaluation. A run that was cut off resumes from its
last checkpoint, so a suite can be completed over several sittings. Checkpoints are not committed: a run whose
committed curve already reaches the budget is skipped, and one that would need its missing checkpoint stops with a
message instead of overwriting its curve. Written under ``--out`` (default
``docs/results/learning/<suite>``): ``runs/<task>_<algo>_s<seed>/curve.json`` (and ``model.pt``, not committed),
``curves.csv``, ``summary.json``, ``summary.md`` and ``curves.png``.

Isaac Lab tasks evaluate on the training environments (one simulation per process), so their evaluation episodes
interrupt the training episodes in flight; the embedded tasks evaluate on a separate environment.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import subprocess
import sys
import time
from datetime import date

from report import cpu_name, write_json, write_markdown

from trudi.checkpoint import atomic_write_text

SUITES = {
    "smoke": ["InvertedPendulum-v5"],
    "gym": ["Hopper-v5", "HalfCheetah-v5", "Ant-v5", "Humanoid-v5"],
    "isaaclab": ["Isaac-Cartpole", "Isaac-Ant", "Isaac-Humanoid"],
}
"""Task lists; ``isaaclab`` needs Isaac Lab 3 (and ISAACSIM_ASSET_ROOT, see scripts/offline_assets.py)."""

RESULTS_ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results", "learning")


def run_name(task: str, label: str, seed: int) -> str:
    """Folder name of one (task, algo or variant, seed) run."""
    return f"{task}_{label}_s{seed}"


# ---------------------------------------------------------------------------------------------------------------------
# one run (child process)


def _embedded_setup(stack: contextlib.ExitStack, args: argparse.Namespace, overrides: list[str]):
    """The train config, a training env and an evaluation env of an embedded task; ``stack`` closes the envs."""
    from trudi.tasks import get_task, train_cfg
    from trudi.workflow import merge_agent_cfg, seed_everything

    task, algo, seed = args.task, args.algos[0], args.seed
    embedded = get_task(task)
    cfg = merge_agent_cfg(train_cfg(task, algo), None, overrides)
    cfg["seed"] = seed
    seed_everything(seed)
    num_envs = args.num_envs or embedded.num_envs
    train_env = embedded.make_env(num_envs, seed, args.device)
    eval_env = embedded.make_env(num_envs, seed + 10_000, args.device)
    stack.callback(train_env.close)
    stack.callback(eval_env.close)
    return cfg, train_env, eval_env


def _isaaclab_setup(stack: contextlib.ExitStack, args: argparse.Namespace, overrides: list[str]):
    """The train config and the env (trained and evaluated on) of an Isaac Lab task, inside ``stack``."""
    from trudi_isaaclab.workflow import isaaclab_env

    env_context = isaaclab_env(args.task, args.algos[0], overrides, args.device, args.num_envs, args.seed)
    env, agent_cfg = stack.enter_context(env_context)
    return agent_cfg.to_dict(), env, env


def train_one(args: argparse.Namespace) -> None:
    """Train one (task, algo, seed) up to ``--env-steps``, resuming from ``run_dir`` when it holds a checkpoint."""
    task, algo, seed = args.task, args.algos[0], args.seed
    overrides = [token for token in args.overrides if not token.startswith("eval_sampler=")]
    stochastic_eval = "eval_sampler=sde" in args.overrides
    label = f"{algo}[{args.label}]" if args.label else algo
    run_dir = os.path.join(args.out, "runs", run_name(task, label, seed))
    os.makedirs(run_dir, exist_ok=True)
    curve_path, model_path = os.path.join(run_dir, "curve.json"), os.path.join(run_dir, "model.pt")
    if os.path.isfile(curve_path) and not os.path.isfile(model_path):
        # Checkpoints are not committed: a committed curve is kept when complete, never overwritten by a restart.
        with open(curve_path) as file:
            last = json.load(file)["points"][-1]
        reached = last["env_steps"]
        if (last["wall_s"] >= args.wall_budget) if args.wall_budget else (reached >= args.env_steps):
            print(f"[learning] {run_dir}: complete ({reached} env steps), nothing to do")
            return
        raise SystemExit(
            f"[learning] {run_dir} has a curve up to {reached} env steps but no model.pt to resume from; move the"
            " folder away to retrain it from scratch, or pass an --env-steps it has already reached."
        )
    with contextlib.ExitStack() as stack:
        setup = _embedded_setup if not task.startswith("Isaac") else _isaaclab_setup
        cfg, train_env, eval_env = setup(stack, args, overrides)
        _train(args, task, label, seed, run_dir, stochastic_eval, cfg, train_env, eval_env)


def _train(args, task, label, seed, run_dir, stochastic_eval, cfg, train_env, eval_env) -> None:
    """The training loop of :func:`train_one`, with its evaluations and checkpoints."""
    from trudi.rsl_rl import OnPolicyRunner
    from trudi.workflow import evaluate

    curve_path, model_path = os.path.join(run_dir, "curve.json"), os.path.join(run_dir, "model.pt")
    runner = OnPolicyRunner(train_env, cfg, log_dir=None, device=args.device)
    steps_per_iteration = train_env.num_envs * cfg["num_steps_per_env"]
    iterations_per_eval = max(1, round(args.eval_every / steps_per_iteration))
    total_iterations = math.ceil(args.env_steps / steps_per_iteration)
    wall_budget = args.wall_budget  # seconds; when set, the run stops at it instead of at the env-step budget

    curve = {"task": task, "algo": label, "seed": seed, "num_envs": train_env.num_envs, "points": []}
    curve["overrides"] = args.overrides

    def eval_policy():
        policy = runner.get_inference_policy()
        return (lambda obs: policy(obs, stochastic_output=True)) if stochastic_eval else policy

    def evaluation_point(iteration: int, wall: float) -> dict:
        mean, std, length = evaluate(eval_policy(), eval_env, args.eval_episodes)
        return {
            "iteration": iteration,
            "env_steps": iteration * steps_per_iteration,
            "wall_s": wall,
            "return_mean": mean,
            "return_std": std,
            "length_mean": length,
        }

    if os.path.isfile(model_path) and os.path.isfile(curve_path):
        runner.load(model_path, map_location=args.device)
        with open(curve_path) as file:
            curve = json.load(file)
        print(f"[learning] {run_dir}: resuming after {curve['points'][-1]['iteration']} iterations", flush=True)
    else:
        curve["points"].append(evaluation_point(0, 0.0))

    # Count iterations here: RSL-RL's current_learning_iteration ends each learn() call at its last iteration, one
    # short of the number run, and the next call starts there.
    iteration, wall = curve["points"][-1]["iteration"], curve["points"][-1]["wall_s"]
    while (wall < wall_budget) if wall_budget else (iteration < total_iterations):
        chunk = iterations_per_eval if wall_budget else min(iterations_per_eval, total_iterations - iteration)
        start = time.perf_counter()
        runner.learn(chunk, init_at_random_ep_len=iteration == 0)
        wall += time.perf_counter() - start
        iteration += chunk
        curve["points"].append(evaluation_point(iteration, wall))
        mean = curve["points"][-1]["return_mean"]
        print(f"[learning] {task} {label} s{seed}: {iteration * steps_per_iteration} steps, return {mean:.2f}")
        runner.save(model_path)  # atomic (trudi's runner): a cut-off run resumes from here
        atomic_write_text(curve_path, json.dumps(curve, indent=1))


# ---------------------------------------------------------------------------------------------------------------------
# the suite (parent process) and the report


def run_suite(args: argparse.Namespace) -> None:
    """Run every missing or unfinished (task, algo or variant, seed) in a child process, one at a time."""
    runs = [(algo, None, []) for algo in args.algos] + [("trudi", v[0], v[1:]) for v in args.variant or []]
    for task in args.tasks or SUITES[args.suite]:
        for algo, label, overrides in runs:
            for seed in range(args.seeds):
                extra = (["--label", label] if label else []) + [f"--overrides={o}" for o in overrides]
                _run_child(_child_command(args, task, algo, seed, extra))
    if args.equal_wall_clock:
        for task in args.tasks or SUITES[args.suite]:
            for seed in range(args.seeds):
                budget = _trudi_wall_clock(args.out, task, seed)
                extra = ["--label", EQUAL_WALL_CLOCK, "--wall-budget", f"{budget:.3f}"]
                _run_child(_child_command(args, task, "ppo", seed, extra))


def _child_command(args: argparse.Namespace, task: str, algo: str, seed: int, extra: list[str]) -> list[str]:
    """The command line of one run (``--one``) with the suite's budget, evaluation and device settings."""
    command = [sys.executable, "-u", os.path.abspath(__file__), "--one", "--task", task, "--algos", algo, *extra]
    command += ["--seed", str(seed), "--env-steps", str(args.env_steps), "--out", args.out]
    command += ["--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes)]
    return command + ["--device", args.device] + (["--num-envs", str(args.num_envs)] if args.num_envs else [])


EQUAL_WALL_CLOCK = "equal-wall-clock"
"""Label of the PPO runs whose budget is TruDi's training wall-clock."""


def _run_child(command: list[str]) -> None:
    print(f"[learning] {' '.join(command[3:])}", flush=True)
    returncode = subprocess.run(command).returncode
    if returncode:
        raise SystemExit(returncode)  # the run printed why; later runs wait until it is fixed


def _trudi_wall_clock(out: str, task: str, seed: int) -> float:
    """Training seconds of the finished TruDi run of (task, seed) under ``out``."""
    path = os.path.join(out, "runs", run_name(task, "trudi", seed), "curve.json")
    if not os.path.isfile(path):
        raise SystemExit(f"[learning] --equal-wall-clock needs the TruDi run {path} first (run the suite with trudi).")
    with open(path) as file:
        return json.load(file)["points"][-1]["wall_s"]


def load_curves(out: str) -> list[dict]:
    """Every saved curve under ``out/runs``."""
    runs_dir = os.path.join(out, "runs")
    curves = []
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        path = os.path.join(runs_dir, name, "curve.json")
        if os.path.isfile(path):
            with open(path) as file:
                curves.append(json.load(file))
    return curves


def write_report(out: str, suite: str, env_steps: int) -> None:
    """Write curves.csv, summary.json/.md and curves.png from the saved curves."""
    curves = load_curves(out)
    if not curves:
        print(f"[learning] no runs under {out}")
        return
    table = io.StringIO()
    writer = csv.writer(table)
    header = ["task", "algo", "seed", "iteration", "env_steps", "wall_s", "return_mean", "return_std", "length_mean"]
    writer.writerow(header)
    for curve in curves:
        for p in curve["points"]:
            row = [p["iteration"], p["env_steps"], f"{p['wall_s']:.2f}", p["return_mean"], p["return_std"]]
            row.append(p.get("length_mean", ""))  # runs before 2026-12-02 evening did not record it
            writer.writerow([curve["task"], curve["algo"], curve["seed"], *row])
    atomic_write_text(os.path.join(out, "curves.csv"), table.getvalue())

    rows = []
    for task in sorted({c["task"] for c in curves}):
        for algo in sorted({c["algo"] for c in curves if c["task"] == task}):
            group = [c for c in curves if c["task"] == task and c["algo"] == algo]
            finals = [c["points"][-1] for c in group]
            returns = [p["return_mean"] for p in finals]
            mean = sum(returns) / len(returns)
            spread = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
            rows.append(
                {
                    "task": task,
                    "algo": algo,
                    "seeds": len(group),
                    "env_steps": min(p["env_steps"] for p in finals),
                    "initial_return": sum(c["points"][0]["return_mean"] for c in group) / len(group),
                    "final_return_mean": mean,
                    "final_return_std_over_seeds": spread,
                    "wall_s_mean": sum(p["wall_s"] for p in finals) / len(finals),
                    "return_at_trudi_wall_clock": _mean_return_at_trudi_wall_clock(curves, group),
                }
            )
    meta = {"suite": suite, "date": str(date.today()), "device": cpu_name()}
    summary = {**meta, "budget_env_steps": env_steps, "rows": rows}
    write_json(os.path.join(out, "summary.json"), summary)
    lines = [
        f"# Learning: suite `{suite}` ({meta['date']}, {meta['device']})",
        "",
        "Deterministic (ODE for TruDi, mean action for PPO) evaluation return at the last evaluation; mean and std",
        "over seeds. `wall_s`: training time (evaluation excluded). Raw data: `curves.csv`, `runs/*/curve.json`.",
        "",
        "`at TruDi's wall-clock`: the return each run had reached when the same seed's TruDi run finished training",
        "(the last evaluation at or before that many seconds).",
        "",
        "| task | algo | seeds | env steps | untrained return | final return | wall-clock (s) |"
        " at TruDi's wall-clock |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        mean = r["final_return_mean"]
        at_wall = r["return_at_trudi_wall_clock"]
        lines.append(
            f"| {r['task']} | {r['algo']} | {r['seeds']} | {r['env_steps']:,} | {_fmt(r['initial_return'])} |"
            f" {_fmt(mean)} ± {_fmt(r['final_return_std_over_seeds'], mean)} | {r['wall_s_mean']:.0f} |"
            f" {'' if at_wall is None else _fmt(at_wall)} |"
        )
    write_markdown(os.path.join(out, "summary.md"), [*lines, "", "![curves](curves.png)"])
    _plot(curves, os.path.join(out, "curves.png"), suite)


def _mean_return_at_trudi_wall_clock(curves: list[dict], group: list[dict]) -> float | None:
    """Mean over seeds of the return each curve of ``group`` had at its seed's TruDi training wall-clock."""
    values = []
    for curve in group:
        trudi = [
            c for c in curves if c["task"] == curve["task"] and c["algo"] == "trudi" and c["seed"] == curve["seed"]
        ]
        if not trudi:
            return None
        budget = trudi[0]["points"][-1]["wall_s"]
        reached = [p for p in curve["points"] if p["wall_s"] <= budget * 1.0001]
        values.append(reached[-1]["return_mean"])
    return sum(values) / len(values)


def _fmt(value: float, scale: float | None = None) -> str:
    """One decimal, or three when ``scale`` (default: the value) is below 1 in size (dt-scaled Isaac Lab returns)."""
    return f"{value:.3f}" if abs(value if scale is None else scale) < 1 else f"{value:.1f}"


BANDS_UP_TO = 4
"""Panels with at most this many algorithms or variants get min-max bands; more get lines only."""


def _plot(curves: list[dict], path: str, suite: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = sorted({c["task"] for c in curves})
    # One colour per algorithm or variant across all panels, so a task without some of them keeps the others' colours.
    colors = {algo: f"C{i % 10}" for i, algo in enumerate(sorted({c["algo"] for c in curves}))}
    most_algos = max(len({c["algo"] for c in curves if c["task"] == task}) for task in tasks)
    # Beyond a few curves per panel (ablation variants) the bands hide each other: lines only, legend outside.
    bands = most_algos <= BANDS_UP_TO
    width = 4.5 if bands else 7.0
    height = 3.5 if bands else 4.5
    fig, axes = plt.subplots(2, len(tasks), figsize=(width * len(tasks), 2 * height), squeeze=False)
    for column, task in enumerate(tasks):
        for algo in sorted({c["algo"] for c in curves if c["task"] == task}):
            group = [c for c in curves if c["task"] == task and c["algo"] == algo]
            length = min(len(c["points"]) for c in group)
            returns = np.array([[p["return_mean"] for p in c["points"][:length]] for c in group])
            for row, key in enumerate(("env_steps", "wall_s")):
                # Seeds share evaluation points in env steps; in seconds, each seed's mean time at that point.
                x = np.array([[p[key] for p in c["points"][:length]] for c in group]).mean(0)
                label = f"{algo} ({len(group)} seeds)"
                axes[row][column].plot(x, returns.mean(0), color=colors[algo], label=label)
                if bands:
                    axes[row][column].fill_between(x, returns.min(0), returns.max(0), color=colors[algo], alpha=0.2)
        for row, label in enumerate(("env steps", "training wall-clock (s)")):
            ax = axes[row][column]
            ax.set_title(task)
            ax.set_xlabel(label)
            ax.set_ylabel("deterministic return")
            if bands:
                ax.legend()
            else:
                ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"suite {suite}: mean{', min-max' if bands else ''} over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """Parse flags, then run the suite (or one run) and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="smoke")
    parser.add_argument("--tasks", nargs="+", default=None, help="a subset of the suite's tasks")
    parser.add_argument("--variant", nargs="+", action="append", metavar="LABEL [agent.k=v ...]")
    parser.add_argument("--algos", nargs="+", default=["trudi", "ppo"], choices=["trudi", "ppo"])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    parser.add_argument("--env-steps", type=int, default=200_000, help="training budget per run")
    parser.add_argument("--eval-every", type=int, default=20_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--num-envs", type=int, default=None, help="task default if unset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default=None, help="results folder (default docs/results/learning/<suite>)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild tables and plots")
    parser.add_argument(
        "--equal-wall-clock", action="store_true", help="also run PPO for each seed's TruDi training wall-clock"
    )
    parser.add_argument("--wall-budget", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--label", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out = os.path.abspath(args.out or os.path.join(RESULTS_ROOT, args.suite))
    if args.one:
        train_one(args)
        return
    if not args.report_only:
        run_suite(args)
    write_report(args.out, args.suite, args.env_steps)


if __name__ == "__main__":
    main()
