"""`hdc catalog …`: check a catalog, render the Ansible inventory, regenerate the national example."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .ansible import render_inventory
from .loader import load_catalog
from .summary import render_summary, summarize

app = typer.Typer(help="The catalog of facilities, platforms and data-center zones.", no_args_is_help=True)

CatalogArg = Annotated[str, typer.Argument(help="catalog directory or file, or a shipped example: lab, tunisia")]


@app.command()
def check(
    path: CatalogArg,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> None:
    """Validate a catalog as a whole; print each problem with file, line and field (exit 1), or a summary."""
    cat = load_catalog(path)
    typer.echo(json.dumps(summarize(cat), ensure_ascii=False, indent=2) if as_json else render_summary(cat))


@app.command()
def inventory(
    path: CatalogArg,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
    addresses: Annotated[
        Path | None, typer.Option(help="JSON map host -> address (e.g. provisioning outputs) overriding the plan")
    ] = None,
) -> None:
    """Render the Ansible inventory (hosts and groups) from the catalog."""
    from hdc.errors import UserError

    cat = load_catalog(path)
    overrides: dict[str, str] | None = None
    if addresses is not None:
        try:
            raw = json.loads(addresses.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"--addresses {addresses}: {exc}") from None
        if not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            raise UserError(f"--addresses {addresses}: expected a JSON object of host name to address")
        overrides = raw
    text = render_inventory(cat, overrides)
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")


@app.command()
def generate(
    output: Annotated[Path, typer.Argument(help="directory to write the national example catalog into")],
) -> None:
    """Regenerate the national example catalog (deterministic: same output every time)."""
    from .generate import write_national_catalog

    files = write_national_catalog(output)
    typer.echo(f"wrote {len(files)} files to {output}")
