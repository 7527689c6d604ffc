"""Shared set-up of the Isaac Lab tests. They run where Isaac Lab 3 is installed (``.venv-isaaclab`` in CI) and
skip elsewhere (each test module calls ``pytest.importorskip``).

The asset root is generated once per session from the ``newton`` wheel (no download), and every Isaac Lab process
the tests start runs in one scratch working directory, so its ``logs/rsl_rl/`` tree is the tests' own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")


@pytest.fixture(scope="session")
def asset_root(tmp_path_factory) -> str:
    """A local ``ISAACSIM_ASSET_ROOT`` for Isaac-Cartpole, Isaac-Ant and Isaac-Humanoid."""
    from trudi_isaaclab.offline_assets import build_asset_root

    root = str(tmp_path_factory.mktemp("isaac_assets"))
    build_asset_root(root)
    os.environ["ISAACSIM_ASSET_ROOT"] = root
    return root


@pytest.fixture(scope="session")
def workdir(tmp_path_factory) -> str:
    """Working directory of the Isaac Lab processes (their ``logs/`` land here)."""
    return str(tmp_path_factory.mktemp("isaaclab_runs"))


def run_script(script: str, args: list[str], workdir: str, asset_root: str, timeout: int = 600) -> str:
    """Run ``scripts/<script>`` with this interpreter; returns its output, failing the test on a non-zero exit."""
    env = {**os.environ, "ISAACSIM_ASSET_ROOT": asset_root, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [sys.executable, os.path.join(SCRIPTS, script), *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} {' '.join(args)} exited with {result.returncode}:\n{output[-4000:]}"
    return output


def played_return(output: str) -> float:
    """The mean deterministic return ``scripts/play.py`` printed."""
    match = re.search(r"deterministic policy: mean return (-?[\d.]+)", output)
    assert match, f"play.py printed no return:\n{output[-3000:]}"
    return float(match.group(1))
