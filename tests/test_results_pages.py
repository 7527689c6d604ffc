"""The committed results pages are what benchmarks/report.py makes of the committed data (plots aside)."""

import os
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

from pages import build_pages  # noqa: E402
from results import RESULTS_DIR  # noqa: E402

REGENERATE = "out of date with the data it is built from: run `python benchmarks/report.py`"


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """Every markdown page, README.md included, regenerated from the committed data into a temporary directory."""
    out = tmp_path_factory.mktemp("pages")
    with open(os.path.join(ROOT, "README.md")) as file:
        pages = build_pages(RESULTS_DIR, file.read())
    for path, text in pages.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(text)
    return out, sorted(pages)


def test_every_page_matches_what_its_data_gives(regenerated):
    out, paths = regenerated
    stale = []
    for path in paths:
        with open(os.path.join(ROOT, path)) as file:
            if file.read() != (out / path).read_text():
                stale.append(path)
    assert not stale, f"{', '.join(stale)}: {REGENERATE}"


def test_no_results_page_outlives_its_data(regenerated):
    _, paths = regenerated
    committed = {
        os.path.relpath(os.path.join(folder, name), ROOT)
        for folder, _, names in os.walk(RESULTS_DIR)
        for name in names
        if name.endswith(".md")
    }
    assert committed <= set(paths), f"not generated from any data: {sorted(committed - set(paths))}"


def test_no_checkpoint_is_kept_with_the_results():
    checkpoints = [name for _, _, names in os.walk(RESULTS_DIR) for name in names if name.endswith(".pt")]
    assert not checkpoints, f"checkpoints belong in logs/benchmarks/, not docs/results: {checkpoints}"
