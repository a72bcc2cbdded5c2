"""`hdc monitor …`: poll-once against simulated routers, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hdc.errors import UserError
from monitor.cli import app
from monitor.simulator import Simulator

from .helpers import facility, udp_port, write_catalog, write_secrets

runner = CliRunner()


@pytest.mark.slow
def test_poll_once_json_and_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_SECRETS_DIR", str(tmp_path / "secrets"))
    write_secrets(tmp_path / "secrets")
    port = udp_port()
    cat_dir = tmp_path / "cat"
    cat = write_catalog(cat_dir, [facility("cli-a", "127.74.0.1", port), facility("cli-b", "127.74.0.2", port)])
    with Simulator(cat, tmp_path / "sim", facility_ids={"cli-a"}) as sim:
        res = runner.invoke(app, ["poll-once", "--catalog", str(cat_dir), "--json", "--gap", "1", "--timeout", "0.5"])
        assert res.exit_code == 0, res.output
        data = json.loads(res.stdout)
        assert data["cli-a"]["link_up"] is True
        assert abs(data["cli-a"]["in_bps"] - sim.expected["cli-a"].in_bps) <= 0.02 * sim.expected["cli-a"].in_bps
        assert data["cli-b"]["reason"] == "timeout" and data["cli-b"]["reachable"] is False
        res = runner.invoke(app, ["poll-once", "--catalog", str(cat_dir), "--gap", "0", "--timeout", "0.5"])
        assert res.exit_code == 0 and "cli-a" in res.stdout and "cli-b: no answer" in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--shard", "3/2"], "--shard"),
        (["run", "--listen", "nowhere"], "--listen"),
        (["run", "--interval", "0"], "interval"),
        (["poll-once", "--timeout", "-1"], "timeout"),
    ],
)
def test_bad_options_are_user_errors(args: list[str], message: str) -> None:
    res = runner.invoke(app, [*args, "--catalog", "lab"])
    assert isinstance(res.exception, UserError) and message in str(res.exception), res.output


def test_hdc_exits_2_with_a_message_not_a_traceback() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "hdc", "monitor", "run", "--catalog", "lab", "--interval", "1", "--timeout", "5"],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert res.returncode == 2, res.stderr
    assert "exceeds the interval" in res.stderr and "Traceback" not in res.stderr


def test_simulator_refuses_routers_it_cannot_serve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HDC_SECRETS_DIR", str(tmp_path / "secrets"))
    write_secrets(tmp_path / "secrets")
    cat = write_catalog(tmp_path / "cat", [facility("here", "127.76.0.1", 1161), facility("remote", "10.9.8.7", 161)])
    sim = Simulator(cat, tmp_path / "sim")
    with pytest.raises(UserError, match=r"facility remote: router 10\.9\.8\.7 is not a loopback address"):
        sim.start()
    assert sim.process is None and sim._datadir is None  # nothing started, nothing left behind
