"""`hdc monitor operators …`: who may use the NOC page and the alert API.

Passwords are read from the terminal (twice) or from standard input (`--password-stdin`, for
automation such as the monitor role); only scrypt hashes are written.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from pydantic import TypeAdapter, ValidationError

from hdc.errors import UserError

from .access import (
    Operator,
    OperatorsFile,
    Role,
    UserName,
    hash_password,
    load_operators,
    save_operators,
    verify_password,
)

operators_app = typer.Typer(
    help="Operators of the NOC page and alert API (HTTP Basic, scrypt hashes).", no_args_is_help=True
)


def _file(path: Path | None) -> Path:
    value = path or os.environ.get("HDC_ALERTING_OPERATORS")
    if not value:
        raise UserError("give --file or set HDC_ALERTING_OPERATORS (the operators file the monitor reads)")
    return Path(value)


FileOpt = typer.Option(None, "--file", help="operators file (default: HDC_ALERTING_OPERATORS)")


def _read_password(stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt("password", hide_input=True)
    if typer.prompt("again", hide_input=True) != first:
        raise UserError("the two passwords differ")
    return str(first)


@operators_app.command("add")
def add(
    name: str = typer.Argument(..., help="user name (letters, digits, . _ @ -)"),
    role: Role = typer.Option(
        Role.operator, help="viewer: read; operator: also ack and silence; webhook: Alertmanager"
    ),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
    file: Path | None = FileOpt,
) -> None:
    """Add an operator, or set a new password and role for an existing one."""
    path = _file(file)
    data = load_operators(path) if path.exists() else OperatorsFile()
    try:  # the name first: no point asking for a password to refuse it afterwards
        TypeAdapter(UserName).validate_python(name)
    except ValidationError as exc:
        problems = "; ".join(f"name: {e['msg']}" for e in exc.errors(include_url=False))
        raise UserError(f"{name!r}: {problems}") from None
    op = Operator(name=name, role=role, password=hash_password(_read_password(password_stdin)))
    others = [o for o in data.operators if o.name != name]
    verb = "updated" if len(others) < len(data.operators) else "added"
    save_operators(path, OperatorsFile(operators=[*others, op]))
    typer.echo(f"{verb} {name} ({role.value}) in {path}")


@operators_app.command("hash")
def hash_command(
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from standard input"),
    verify: str | None = typer.Option(
        None, "--verify", metavar="HASH", help="check the password against HASH instead: exit 0 if it matches, 1 if not"
    ),
) -> None:
    """Print the scrypt hash of a password (for an operators list kept in a vault), or check one.

    The hash is what `add` writes in the operators file; nothing else is printed, so it can be
    captured (`hash=$(hdc monitor operators hash --password-stdin <pw)`). With `--verify`, a
    deployment tool keeps an existing hash when the password has not changed (a new salt every
    run would rewrite the file on every converge).
    """
    password = _read_password(password_stdin)
    if verify is None:
        typer.echo(hash_password(password))
        return
    try:
        matches = verify_password(password, verify)
    except ValueError as exc:
        raise UserError(f"--verify: {exc}") from None
    raise typer.Exit(0 if matches else 1)


@operators_app.command("remove")
def remove(name: str = typer.Argument(...), file: Path | None = FileOpt) -> None:
    """Remove an operator (a running monitor re-reads the file: their next request is refused)."""
    path = _file(file)
    data = load_operators(path)
    kept = [o for o in data.operators if o.name != name]
    if len(kept) == len(data.operators):
        raise UserError(f"{path}: no operator named {name!r}")
    save_operators(path, OperatorsFile(operators=kept))
    typer.echo(f"removed {name} from {path}")


@operators_app.command("list")
def list_operators(file: Path | None = FileOpt) -> None:
    """Names and roles (never the hashes)."""
    for op in load_operators(_file(file)).operators:
        typer.echo(f"{op.name}\t{op.role.value}")
