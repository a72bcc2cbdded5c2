"""Load a catalog directory (or single file), validate it whole, and report problems by file and line."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import ValidationError

from .checks import run_checks
from .model import Catalog
from .yamlsrc import Position, Sourced, YamlError, merge_files, merge_values

CATALOGS_DIR = Path(__file__).resolve().parent / "catalogs"


@dataclass(frozen=True)
class Problem:
    position: Position | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        return f"{where}{self.field}: {self.message}" if self.field else f"{where}{self.message}"


class CatalogError(Exception):
    """Raised with every problem found; str() is the report an operator reads."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def format_path(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def resolve_path(path: str | Path) -> Path:
    """A catalog is a path, or the name of a shipped example ('lab', 'tunisia')."""
    candidate = Path(path)
    if not candidate.exists() and (CATALOGS_DIR / str(path)).is_dir():
        return CATALOGS_DIR / str(path)
    return candidate


def _catalog_files(root: Path) -> list[tuple[Path, str]]:
    if root.is_file():
        return [(root, str(root))]
    if not root.is_dir():
        raise CatalogError([Problem(None, "", f"{root}: no such catalog file or directory")])
    files = sorted(p for p in root.rglob("*") if p.suffix in {".yaml", ".yml"} and p.is_file())
    if not files:
        raise CatalogError([Problem(None, "", f"{root}: no .yaml files in this directory")])
    return [(p, str(p)) for p in files]


def _validation_problems(exc: ValidationError, src: Sourced) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        # drop union tags and function names pydantic adds to locations
        doc_path = tuple(p for p in loc if isinstance(p, int) or not str(p).startswith("function-"))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling)"
        field = _clean(doc_path, src)
        if err["type"] == "value_error" and field and field not in src.positions:
            field = field[:-1]  # a union tag such as '2c', not a field of the document
        problems.append(Problem(src.where(doc_path), format_path(field), msg))
    return problems


def _clean(path: tuple[str | int, ...], src: Sourced) -> tuple[str | int, ...]:
    """Keep only the parts of a pydantic loc that name places in the document (plus the final field)."""
    kept: tuple[str | int, ...] = ()
    for i, part in enumerate(path):
        if (*kept, part) in src.positions or i == len(path) - 1:
            kept = (*kept, part)
    return kept


def load_catalog(path: str | Path) -> Catalog:
    """Parse, validate and cross-check; raise CatalogError listing every problem.

    A valid catalog is loaded without line positions; only when something is wrong is it read
    again with them, so that every problem is reported by file and line.
    """
    root = resolve_path(path)
    try:
        catalog = Catalog.model_validate(merge_values(_catalog_files(root)))
        if not run_checks(catalog):
            return catalog
    except (YamlError, ValidationError, OSError, UnicodeDecodeError):
        pass
    catalog, _ = load_with_positions(root)
    return catalog  # pragma: no cover - reached only if the fast path is stricter than the precise one


def load_with_positions(path: str | Path) -> tuple[Catalog, Sourced]:
    root = resolve_path(path)
    try:
        src = merge_files(_catalog_files(root))
    except YamlError as exc:
        raise CatalogError([Problem(exc.position, "", exc.message)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError([Problem(None, "", f"{root}: cannot read: {exc}")]) from None
    try:
        catalog = Catalog.model_validate(src.data)
    except ValidationError as exc:
        raise CatalogError(_validation_problems(exc, src)) from None
    findings = run_checks(catalog)
    if findings:
        raise CatalogError([Problem(src.where(p), format_path(p), m) for p, m in findings])
    return catalog, src


@lru_cache(maxsize=8)
def load_cached(path: str) -> Catalog:
    """For long-running services that read the same catalog many times."""
    return load_catalog(path)
