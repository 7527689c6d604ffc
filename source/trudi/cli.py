"""The command-line flags ``scripts/train.py``, ``scripts/play.py`` and the Isaac Lab flow share, declared once.

Modelled on the Isaac Lab extension template's ``cli_args.py``: the scripts add these groups to their parsers and
take ``agent.<key>=<value>`` tokens as overrides of the agent config.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from trudi.config import ConfigError
from trudi.tasks import ALGORITHMS, DEFAULT_TASK, TASKS
from trudi.workflow import LOG_ROOT

DEFAULT_DEVICE = "cpu"
"""The device when ``--device`` is not given, except in Isaac Lab's train flow, which keeps Isaac Lab's default."""


def add_task_args(parser: argparse.ArgumentParser) -> None:
    """``--task``, ``--algo``, ``--num_envs``, ``--device`` and ``--agent_cfg``."""
    parser.add_argument(
        "--task",
        default=DEFAULT_TASK,
        help=f"task id: {', '.join(TASKS)}, any other Gymnasium id (dm_control/<domain>-<task>-v0 with trudi[dmc];"
        " <module>:<EnvId> imports the module that registers it), or an Isaac Lab task",
    )
    parser.add_argument("--algo", default="trudi", choices=ALGORITHMS)
    parser.add_argument("--num_envs", type=int, default=None, help="parallel environments (task default if unset)")
    parser.add_argument(
        "--device",
        default=None,
        help=f"torch device of the agent and, on Isaac Lab, the simulation (default: {DEFAULT_DEVICE}; Isaac Lab's"
        " train flow keeps its own default)",
    )
    parser.add_argument("--agent_cfg", default=None, help="YAML merged over the registered agent config")


def add_checkpoint_args(parser: argparse.ArgumentParser) -> None:
    """``--load_run``, ``--checkpoint`` and ``--log_root``: which run and checkpoint to load, under which log root."""
    parser.add_argument("--load_run", default=".*", help="run directory (regex); the latest by default")
    parser.add_argument("--checkpoint", default="latest", help="'latest', a checkpoint file, or a file-name regex")
    parser.add_argument("--log_root", default=LOG_ROOT, help="root of the log tree")


def override_tokens(tokens: list[str]) -> list[str]:
    """The ``agent.<key>=<value>`` tokens among the unparsed ones."""
    return [token for token in tokens if token.startswith("agent.")]


def parse_with_overrides(
    parser: argparse.ArgumentParser, argv: list[str] | None
) -> tuple[argparse.Namespace, list[str]]:
    """Parse ``argv``; the remaining tokens must be ``agent.<key>=<value>`` overrides, which are returned.

    An unset ``--device`` becomes :data:`DEFAULT_DEVICE` (the Isaac Lab train flow parses its flags elsewhere).
    """
    args, rest = parser.parse_known_args(argv)
    overrides = override_tokens(rest)
    unknown = [token for token in rest if token not in overrides]
    if unknown:
        parser.error(f"unrecognised arguments: {' '.join(unknown)} (overrides look like agent.<key>=<value>)")
    args.device = args.device or DEFAULT_DEVICE
    return args, overrides


def script_parser(description: str) -> argparse.ArgumentParser:
    """The parser of a script that trains or plays a task: its docstring as help, the task and checkpoint flags."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_task_args(parser)
    add_checkpoint_args(parser)
    return parser


def run(main: Callable[[], object]) -> None:
    """Run a script's ``main``; a bad value or file ends it with its one-line message and exit status 1."""
    try:
        main()
    except ConfigError as error:
        sys.exit(f"[trudi] {error}")
