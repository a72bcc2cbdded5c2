"""Fixtures: the whole program run once per example catalog under Pulumi mocks."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mockcloud import ProgramRun, run_program

from inventory.loader import CATALOGS_DIR, load_catalog
from inventory.model import Catalog

EXAMPLES = ["lab", "tunisia"]


@pytest.fixture(scope="session")
def runs() -> dict[str, tuple[Catalog, ProgramRun]]:
    """Both example catalogs through the whole program (tunisia: ~2,200 mocked resources)."""
    out = {}
    for name in EXAMPLES:
        if not (CATALOGS_DIR / name).is_dir():
            continue
        run = run_program(name, stack="prod" if name == "tunisia" else "lab")
        print(f"\nmocked run of catalog '{name}': {len(run.cloud.records)} resources in {run.seconds:.1f} s")
        out[name] = (load_catalog(name), run)
    return out


@pytest.fixture(params=EXAMPLES)
def example(request: pytest.FixtureRequest, runs: dict[str, tuple[Catalog, ProgramRun]]) -> tuple[Catalog, ProgramRun]:
    if request.param not in runs:
        pytest.skip(f"catalog {request.param} not present")
    return runs[request.param]
