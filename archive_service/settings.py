"""Service settings (env prefix HDC_ARCHIVE_), validated once at start with messages naming the setting."""

from __future__ import annotations

import calendar
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from hdc.errors import UserError

_DURATION = re.compile(r"^\s*(\d+)\s*(y|mo|w|d|h|m|s)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "mo": 30 * 86400, "y": 365 * 86400}

#: Default retention schedules (runbooks/archive/retention-schedules.md): key = class or class/subclass.
DEFAULT_RETENTION = {"medical": "20y", "administrative": "10y"}

MiB = 1024 * 1024
#: Longer than any retention law asks, and short enough that every date it gives fits a datetime.
MAX_DURATION_SECONDS = 1000 * 365 * 86400
_INSTANCE_ID = re.compile(r"^(?!\.\.?$)[A-Za-z0-9._-]{1,64}$")


def parse_duration(text: str) -> timedelta:
    """'20y', '6mo', '30d', '12h', '5m', '90s' → timedelta (a year counts 365 days, a month 30)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration: use a number and a unit among y, mo, w, d, h, m, s (e.g. 20y)")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError(f"'{text}': a retention duration must be positive")
    seconds = amount * _UNIT_SECONDS[unit]
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"'{text}': longer than 1000 years")
    return timedelta(seconds=seconds)


def add_duration(start: datetime, text: str) -> datetime:
    """start + duration, with years and months on the calendar (20y after 29 Feb lands on 28 Feb)."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration")
    amount, unit = int(match.group(1)), match.group(2)
    if unit in ("y", "mo"):
        months = start.month - 1 + amount * (12 if unit == "y" else 1)
        year, month = start.year + months // 12, months % 12 + 1
        day = min(start.day, calendar.monthrange(year, month)[1])
        return start.replace(year=year, month=month, day=day)
    return start + parse_duration(text)


class ArchiveSettings(BaseSettings):
    """Everything the archive service reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="HDC_ARCHIVE_", extra="ignore")

    state_dir: Path = Field(Path(".state/archive"), description="local state: keys, audit write-ahead, SQLite")
    catalog: str = Field("lab", description="inventory catalog (name or path) whose facility ids are valid")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default sqlite:///STATE_DIR/catalog.db")

    s3_endpoint: str = Field("127.0.0.1:8333", description="host:port of the S3 API")
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_secure: bool = False
    s3_region: str | None = None
    s3_sse: bool = Field(True, description="ask the store for SSE-S3 on every object (in addition to our envelope)")
    bucket_records: str = "hdc-archive-records"
    bucket_audit: str = "hdc-archive-audit"
    bucket_default_retention_days: Annotated[int, Field(ge=1)] = Field(
        3650, description="default COMPLIANCE retention of the buckets: the safety net under per-object dates"
    )

    retention: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_RETENTION))
    medical_retention_from_last_document: bool = Field(
        True, description="a new medical document extends the retention of the patient's earlier records"
    )
    min_retention: str = Field("1d", description="every version stays locked at least this long after ingest")
    audit_retention: str = "10y"
    certificate_retention: str = "100y"

    kek_file: Path | None = Field(None, description="key-encryption keyring; default STATE_DIR/keyring.json")
    kek: str | None = Field(None, description="base64 256-bit key-encryption key (instead of a keyring file)")
    index_key: str | None = Field(None, description="base64 key for patient-identifier HMACs (with HDC_ARCHIVE_KEK)")

    jwt_issuer: str = "hdc-archive-local"
    jwt_audience: str = "hdc-archive"
    jwks_url: str | None = Field(None, description="issuer's JWKS URL; unset = the local signing key (embedded)")
    jwt_roles_claim: str = "roles"
    jwt_facility_claim: str = "facility"
    jwt_leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 30

    max_record_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * MiB
    chunk_size: Annotated[int, Field(ge=4096, le=16 * MiB)] = MiB
    part_chunks: Annotated[int, Field(ge=1, le=1024)] = Field(8, description="encryption chunks per S3 part")
    upload_concurrency: Annotated[int, Field(ge=1, le=32)] = 4

    audit_flush_seconds: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 2.0
    audit_batch_max: Annotated[int, Field(ge=1)] = 1000
    audit_fsync: bool = Field(True, description="fsync the audit write-ahead after each entry")
    store_sync_seconds: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = Field(
        30, description="how often holds and locks a store outage left behind are applied again (store_sync.py)"
    )
    reconcile_grace_seconds: Annotated[float, Field(ge=0, le=30 * 86400, allow_inf_nan=False)] = Field(
        3600, description="pending ingests of other instances younger than this are left alone"
    )
    instance_id: str | None = Field(None, description="stable id of this service instance; default from state dir")

    @field_validator("state_dir")
    @classmethod
    def _check_state_dir(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a directory")
        return value

    @field_validator("instance_id")
    @classmethod
    def _check_instance(cls, value: str | None) -> str | None:
        if value is not None and not _INSTANCE_ID.match(value):
            raise ValueError("letters, digits, '.', '_' and '-' only (it names a directory and an S3 prefix)")
        return value

    @field_validator("s3_endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        if "://" in value or "/" in value:
            raise ValueError(f"'{value}': host:port only, without a scheme or path (TLS is HDC_ARCHIVE_S3_SECURE=true)")
        return value

    @field_validator("retention")
    @classmethod
    def _check_retention(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            top = key.split("/", 1)[0]
            if top not in ("medical", "administrative"):
                raise ValueError(f"retention key '{key}': must be medical, administrative or CLASS/SUBCLASS")
            try:
                parse_duration(text)
            except ValueError as exc:
                raise ValueError(f"retention['{key}']: {exc}") from None
        for top in ("medical", "administrative"):
            if top not in value:
                raise ValueError(f"retention: a schedule for '{top}' is required")
        return value

    @field_validator("audit_retention", "certificate_retention", "min_retention")
    @classmethod
    def _check_duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _check_part_size(self) -> ArchiveSettings:
        if self.part_size < 5 * MiB:
            raise ValueError(
                f"chunk_size × part_chunks = {self.part_size} bytes: S3 parts must be at least 5 MiB "
                "(raise HDC_ARCHIVE_PART_CHUNKS or HDC_ARCHIVE_CHUNK_SIZE)"
            )
        return self

    @property
    def part_size(self) -> int:
        """Plaintext bytes per S3 part."""
        return self.chunk_size * self.part_chunks

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.state_dir.resolve() / 'catalog.db'}"

    @property
    def keyring_path(self) -> Path:
        return self.kek_file or self.state_dir / "keyring.json"

    def retention_for(self, record_class: str, subclass: str) -> str:
        """The schedule (duration text) for a class, a class/subclass entry taking precedence."""
        return self.retention.get(f"{record_class}/{subclass}") or self.retention[record_class]


def load_settings(**overrides: object) -> ArchiveSettings:
    """Read and validate the settings; a bad value becomes a UserError naming the variable."""
    try:
        return ArchiveSettings(**overrides)  # type: ignore[arg-type]
    except SettingsError as exc:  # a JSON-valued variable (HDC_ARCHIVE_RETENTION) that is not JSON
        raise UserError(f"invalid archive settings: {exc} (HDC_ARCHIVE_RETENTION takes a JSON object)") from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"]) or "settings"
            lines.append(f"HDC_ARCHIVE_{field.split('.')[0].upper()} ({field}): {err['msg']}")
        raise UserError("invalid archive settings:\n  " + "\n  ".join(lines)) from None
