"""`hdc infra plan` from the catalog alone, the engine commands without the Pulumi CLI, stack settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pulumi
import pytest
import yaml
from mockcloud import MockCloud, ensure_event_loop, longest_retention_days
from typer.testing import CliRunner

from hdc.cli import app
from hdc.errors import UserError
from infra.capacity import build_plan
from infra.settings import SettingsError, read_settings
from inventory.loader import CATALOGS_DIR, load_catalog
from inventory.model import Catalog

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_plan_lab_fits_and_counts() -> None:
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab"])
    assert result.exit_code == 0, result.output
    cat = load_catalog("lab")
    hosts = sum(t.count for p in cat.platforms for t in p.tiers)
    assert f"{len(cat.platforms)} platforms, {hosts} instances" in result.output
    for z in cat.datacenter.zones:
        assert f"  {z.id} " in result.output
    for p in cat.platforms:
        assert f"  {p.id} " in result.output
    assert "cluster lab-kvm" in result.output and "pool    ssd" in result.output
    assert "fits:" in result.output


def test_plan_lists_rules_for_audit() -> None:
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab", "--rules"])
    assert result.exit_code == 0, result.output
    text = result.output.split("Firewall rules", 1)[1]
    assert "  epr-db\n" in text
    assert "ingress tcp/5432  group epr-app  — flow epr/app -> epr/db" in text
    assert "ingress tcp/443   0.0.0.0/0  — public web" in text


def test_plan_national_catalog_fits() -> None:
    if not (CATALOGS_DIR / "tunisia").is_dir():
        pytest.skip("national catalog not present")
    plan = build_plan(load_catalog("tunisia"))
    assert plan.fits, plan.problems
    assert len(plan.platforms) >= 30
    cat = load_catalog("tunisia")
    assert sum(c.vcpu for c in plan.clusters) == sum(t.flavor.vcpu * t.count for p in cat.platforms for t in p.tiers)


def test_plan_shows_the_two_archive_buckets() -> None:
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab", "--environment", "prod"])
    assert result.exit_code == 0, result.output
    assert "2 archive buckets" in result.output
    text = result.output.split("Archive storage", 1)[1]
    assert "COMPLIANCE default 3650 days" in text
    assert "  records  hdc-prod-archive-records" in text and "HDC_ARCHIVE_BUCKET_RECORDS" in text
    assert "  audit    hdc-prod-archive-audit" in text and "HDC_ARCHIVE_BUCKET_AUDIT" in text
    named = ["--records-bucket", "moh-records", "--audit-bucket", "moh-audit", "--retention-days", "7300", "--json"]
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab", *named])
    assert result.exit_code == 0, result.output
    buckets = json.loads(result.output)["buckets"]
    longest = longest_retention_days([r.years for r in load_catalog("lab").retention_classes])
    assert [(b["role"], b["name"], b["default_retention_days"]) for b in buckets] == [
        ("records", "moh-records", 7300),
        ("audit", "moh-audit", 7300),
    ]
    assert all(b["noncurrent_expiry_days"] >= max(longest, 7300) + 30 for b in buckets)
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab", "--audit-bucket", "Bad_Name"])
    assert isinstance(result.exception, UserError)
    assert "hdc:archiveBucketAudit: 'Bad_Name' is not a valid bucket name" in str(result.exception)


def test_plan_json() -> None:
    result = runner.invoke(app, ["infra", "plan", "--catalog", "lab", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["fits"] is True
    cat = load_catalog("lab")
    assert {c["id"] for c in data["clusters"]} == {c.id for c in cat.datacenter.clusters}
    ssd = next(p for p in data["pools"] if p["id"] == "ssd")
    assert ssd["gb"] == _ssd_gb(cat)


def _ssd_gb(cat: Catalog) -> int:
    """Data volumes on 'ssd', plus boot volumes of medical tiers that have no encrypted pool of their own."""
    data = sum(t.volume_gb * t.count for p in cat.platforms for t in p.tiers if t.storage_pool == "ssd")
    boot = sum(
        t.flavor.disk_gb * t.count
        for p in cat.platforms
        if p.classification.value == "medical"
        for t in p.tiers
        if t.storage_pool in (None, "ssd")
    )
    return data + boot


def _shrunk_lab(tmp_path: Path) -> Path:
    """The lab catalog on a data center too small for it: one small host, a tiny SSD pool."""
    dst = tmp_path / "small"
    shutil.copytree(CATALOGS_DIR / "lab", dst)
    dc_file = dst / "datacenter.yaml"
    doc = yaml.safe_load(dc_file.read_text())
    doc["datacenter"]["clusters"] = [
        {
            "id": "lab-kvm",
            "name": "One small host",
            "hosts": 1,
            "vcpu_per_host": 12,
            "ram_gb_per_host": 24,
            "cpu_overcommit": 2.0,
        }
    ]
    for pool in doc["datacenter"]["storage_pools"]:
        if pool["id"] == "ssd":
            pool["capacity_gb"] = 1000
    dc_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return dst


def test_plan_fails_clearly_when_the_catalog_does_not_fit(tmp_path: Path) -> None:
    small = _shrunk_lab(tmp_path)
    result = runner.invoke(app, ["infra", "plan", "--catalog", str(small)])
    assert isinstance(result.exception, UserError)
    msg = str(result.exception)
    assert "does not fit" in msg
    vcpu = sum(t.flavor.vcpu * t.count for p in load_catalog("lab").platforms for t in p.tiers)
    assert f"cluster 'lab-kvm': {vcpu} vCPU needed, capacity 24" in msg
    assert "GB RAM needed" in msg
    assert f"storage pool 'ssd': {_ssd_gb(load_catalog('lab')):,} GB of volumes needed, capacity 1,000 GB" in msg
    # a flavor larger than one host is named with its platform and tier
    assert "platform 'epr' tier 'db': flavor of 32 GB RAM does not fit one host" in msg
    assert "DOES NOT FIT" in result.output


def test_plan_exit_code_and_no_traceback(tmp_path: Path) -> None:
    small = _shrunk_lab(tmp_path)
    proc = subprocess.run(
        [str(REPO / ".venv/bin/hdc"), "infra", "plan", "--catalog", str(small)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: catalog 'lab' does not fit")


def test_plan_refuses_a_broken_catalog(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    result = runner.invoke(app, ["infra", "plan", "--catalog", str(missing)])
    assert result.exit_code != 0
    assert "no such catalog" in str(result.exception)


@pytest.mark.parametrize(
    "command",
    [["preview", "--stack", "lab"], ["up", "--stack", "lab", "--yes"], ["destroy", "--stack", "prod", "--yes"]],
)
def test_engine_commands_say_what_to_install(
    command: list[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nowhere to find `pulumi`
    result = runner.invoke(app, ["infra", *command])
    assert isinstance(result.exception, UserError)
    msg = str(result.exception)
    assert "Pulumi CLI" in msg and "https://www.pulumi.com/docs/iac/download-install/" in msg


def test_engine_commands_name_unknown_stacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "pulumi"
    fake.write_text("#!/bin/sh\nexit 99\n")  # found on PATH; never reached for an unknown stack
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = runner.invoke(app, ["infra", "preview", "--stack", "staging"])
    assert isinstance(result.exception, UserError)
    assert "stack 'staging'" in str(result.exception) and "lab, prod" in str(result.exception)


def test_stack_files_hold_no_secrets() -> None:
    for stack in ("lab", "prod"):
        doc = yaml.safe_load((REPO / "infra" / f"Pulumi.{stack}.yaml").read_text())
        keys = set(doc["config"])
        assert "hdc:catalog" in keys
        assert not {k for k in keys if k.endswith(("password", "Password", "secretKey", "token"))}
        assert load_catalog(doc["config"]["hdc:catalog"]).name


def _with_config(config: dict[str, str]) -> None:
    ensure_event_loop()
    pulumi.runtime.set_mocks(MockCloud(), project="hdc", stack="lab", preview=True)
    pulumi.runtime.set_all_config(config)


def test_settings_name_the_bad_key() -> None:
    _with_config({})
    with pytest.raises(SettingsError, match="hdc:catalog is not set"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:manageFlavors": "maybe"})
    with pytest.raises(SettingsError, match="hdc:manageFlavors"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:target": "vsphere"})
    with pytest.raises(SettingsError, match="hdc:target"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:certValidityDays": "5000"})
    with pytest.raises(SettingsError, match="hdc:certValidityDays"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:volumeTypes": '["ssd"]'})
    with pytest.raises(SettingsError, match="hdc:volumeTypes"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:managementPorts": '["ssh"]'})
    with pytest.raises(SettingsError, match="hdc:managementPorts"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:managementPorts": "[22, 70000]"})
    with pytest.raises(SettingsError, match="hdc:managementPorts"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:bucketPrefix": "hdc-lab-archive"})
    with pytest.raises(SettingsError, match=r"hdc:bucketPrefix is no longer used.*hdc:archiveBucketRecords"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:archiveDefaultRetentionDays": "0"})
    with pytest.raises(SettingsError, match="hdc:archiveDefaultRetentionDays"):
        read_settings()
    _with_config({"hdc:catalog": "lab", "hdc:archiveDefaultRetentionDays": "ten years"})
    with pytest.raises(SettingsError, match="hdc:archiveDefaultRetentionDays"):
        read_settings()
    _with_config({"hdc:catalog": "lab"})
    settings = read_settings()
    assert settings.environment == "lab" and settings.target == "openstack" and settings.prefix == "hdc-lab"
    assert (settings.records_bucket, settings.audit_bucket) == ("hdc-lab-archive-records", "hdc-lab-archive-audit")
    assert settings.archive_default_retention_days == 3650
    _with_config(
        {
            "hdc:catalog": "lab",
            "hdc:archiveBucketRecords": "moh-records",
            "hdc:archiveBucketAudit": "moh-audit",
            "hdc:archiveDefaultRetentionDays": "7300",
        }
    )
    settings = read_settings()
    assert (settings.records_bucket, settings.audit_bucket) == ("moh-records", "moh-audit")
    assert settings.archive_default_retention_days == 7300


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"hdc:archiveBucketRecords": "Records_2024"}, "hdc:archiveBucketRecords: 'Records_2024' is not a valid"),
        ({"hdc:archiveBucketAudit": "a"}, "hdc:archiveBucketAudit: 'a' is not a valid"),
        ({"hdc:archiveBucketRecords": "same", "hdc:archiveBucketAudit": "same"}, "must differ"),
    ],
)
def test_program_refuses_bad_bucket_names(config: dict[str, str], message: str) -> None:
    from infra.program import main

    _with_config({"hdc:catalog": "lab", **config})
    with pytest.raises(pulumi.RunError, match=message):
        main()


def test_program_reports_a_bad_catalog_without_traceback(tmp_path: Path) -> None:
    from infra.program import main

    _with_config({"hdc:catalog": str(tmp_path / "missing")})
    with pytest.raises(pulumi.RunError, match="no such catalog"):
        main()


def test_program_needs_the_minio_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.program import main

    for var in ("MINIO_ENDPOINT", "MINIO_USER", "MINIO_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    _with_config({"hdc:catalog": "lab"})
    with pytest.raises(pulumi.RunError, match="minio:minioServer"):
        main()


def test_policy_pack_entry_point_imports() -> None:
    """The pack's __main__ serves forever once run, so check it parses and its module imports."""
    src = (REPO / "infra/policy/__main__.py").read_text()
    compile(src, "__main__.py", "exec")
    proc = subprocess.run(
        [sys.executable, "-c", "import infra.policy.rules as r; print(len(r.POLICIES))"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.stdout.strip() == "9", proc.stderr


def test_pulumi_entry_point_runs_the_whole_program() -> None:
    """`infra/__main__.py`, as Pulumi's Python host runs it, declares the lab's cloud from stack config."""
    import runpy

    from mockcloud import RecordingMonitor

    cloud = MockCloud()
    ensure_event_loop()
    pulumi.runtime.set_mocks(cloud, project="hdc", stack="lab", preview=True, monitor=RecordingMonitor(cloud))
    pulumi.runtime.set_all_config(
        {
            "hdc:catalog": "lab",
            "hdc:manageFlavors": "false",
            "hdc:volumeTypes": '{"ssd": "luks-ssd", "objects": "luks-hdd"}',
            "minio:minioServer": "127.0.0.1:9000",
            "minio:minioUser": "provisioner",
            "minio:minioPassword": "not-a-real-password",
        },
        secret_keys=["minio:minioPassword"],
    )

    @pulumi.runtime.test
    def entry() -> None:
        runpy.run_path(str(REPO / "infra/__main__.py"), run_name="__main__")

    entry()
    cat = load_catalog("lab")
    instances = [r for r in cloud.records if r.typ == "openstack:compute/instance:Instance"]
    assert len(instances) == sum(t.count for p in cat.platforms for t in p.tiers)
    # hdc:manageFlavors=false: flavors are looked up (invokes), not created
    assert not [r for r in cloud.records if r.typ == "openstack:compute/flavor:Flavor"]
    sizes = {
        (c.args["vcpus"], c.args["ram"], c.args["disk"])
        for c in cloud.calls
        if c.token == "openstack:compute/getFlavor:getFlavor"
    }
    assert sizes == {(t.flavor.vcpu, t.flavor.ram_gb * 1024, t.flavor.disk_gb) for p in cat.platforms for t in p.tiers}
    assert {i.props["flavorId"] for i in instances} == {f"flavor-{v}-{r}-{d}" for v, r, d in sizes}
    # hdc:volumeTypes: the admin's (encrypted) volume types are used, none is created
    assert not [r for r in cloud.records if r.typ == "openstack:blockstorage/volumeTypeV3:VolumeTypeV3"]
    volumes = [r for r in cloud.records if r.typ == "openstack:blockstorage/volume:Volume"]
    assert {v.props["volumeType"] for v in volumes} == {"luks-ssd", "luks-hdd"}


def _lab_copy(tmp_path: Path, edit: Callable[[dict], None]) -> Path:
    dst = tmp_path / "edited"
    shutil.copytree(CATALOGS_DIR / "lab", dst)
    dc_file = dst / "datacenter.yaml"
    doc = yaml.safe_load(dc_file.read_text())
    edit(doc["datacenter"])
    dc_file.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return dst


def test_plan_reports_a_zone_out_of_addresses(tmp_path: Path) -> None:
    def shrink(dc: dict) -> None:
        app_zone = next(z for z in dc["zones"] if z["id"] == "app")
        app_zone["subnet"] = "10.20.1.0/28"  # 14 addresses, hosts start at .10

    # the catalog's own checks refuse it, with file and line, before any plan is made
    edited = _lab_copy(tmp_path, shrink)
    proc = subprocess.run(
        [str(REPO / ".venv/bin/hdc"), "infra", "plan", "--catalog", str(edited)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "datacenter.yaml:" in proc.stderr and "zone 'app'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_plan_warns_without_n_plus_one_headroom(tmp_path: Path) -> None:
    cat = load_catalog("lab")
    vcpu = sum(t.flavor.vcpu * t.count for p in cat.platforms for t in p.tiers)

    def two_hosts(dc: dict) -> None:
        # two hosts that hold the load together, but not one alone
        dc["clusters"] = [
            {
                "id": "lab-kvm",
                "name": "two hosts",
                "hosts": 2,
                "vcpu_per_host": vcpu // 2 + 8,
                "ram_gb_per_host": 512,
                "cpu_overcommit": 1.0,
            }
        ]

    plan = build_plan(load_catalog(_lab_copy(tmp_path, two_hosts)))
    assert plan.fits, plan.problems
    assert any("no N+1 headroom" in w for w in plan.warnings)
    assert any("soft anti-affinity" in w for w in plan.warnings)  # archive/store has 4 instances on 2 hosts
