"""Loading: lists merge across files, positions survive the merge, the generator is deterministic."""

from __future__ import annotations

from pathlib import Path

import pytest

from inventory.generate import render_files
from inventory.loader import CATALOGS_DIR, CatalogError, load_catalog, load_with_positions
from inventory.model import SnmpV3

HERE = Path(__file__).parent


def test_lists_from_several_files_are_concatenated_and_positions_kept(tmp_path: Path) -> None:
    base = (HERE / "base.yaml").read_text(encoding="utf-8")
    head, _, tail = base.partition("platforms:\n")
    (tmp_path / "1.yaml").write_text(head, encoding="utf-8")
    (tmp_path / "2.yaml").write_text("platforms:\n" + tail, encoding="utf-8")
    (tmp_path / "3.yaml").write_text(
        "facilities:\n  - id: csb-north\n    name: Centre North\n    name_ar: مركز\n    kind: primary_care_centre\n"
        "    region: nowhere\n    status: planned\n",
        encoding="utf-8",
    )
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path)
    [problem] = err.value.problems
    assert problem.field == "facilities[3].region"  # index continues after the 3 facilities of 1.yaml
    assert problem.position is not None and problem.position.file.endswith("3.yaml") and problem.position.line == 6


def test_lab_catalog_links_and_credentials() -> None:
    cat, src = load_with_positions("lab")
    polled = cat.polled_facilities()
    assert len(polled) == 8
    assert {f.id for f in polled if isinstance(f.link and f.link.snmp, SnmpV3)} == {"hr-ariana"}
    parents = {f.link.parent for f in polled if f.link and f.link.parent}
    assert parents == {"pop-tunis", "pop-sfax"}
    assert str(src.where(("facilities", 0, "link", "router"))).endswith("facilities.yaml:11")


def test_generator_reproduces_the_committed_national_catalog() -> None:
    for name, text in render_files().items():
        committed = (CATALOGS_DIR / "tunisia" / name).read_text(encoding="utf-8")
        assert committed == text, f"{name} differs from the generator's output: run `hdc catalog generate`"


def test_national_catalog_regions_each_have_one_aggregation_site() -> None:
    cat = load_catalog("tunisia")
    pops = [f for f in cat.facilities if f.kind == "aggregation_site"]
    assert sorted(p.region for p in pops) == sorted(r.id for r in cat.regions)
    for fac in cat.facilities:
        if fac.kind != "aggregation_site":
            assert fac.link is not None and fac.link.parent == f"pop-{fac.region}"
    assert max(f.link.bandwidth_mbps for f in cat.facilities if f.link and f.kind != "aggregation_site") == 200
