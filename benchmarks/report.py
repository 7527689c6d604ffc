"""Regenerate every results page and plot from the saved runs, and the README's comparison table.

The pages: each suite's summary.md and curves.png, the measurement scripts' pages, docs/results/ablations.md and
docs/benchmarks.md.

    python benchmarks/report.py                 # every page and plot
    python benchmarks/report.py --no-plots      # the markdown pages only (what tests/test_results_pages.py checks)
    python benchmarks/report.py --readme PATH   # the comparison table into PATH instead of README.md

The data: ``docs/results/<name>.json`` of each measurement script and ``docs/results/<suite path>/runs.json`` of each
suite in ``benchmarks/manifest.py``. The benchmark scripts call :func:`write_pages` after they save their data.
"""

from __future__ import annotations

import argparse
import os
import sys

import manifest
from pages import build_pages, plot_curves
from results import REPO_ROOT, RESULTS_DIR, load_runs

from trudi.checkpoint import atomic_write_text

README = os.path.join(REPO_ROOT, "README.md")


def write_pages(readme: str = README) -> None:
    """Write every markdown page, the comparison table into ``readme``; nothing is written if one cannot be built."""
    with open(readme) as file:
        text = file.read()
    try:
        pages = build_pages(RESULTS_DIR, text)
    except ValueError as error:  # the README's markers are missing: say so in one line
        sys.exit(f"report.py: {error}")
    readme_page = pages.pop("README.md")
    for path, page in pages.items():
        atomic_write_text(os.path.join(REPO_ROOT, path), page)
    atomic_write_text(readme, readme_page)


def write_plots(suites: list[str]) -> None:
    """Write ``curves.png`` of each suite named in ``suites``."""
    for suite in map(manifest.suite, suites):
        curves = load_runs(suite.path)
        if curves:
            plot_curves(curves, os.path.join(RESULTS_DIR, suite.path, "curves.png"), f"{suite.kind} suite {suite.name}")


def main() -> None:
    """Regenerate the pages, and the plots unless ``--no-plots``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-plots", action="store_true", help="the markdown pages only")
    parser.add_argument("--readme", default=README, help="the file with the comparison table's markers")
    args = parser.parse_args()
    write_pages(os.path.abspath(args.readme))
    if not args.no_plots:
        write_plots([suite.name for suite in manifest.SUITES])


if __name__ == "__main__":
    main()
