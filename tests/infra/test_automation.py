"""`hdc infra preview|up|destroy|inventory` through the real Automation API, with a stand-in engine.

The Pulumi CLI cannot be installed here, so a small executable named `pulumi` plays the engine:
it records its arguments and answers like the CLI does (version, stack select, an event log of
JSON engine events, stack outputs). What is tested is our side: the commands and flags the
Automation API is driven to run, the progress streamed, the summary, and failures reported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hdc.cli import app
from hdc.errors import UserError
from infra.settings import INFRA_DIR

FAKE_ENGINE = r"""
import json, os, sys, time
args = sys.argv[1:]
with open(os.environ["FAKE_PULUMI_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
cmd = [a for a in args if not a.startswith("-")]
if cmd[:1] == ["version"]:
    print("v3.150.0"); sys.exit(0)
if cmd[:2] == ["stack", "select"] or cmd[:2] == ["stack", "init"]:
    sys.exit(0)
if cmd[:2] == ["stack", "output"]:
    out = os.environ.get("FAKE_PULUMI_OUTPUTS")
    print(open(out).read() if out else "{}"); sys.exit(0)
if cmd[:2] == ["stack", "history"]:
    print(json.dumps([{"version": 1, "kind": cmd[0], "startTime": "2026-01-01T00:00:00.000Z", "message": "",
                       "environment": {}, "config": {}, "result": "succeeded", "endTime": "2026-01-01T00:00:01.000Z",
                       "resourceChanges": {"create": 2}}])); sys.exit(0)
if cmd[:1] in (["preview"], ["up"], ["destroy"]):
    path = args[args.index("--event-log") + 1]
    violate = os.environ.get("FAKE_PULUMI_VIOLATION")
    events = [{"preludeEvent": {"config": {}}}]
    op = "delete" if cmd[0] == "destroy" else "create"
    for name in ("hdc-lab-dmz", "hdc-lab-core"):
        events.append({"resourcePreEvent": {"metadata": {"op": op, "urn": "urn:pulumi:lab::hdc::t::" + name,
                                                          "type": "openstack:networking/network:Network", "provider": ""}}})
    if violate:
        events.append({"policyEvent": {"message": violate, "color": "never", "policyName": "no-world-open-ingress-except-web",
                                       "policyPackName": "hdc-health-data", "policyPackVersion": "1.0.0",
                                       "policyPackVersionTag": "1.0.0", "enforcementLevel": "mandatory"}})
    events.append({"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 1, "resourceChanges": {op: 2}}})
    events.append({"cancelEvent": {}})
    with open(path, "a") as fh:
        for i, e in enumerate(events):
            fh.write(json.dumps({"sequence": i, "timestamp": int(time.time()), **e}) + "\n")
    print(("Previewing" if cmd[0] == "preview" else "Updating") + " (lab):")
    print(" + openstack:networking/network:Network hdc-lab-dmz " + op)
    if violate:
        print("error: preview failed: mandatory policy violation", file=sys.stderr); sys.exit(255)
    sys.exit(0)
print("unexpected command: " + " ".join(args), file=sys.stderr)
sys.exit(3)
"""

runner = CliRunner()


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "pulumi"
    fake.write_text(f"#!{sys.executable}\n{FAKE_ENGINE}")
    fake.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    monkeypatch.setenv("FAKE_PULUMI_LOG", str(log))
    monkeypatch.setenv("PULUMI_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FAKE_PULUMI_VIOLATION", raising=False)
    return log


def calls(log: Path) -> list[list[str]]:
    """Each engine invocation, without the global flag the Automation API puts first."""
    if not log.exists():
        return []
    return [[a for a in json.loads(line) if a != "--non-interactive"] for line in log.read_text().splitlines()]


def test_preview_runs_the_policy_pack_and_streams_progress(engine: Path) -> None:
    result = runner.invoke(app, ["infra", "preview", "--stack", "lab"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "Previewing (lab):" in result.output
    assert "resources: create 2; policy violations: 0; failed operations: 0" in result.output
    preview = next(c for c in calls(engine) if c[0] == "preview")
    assert preview[preview.index("--policy-pack") + 1] == str(INFRA_DIR / "policy")
    assert preview[preview.index("--stack") + 1] == "lab"
    assert ["stack", "select", "--stack", "lab"] in calls(engine)


def test_up_asks_first_and_destroy_skips_the_pack(engine: Path) -> None:
    refused = runner.invoke(app, ["infra", "up", "--stack", "lab"], input="n\n")
    assert refused.exit_code != 0
    assert not any(c[0] == "up" for c in calls(engine))
    done = runner.invoke(app, ["infra", "up", "--stack", "lab"], input="y\n")
    assert done.exit_code == 0, done.output + repr(done.exception)
    up = next(c for c in calls(engine) if c[0] == "up")
    assert "--policy-pack" in up
    gone = runner.invoke(app, ["infra", "destroy", "--stack", "lab", "--yes"])
    assert gone.exit_code == 0, gone.output + repr(gone.exception)
    assert "resources: delete 2" in gone.output
    destroy = next(c for c in calls(engine) if c[0] == "destroy")
    assert "--policy-pack" not in destroy


def test_a_policy_violation_fails_the_command_with_its_message(engine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_PULUMI_VIOLATION", "rule 'x' opens tcp 22-22 to the whole world")
    result = runner.invoke(app, ["infra", "preview", "--stack", "lab"])
    assert isinstance(result.exception, UserError)
    msg = str(result.exception)
    assert "pulumi preview on stack 'lab' failed" in msg
    assert "no-world-open-ingress-except-web: rule 'x' opens tcp 22-22 to the whole world" in msg


def test_inventory_from_the_stack_outputs(engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from infra.program import host_groups
    from inventory.hosts import plan_hosts
    from inventory.loader import load_catalog

    cat = load_catalog("lab")
    groups = host_groups(cat)
    # the cloud gave other addresses than planned (say, after a rebuild in another subnet)
    hosts = {
        h.name: {"address": f"192.168.77.{i + 10}", "groups": groups[h.name]} for i, h in enumerate(plan_hosts(cat))
    }
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({"hosts": hosts, "catalog": "lab"}))
    monkeypatch.setenv("FAKE_PULUMI_OUTPUTS", str(outputs))
    target = tmp_path / "inventory.yml"
    result = runner.invoke(app, ["infra", "inventory", "--stack", "lab", "-o", str(target)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    inv = yaml.safe_load(target.read_text())
    assert {n: h["ansible_host"] for n, h in inv["all"]["hosts"].items()} == {n: h["address"] for n, h in hosts.items()}
    assert "archive-app-01" in inv["all"]["children"]["archive_service"]["hosts"]


def test_prod_preview_passes_the_stack_policy_config(engine: Path) -> None:
    result = runner.invoke(app, ["infra", "preview", "--stack", "prod"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    preview = next(c for c in calls(engine) if c[0] == "preview")
    assert preview[preview.index("--policy-pack-config") + 1] == str(INFRA_DIR / "policy" / "config.prod.json")
    lab = runner.invoke(app, ["infra", "preview", "--stack", "lab"])
    assert lab.exit_code == 0
    assert "--policy-pack-config" not in [c for c in calls(engine) if c[0] == "preview"][-1]


def test_policy_pack_configs_match_the_pack_and_the_stacks() -> None:
    """Every config file names real policies and settings; prod's encrypted types are the stack's."""
    from infra.policy import rules

    by_name = {p.name: p for p in rules.POLICIES}
    for path in (INFRA_DIR / "policy").glob("config.*.json"):
        stack = path.name.split(".")[1]
        doc = json.loads(path.read_text())
        for policy_name, settings in doc.items():
            policy = by_name[policy_name]
            assert policy.config_schema is not None
            assert set(settings) <= set(policy.config_schema.properties), (path, policy_name)
        stack_cfg = yaml.safe_load((INFRA_DIR / f"Pulumi.{stack}.yaml").read_text())["config"]
        types = set(stack_cfg.get("hdc:volumeTypes", {}).values())
        assert types <= set(doc["medical-volumes-encrypted"]["encryptedVolumeTypes"])


def test_without_the_infra_extra_the_engine_commands_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Application hosts install plain `hdc`: no Pulumi SDK there, and the command says so."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith("pulumi") else real(name, *a)
    )
    for args in (["infra", "preview", "--stack", "lab"], ["infra", "inventory", "--stack", "lab"]):
        result = CliRunner().invoke(app, args)
        assert isinstance(result.exception, UserError), result.output
        assert "pip install 'hdc[infra]'" in str(result.exception)
    plan = CliRunner().invoke(app, ["infra", "plan", "--catalog", "lab"])
    assert plan.exit_code == 0, plan.output  # planning needs no SDK
