"""The README's default job over several seeds: ``scripts/train.py`` then ``scripts/play.py --checkpoint latest``.

    python benchmarks/default_job.py --seeds 1 2 3 4 5

Each seed runs the two commands a new user runs (the README's seed is the config's, 1), in a fresh log root, and
reads the deterministic return ``play.py`` prints. Writes ``docs/results/default_job.json``, then the pages built from
it (``benchmarks/report.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import date

from report import write_pages
from results import REPO_ROOT, cpu_name, write_json

RETURN_LINE = re.compile(r"mean return ([-0-9.]+)")


def run_seed(seed: int, log_root: str) -> dict:
    """Train and play one seed; returns the deterministic return and the training wall-clock."""
    scripts = os.path.join(REPO_ROOT, "scripts")
    start = time.perf_counter()
    train = [sys.executable, os.path.join(scripts, "train.py"), "--seed", str(seed), "--log_root", log_root]
    subprocess.run(train, check=True, capture_output=True, text=True)
    train_s = time.perf_counter() - start
    play = [sys.executable, os.path.join(scripts, "play.py"), "--checkpoint", "latest", "--log_root", log_root]
    output = subprocess.run(play, check=True, capture_output=True, text=True).stdout
    match = RETURN_LINE.search(output)
    if match is None:
        raise SystemExit(f"default_job.py: play.py printed no return for seed {seed}:\n{output[-2000:]}")
    return {"seed": seed, "return": float(match.group(1)), "train_s": train_s}


def main() -> None:
    """Run the seeds and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--log-root", default=None, help="keep the runs' logs here (default: a deleted temp dir)")
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        if args.log_root:
            rows.append(run_seed(seed, os.path.join(args.log_root, f"seed{seed}")))
        else:
            with tempfile.TemporaryDirectory() as log_root:
                rows.append(run_seed(seed, log_root))
        print(json.dumps(rows[-1]), flush=True)
    result = {
        "date": str(date.today()),
        "device": cpu_name(),
        "rows": rows,
    }
    write_json("default_job.json", result)
    write_pages()


if __name__ == "__main__":
    main()
