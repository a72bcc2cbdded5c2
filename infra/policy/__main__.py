"""The policy pack the engine runs: `pulumi preview --policy-pack infra/policy`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pulumi_policy import EnforcementLevel, PolicyPack

from infra.policy.rules import POLICIES

PolicyPack(
    name="hdc-health-data",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=POLICIES,
)
