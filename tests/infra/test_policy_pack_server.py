"""The policy pack as the engine runs it: `python infra/policy/__main__.py` serving the Analyzer gRPC API."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from hdc.procs import ManagedProcess, wait_until
from infra.policy import rules

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    log = tmp_path_factory.mktemp("policy") / "pack.log"
    proc = ManagedProcess(
        "policy-pack", [sys.executable, str(REPO / "infra/policy/__main__.py")], log, cwd=REPO / "infra/policy"
    )
    proc.start()
    try:
        port: list[int] = []

        def announced() -> bool:
            if not proc.alive():
                raise RuntimeError(f"policy pack exited:\n{proc.tail()}")
            m = re.match(r"^(\d+)$", log.read_text().strip().splitlines()[0]) if log.read_text().strip() else None
            if m:
                port.append(int(m.group(1)))
            return bool(port)

        wait_until(announced, 60, "policy pack port")
        with grpc.insecure_channel(f"127.0.0.1:{port[0]}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.stop()


def test_pack_announces_every_policy(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "hdc-health-data"
    assert {p.name for p in info.policies} == {p.name for p in rules.POLICIES}
    assert all(p.enforcementLevel == analyzer_pb2.MANDATORY for p in info.policies)


def _analyze(analyzer: analyzer_pb2_grpc.AnalyzerStub, typ: str, name: str, props: dict) -> list[str]:
    s = struct_pb2.Struct()
    s.update(props)
    req = analyzer_pb2.AnalyzeRequest(type=typ, properties=s, urn=f"urn:pulumi:prod::hdc::{typ}::{name}", name=name)
    return [d.policyName for d in analyzer.Analyze(req, timeout=30).diagnostics]


def test_pack_blocks_ssh_open_to_the_world(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    bad = {
        "direction": "ingress",
        "protocol": "tcp",
        "portRangeMin": 22,
        "portRangeMax": 22,
        "remoteIpPrefix": "0.0.0.0/0",
    }
    assert _analyze(analyzer, rules.SEC_GROUP_RULE, "ssh", bad) == ["no-world-open-ingress-except-web"]
    good = {**bad, "portRangeMin": 443, "portRangeMax": 443}
    assert _analyze(analyzer, rules.SEC_GROUP_RULE, "https", good) == []
