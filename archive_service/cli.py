"""`hdc archive …` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="archive_service commands.", no_args_is_help=True)
