"""Load YAML into a pydantic model and report every problem with its file, line and field.

Shared by the rule file and the notification routing file: an operator's typo must be
reported as `rules.yaml:12: rules[3].for: must be a duration …`, never as a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from hdc.errors import UserError
from inventory.yamlsrc import PathKey, Position, YamlError, load_file

from .schema import RuleFile

DEFAULT_RULES = Path(__file__).resolve().parent / "default.yaml"
REPO_ROOT = Path(__file__).resolve().parents[2]


def runbooks_root() -> Path:
    """Where runbook pages live: HDC_RUNBOOKS_DIR (an installed host), else the repository's (or
    the wheel's, which ships `runbooks/` beside the packages)."""
    return Path(os.environ.get("HDC_RUNBOOKS_DIR") or REPO_ROOT / "runbooks")


M = TypeVar("M", bound=BaseModel)


class RulesError(UserError):
    """A configuration file with problems; the message lists each one as file:line: field: message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def _where(positions: dict[PathKey, Position], path: tuple[str | int, ...]) -> Position | None:
    best = positions.get(())
    current: PathKey = ()
    for part in path:
        candidate = (*current, part)
        if candidate in positions:
            current = candidate
            best = positions[candidate]
    return best


def _field(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def validate_file(path: Path, model: type[M], what: str) -> M:
    """Parse `path` and validate it as `model`; raise RulesError naming line and field of each problem."""
    try:
        data, positions = load_file(path)
    except YamlError as exc:
        raise RulesError([f"{exc.position}: {exc.message}"]) from None
    except FileNotFoundError:
        raise RulesError([f"{path}: no such {what} file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([f"{path}: cannot read the {what} file: {exc}"]) from None
    if data is None:
        raise RulesError([f"{path}:1: the {what} file is empty"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if isinstance(p, int) or not str(p).startswith("function-"))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "required field is missing"
            elif err["type"] == "extra_forbidden":
                msg = "unknown field (check the spelling)"
            pos = _where(positions, loc)
            name = _field(tuple("for" if p == "for_" else p for p in loc))
            problems.append(f"{pos or path}: {name}: {msg}" if name else f"{pos or path}: {msg}")
        raise RulesError(problems) from None


def load_rules(path: str | Path | None = None) -> RuleFile:
    """The rule file at `path` (default: the shipped `default.yaml`), with runbook pages checked to exist."""
    file = Path(path) if path is not None else DEFAULT_RULES
    rules = validate_file(file, RuleFile, "rule")
    missing = [
        f"{file}: rules[{i}].runbook: {r.runbook} does not exist under {runbooks_root()}"
        for i, r in enumerate(rules.rules)
        if not r.runbook.startswith(("http://", "https://"))
        and not (runbooks_root() / r.runbook.removeprefix("runbooks/")).is_file()
    ]
    if missing:
        raise RulesError(missing)
    return rules
