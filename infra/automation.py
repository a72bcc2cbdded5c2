"""Drive the Pulumi engine from `hdc infra preview|up|destroy` through the Automation API.

The engine is the `pulumi` CLI; without it nothing can be previewed or deployed, so the first
thing checked is that it is installed, and the operator is told what to install if not.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from hdc.errors import UserError

from .settings import INFRA_DIR

INSTALL_URL = "https://www.pulumi.com/docs/iac/download-install/"
POLICY_PACK_DIR = INFRA_DIR / "policy"
Action = Literal["preview", "up", "destroy"]


def require_pulumi_sdk() -> None:
    """The Pulumi SDK is the `infra` extra: application hosts install `hdc` without it."""
    if importlib.util.find_spec("pulumi") is None or importlib.util.find_spec("pulumi_openstack") is None:
        raise UserError(
            "the Pulumi SDK is not installed in this environment: install the provisioning extra "
            "(`pip install 'hdc[infra]'`; `make setup` does it on a workstation). `hdc infra plan` works without it."
        )


def require_pulumi_cli() -> str:
    require_pulumi_sdk()
    path = shutil.which("pulumi")
    if path is None:
        raise UserError(
            "the Pulumi CLI (the engine) is not installed or not on PATH. Install it — "
            f"see {INSTALL_URL} (for example `curl -fsSL https://get.pulumi.com | sh`, then add "
            "~/.pulumi/bin to PATH) — log in to a state backend (`pulumi login file://…` or "
            "`pulumi login s3://…`), and run this command again. `hdc infra plan` works without it."
        )
    return path


def stack_config_file(stack: str) -> str:
    path = INFRA_DIR / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        known = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in INFRA_DIR.glob("Pulumi.*.yaml"))
        raise UserError(
            f"stack '{stack}': no settings file {path} (known stacks: {', '.join(known)}). "
            f"Copy one of them to Pulumi.{stack}.yaml and set hdc:catalog."
        )
    return str(path)


@dataclass
class Progress:
    """Counts engine events, so the command can end with a one-line summary."""

    echo: Callable[[str], None]
    ops: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def on_event(self, event: object) -> None:
        pre = getattr(event, "resource_pre_event", None)
        if pre is not None and pre.metadata is not None:
            op = getattr(pre.metadata.op, "value", str(pre.metadata.op))
            self.ops[op] += 1
        policy = getattr(event, "policy_event", None)
        if policy is not None:
            self.violations.append(f"[{policy.enforcement_level}] {policy.policy_name}: {policy.message}")
        failed = getattr(event, "res_op_failed_event", None)
        if failed is not None:
            self.failures.append(str(getattr(failed.metadata, "urn", "")))

    def summary(self) -> str:
        ops = ", ".join(f"{op} {n}" for op, n in sorted(self.ops.items())) or "no changes"
        return f"resources: {ops}; policy violations: {len(self.violations)}; failed operations: {len(self.failures)}"


def run(
    action: Action, stack_name: str, echo: Callable[[str], None], policy: bool = True, refresh: bool = False
) -> str:
    """Run one engine operation on the stack and return its summary; raise UserError on failure."""
    require_pulumi_cli()
    stack_config_file(stack_name)
    require_pulumi_sdk()
    from pulumi import automation as auto

    progress = Progress(echo)
    packs = [str(POLICY_PACK_DIR)] if policy else None
    pack_config = POLICY_PACK_DIR / f"config.{stack_name}.json"
    configs = [str(pack_config)] if policy and pack_config.is_file() else None
    try:
        stack = auto.create_or_select_stack(stack_name=stack_name, work_dir=str(INFRA_DIR))
        if action == "preview":
            stack.preview(
                on_output=echo,
                on_event=progress.on_event,
                policy_packs=packs,
                policy_pack_configs=configs,
                refresh=refresh,
                diff=False,
            )
        elif action == "up":
            stack.up(
                on_output=echo,
                on_event=progress.on_event,
                policy_packs=packs,
                policy_pack_configs=configs,
                refresh=refresh,
            )
        else:
            stack.destroy(on_output=echo, on_event=progress.on_event, refresh=refresh)
    except auto.errors.CommandError as exc:
        detail = "\n".join(progress.violations) or str(exc).strip().splitlines()[-1]
        raise UserError(f"pulumi {action} on stack '{stack_name}' failed: {detail}") from None
    except FileNotFoundError:
        require_pulumi_cli()
        raise
    return progress.summary()


def stack_outputs(stack_name: str) -> dict[str, object]:
    """The stack's outputs (secrets stay masked: they are not needed for an inventory)."""
    require_pulumi_cli()
    stack_config_file(stack_name)
    require_pulumi_sdk()
    from pulumi import automation as auto

    try:
        stack = auto.select_stack(stack_name=stack_name, work_dir=str(INFRA_DIR))
        return {k: v.value for k, v in stack.outputs().items() if not v.secret}
    except auto.errors.CommandError as exc:
        raise UserError(
            f"cannot read the outputs of stack '{stack_name}': {str(exc).strip().splitlines()[-1]}"
        ) from None


def stack_catalog(stack_name: str) -> str:
    """`hdc:catalog` of a stack, from its settings file (a non-secret value)."""
    import yaml

    path = stack_config_file(stack_name)
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh) or {}
    value = (doc.get("config") or {}).get("hdc:catalog")
    if not isinstance(value, str):
        raise UserError(f"{path}: hdc:catalog is not set")
    return value
