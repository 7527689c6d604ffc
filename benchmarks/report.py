"""What the benchmarks write: JSON of the measurements and a markdown report, atomically, under docs/results/."""

from __future__ import annotations

import json
import os
import platform
from typing import Any

from trudi.checkpoint import atomic_write_text

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "results")
"""Where the committed results live."""


def cpu_name() -> str:
    """The machine in the words the result tables use, e.g. ``CPU (2 cores, x86_64)``."""
    return f"CPU ({os.cpu_count()} cores, {platform.machine()})"


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` (relative paths are under :data:`RESULTS_DIR`)."""
    atomic_write_text(os.path.join(RESULTS_DIR, path), json.dumps(data, indent=1))


def write_markdown(path: str, lines: list[str]) -> None:
    """Write the report ``lines`` to ``path`` (relative paths are under :data:`RESULTS_DIR`) and print them."""
    text = "\n".join(lines) + "\n"
    atomic_write_text(os.path.join(RESULTS_DIR, path), text)
    print(text, end="")
