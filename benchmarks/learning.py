"""TruDi vs RSL-RL PPO learning curves: same runner, same envs, same env-step budget, deterministic evaluation.

    python benchmarks/learning.py --suite gym                                  # every run of the suite
    python benchmarks/learning.py --suite isaaclab                             # in the Isaac Lab venv
    python benchmarks/learning.py --suite gym --tasks Hopper-v5 --algos trudi --seeds 0 1
    python benchmarks/learning.py --suite progress_rule --algos 'trudi[pg11]'  # one variant of an ablation
    python benchmarks/learning.py --suite gym --report-only                    # the pages and plots, no training

A suite is an entry of ``benchmarks/manifest.py``: its tasks with their budgets and evaluation, its algorithms,
its TruDi variants (``trudi[LABEL]``: the suite's ``base_overrides`` then the variant's; the token
``eval_sampler=sde`` evaluates the stochastic policy), its seeds. The flags narrow it or change a budget; a new
suite or variant goes into the manifest. ``ppo[equal-wall-clock]`` runs PPO again for each (task, seed) of the tasks
that ask for it, with a budget of seconds instead of env steps: the training wall-clock of that seed's finished
TruDi run.

Each (task, algo, seed) trains in its own process, evaluates every ``eval_every`` env steps and saves a checkpoint
and its curve after each evaluation into the working folder ``logs/benchmarks/<suite path>/runs/<run>/`` (not
committed). A run that was cut off resumes from its last checkpoint, so a suite can be completed over several
sittings. A finished run's curve is merged into the suite's committed data file,
``docs/results/<suite path>/runs.json``, and a run whose committed curve already reaches the budget is skipped; one
that would need a checkpoint the working folder does not have stops with a message instead of overwriting its curve.
After the runs, ``benchmarks/report.py`` regenerates the results pages and the suite's plot.

Isaac Lab tasks evaluate on the training environments (one simulation per process), so their evaluation episodes
interrupt the training episodes in flight; the embedded tasks evaluate on a separate environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import subprocess
import sys
import time

import manifest
from manifest import EQUAL_WALL_CLOCK, Suite
from report import write_pages, write_plots
from results import WORK_DIR, final_return, load_runs, merge_runs, run_key, run_name, training_seconds

from trudi.checkpoint import atomic_write_text

# ---------------------------------------------------------------------------------------------------------------------
# one run (child process)


def _embedded_setup(stack: contextlib.ExitStack, args: argparse.Namespace, overrides: list[str]):
    """The train config, a training env and an evaluation env of an embedded task; ``stack`` closes the envs."""
    from trudi.tasks import get_task, train_cfg
    from trudi.workflow import merge_agent_cfg, seed_everything

    embedded = get_task(args.task)
    cfg = merge_agent_cfg(train_cfg(args.task, args.algo), None, overrides)
    cfg["seed"] = args.seed
    seed_everything(args.seed)
    num_envs = args.num_envs or embedded.num_envs
    train_env = embedded.make_env(num_envs, args.seed, args.device)
    eval_env = embedded.make_env(num_envs, args.seed + 10_000, args.device)
    stack.callback(train_env.close)
    stack.callback(eval_env.close)
    return cfg, train_env, eval_env


def _isaaclab_setup(stack: contextlib.ExitStack, args: argparse.Namespace, overrides: list[str]):
    """The train config and the env (trained and evaluated on) of an Isaac Lab task, inside ``stack``."""
    from trudi_isaaclab.workflow import isaaclab_env

    env_context = isaaclab_env(args.task, args.algo, overrides, args.device, args.num_envs, args.seed)
    env, agent_cfg = stack.enter_context(env_context)
    return agent_cfg.to_dict(), env, env


DIAGNOSTICS = (
    "trust_region/kl_realised_mean",
    "trust_region/kl_realised_over_bound_fraction",
    "trust_region/kl_bound",
    "trust_region/kl_mean",
    "trust_region/step_fraction",
    "entropy/coef",
    "entropy/estimate",
    "entropy/target",
)
"""TruDi's diagnostics kept for every update in its curve (``updates``): whether the trust region held its bound,
and what the temperature did, read from the saved runs rather than from logs that are not committed."""


def _record_diagnostics(runner, curve: dict) -> None:
    """Append each update's :data:`DIAGNOSTICS` to ``curve["updates"]`` (TruDi's updates only; PPO has none)."""
    update = runner.alg.update

    def recorded() -> dict[str, float]:
        loss_dict = update()
        values = {key: round(loss_dict[key], 7) for key in DIAGNOSTICS if key in loss_dict}
        if values:
            curve.setdefault("updates", []).append(values)
        return loss_dict

    runner.alg.update = recorded


def _complete(curve: dict, args: argparse.Namespace) -> bool:
    """Whether ``curve`` reaches the run's budget: its seconds with ``--wall-budget``, else its env steps."""
    last = curve["points"][-1]
    return last["wall_s"] >= args.wall_budget if args.wall_budget else last["env_steps"] >= args.env_steps


def train_one(args: argparse.Namespace) -> None:
    """Train one (task, algo, seed) up to its budget, resuming from its working folder when it holds a checkpoint."""
    label = f"{args.algo}[{args.label}]" if args.label else args.algo
    suite = manifest.suite(args.suite)
    committed = [c for c in load_runs(suite.path) if run_key(c) == (args.task, label, args.seed)]
    run_dir = os.path.join(WORK_DIR, suite.path, "runs", run_name(args.task, label, args.seed))
    if committed and _complete(committed[0], args):
        print(f"[learning] {args.task} {label} s{args.seed}: complete in runs.json, nothing to do")
        return
    if committed and not os.path.isfile(os.path.join(run_dir, "model.pt")):
        # Checkpoints are not committed: a committed curve is never overwritten by a restart from scratch.
        raise SystemExit(
            f"[learning] {args.task} {label} s{args.seed} has a committed curve up to"
            f" {committed[0]['points'][-1]['env_steps']} env steps but no checkpoint in {run_dir} to resume from;"
            " remove the run from runs.json to retrain it from scratch, or pass an --env-steps it has reached."
        )
    os.makedirs(run_dir, exist_ok=True)
    overrides = [token for token in args.overrides if not token.startswith("eval_sampler=")]
    with contextlib.ExitStack() as stack:
        setup = _embedded_setup if not args.task.startswith("Isaac") else _isaaclab_setup
        cfg, train_env, eval_env = setup(stack, args, overrides)
        curve = _train(args, label, run_dir, cfg, train_env, eval_env)
    merge_runs(suite.path, [curve])


def _train(args, label, run_dir, cfg, train_env, eval_env) -> dict:
    """The training loop of :func:`train_one`, with its evaluations and checkpoints; returns the finished curve."""
    from trudi.rsl_rl import OnPolicyRunner
    from trudi.workflow import evaluate

    curve_path, model_path = os.path.join(run_dir, "curve.json"), os.path.join(run_dir, "model.pt")
    runner = OnPolicyRunner(train_env, cfg, log_dir=None, device=args.device)
    steps_per_iteration = train_env.num_envs * cfg["num_steps_per_env"]
    iterations_per_eval = max(1, round(args.eval_every / steps_per_iteration))
    total_iterations = math.ceil(args.env_steps / steps_per_iteration)
    wall_budget = args.wall_budget  # seconds; when set, the run stops at it instead of at the env-step budget
    stochastic_eval = "eval_sampler=sde" in args.overrides

    curve = {"task": args.task, "algo": label, "seed": args.seed, "num_envs": train_env.num_envs, "points": []}
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

    _record_diagnostics(runner, curve)
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
        steps = iteration * steps_per_iteration
        print(f"[learning] {args.task} {label} s{args.seed}: {steps} steps, return {final_return(curve):.2f}")
        runner.save(model_path)  # atomic (trudi's runner): a cut-off run resumes from here
        atomic_write_text(curve_path, json.dumps(curve, indent=1))
    return curve


# ---------------------------------------------------------------------------------------------------------------------
# the suite (parent process)


def _runs(suite: Suite, labels: list[str]) -> list[tuple[str, str | None, list[str]]]:
    """(algo, variant label, overrides) of each selected algorithm or variant; TruDi's carry the suite's base."""
    variants = {f"trudi[{v.label}]": v for v in suite.variants}
    runs = []
    for label in labels:
        if label in variants:
            runs.append(("trudi", variants[label].label, [*suite.base_overrides, *variants[label].overrides]))
        elif label != EQUAL_WALL_CLOCK:
            runs.append((label, None, list(suite.base_overrides) if label == "trudi" else []))
    return runs


def run_suite(args: argparse.Namespace, suite: Suite) -> None:
    """Run every missing or unfinished selected run of ``suite`` in a child process, one at a time."""
    if suite.base_overrides is None:
        raise SystemExit(
            f"[learning] suite {suite.name} was measured at {suite.defaults}; add a suite to benchmarks/manifest.py"
            " to measure these settings at the current code."
        )
    labels = args.algos or suite.labels()
    tasks = [suite.task(name) for name in args.tasks] if args.tasks else list(suite.tasks)
    for task in tasks:
        for algo, label, overrides in _runs(suite, labels):
            for seed in _seeds(args, suite, task):
                extra = (["--label", label] if label else []) + [f"--overrides={o}" for o in overrides]
                _run_child(_child_command(args, suite, task, algo, seed, extra))
    if EQUAL_WALL_CLOCK not in labels:
        return
    for task in (task for task in tasks if task.equal_wall_clock):
        for seed in _seeds(args, suite, task):
            budget = _trudi_wall_clock(suite, task.name, seed)
            extra = ["--label", "equal-wall-clock", "--wall-budget", f"{budget:.3f}"]
            _run_child(_child_command(args, suite, task, "ppo", seed, extra))


def _seeds(args: argparse.Namespace, suite: Suite, task: manifest.Task) -> list[int]:
    """The seeds to run on ``task``: ``--seeds``, else the task's, else the suite's."""
    return list(args.seeds or task.seeds or suite.seeds)


def _child_command(
    args: argparse.Namespace, suite: Suite, task: manifest.Task, algo: str, seed: int, extra: list[str]
) -> list[str]:
    """The command line of one run (``--one``) with its task's budget and evaluation, unless the flags change them."""
    command = [sys.executable, "-u", os.path.abspath(__file__), "--one", "--suite", suite.name, "--task", task.name]
    command += ["--algo", algo, *extra, "--seed", str(seed), "--env-steps", str(args.env_steps or task.env_steps)]
    command += ["--eval-every", str(args.eval_every or task.eval_every)]
    command += ["--eval-episodes", str(args.eval_episodes or task.eval_episodes), "--device", args.device]
    num_envs = args.num_envs or task.num_envs
    return command + (["--num-envs", str(num_envs)] if num_envs else [])


def _run_child(command: list[str]) -> None:
    print(f"[learning] {' '.join(command[3:])}", flush=True)
    returncode = subprocess.run(command).returncode
    if returncode:
        raise SystemExit(returncode)  # the run printed why; later runs wait until it is fixed


def _trudi_wall_clock(suite: Suite, task: str, seed: int) -> float:
    """Training seconds of the finished TruDi run of (task, seed) in the suite's runs.json."""
    for curve in load_runs(suite.path):
        if run_key(curve) == (task, "trudi", seed):
            return training_seconds(curve)
    raise SystemExit(f"[learning] {EQUAL_WALL_CLOCK} needs the finished TruDi run of {task} seed {seed} first.")


def main() -> None:
    """Parse flags, then run the suite (or one run) and regenerate the pages."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=[suite.name for suite in manifest.SUITES], default="smoke")
    parser.add_argument("--tasks", nargs="+", default=None, help="a subset of the suite's tasks")
    parser.add_argument("--algos", nargs="+", default=None, help="a subset of the suite's algorithms and variants")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="instead of the manifest's")
    parser.add_argument("--env-steps", type=int, default=None, help="training budget per run (manifest's if unset)")
    parser.add_argument("--eval-every", type=int, default=None, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=None)
    parser.add_argument("--num-envs", type=int, default=None, help="manifest's (or the task's) if unset")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--report-only", action="store_true", help="only regenerate the pages and the suite's plot")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--task", help=argparse.SUPPRESS)
    parser.add_argument("--algo", help=argparse.SUPPRESS)
    parser.add_argument("--label", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", action="append", default=[], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--wall-budget", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        train_one(args)
        return
    suite = manifest.suite(args.suite)
    unknown = sorted(set(args.algos or []) - set(suite.labels())) + sorted(
        set(args.tasks or []) - {task.name for task in suite.tasks}
    )
    if unknown:
        parser.error(f"not in suite {suite.name}: {', '.join(unknown)} (see benchmarks/manifest.py)")
    if not args.report_only:
        run_suite(args, suite)
    write_pages()
    write_plots([suite.name])


if __name__ == "__main__":
    main()
