"""Pydantic models at the API edge: what clients send and what every endpoint returns."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator


def _utf8(value: str) -> str:
    """Text the archive can hash, seal and store: a lone surrogate (valid in JSON's \\uXXXX) is not."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be UTF-8 text (a lone surrogate such as \\ud800 is not)") from None
    return value


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
PatientId = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True), AfterValidator(_utf8)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]


class RecordClass(StrEnum):
    MEDICAL = "medical"
    ADMINISTRATIVE = "administrative"


class RecordMetadata(BaseModel):
    """Metadata sent with a record (JSON in the X-Archive-Metadata header, UTF-8 or ASCII-escaped)."""

    model_config = ConfigDict(extra="forbid")

    record_class: RecordClass
    subclass: Slug = Field(description="e.g. imaging, consultation, discharge, hr, finance")
    facility: Slug = Field(description="facility id from the catalog")
    patient_id: PatientId | None = Field(
        None, description="required for medical records, forbidden otherwise; stored only as a keyed hash"
    )
    document_date: date
    title: Annotated[str, StringConstraints(min_length=1, max_length=500, strip_whitespace=True)]
    author: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    language: Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Z]{2})?$")] = "ar"
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)

    @field_validator("document_date")
    @classmethod
    def _not_future(cls, value: date) -> date:
        if value > datetime.now(UTC).date():
            raise ValueError("document_date is in the future")
        return value

    @model_validator(mode="after")
    def _patient_rule(self) -> RecordMetadata:
        if self.record_class is RecordClass.MEDICAL and not self.patient_id:
            raise ValueError("patient_id: required for a medical record")
        if self.record_class is RecordClass.ADMINISTRATIVE and self.patient_id:
            raise ValueError("patient_id: an administrative record carries no patient identifier")
        return self


class VersionOut(BaseModel):
    version: int
    size: int
    sha256: str
    content_type: str
    title: str
    author: str
    language: str
    tags: list[str]
    document_date: date
    subclass: str
    created_at: datetime
    created_by: str
    correction_reason: str | None = None
    retain_until: datetime
    state: str


class RecordOut(BaseModel):
    record_id: str
    record_class: RecordClass
    subclass: str
    facility: str
    has_patient: bool = Field(description="the patient identifier itself is never returned")
    document_date: date
    title: str
    author: str
    language: str
    tags: list[str]
    content_type: str
    current_version: int
    size: int
    sha256: str
    retain_until: datetime
    legal_hold: bool
    status: str
    created_at: datetime


class IngestOut(RecordOut):
    version: int


class SearchQuery(BaseModel):
    """Search filters (POST body, so patient identifiers never appear in URLs or access logs)."""

    model_config = ConfigDict(extra="forbid")

    patient_id: PatientId | None = None
    facility: Slug | None = None
    record_class: RecordClass | None = None
    subclass: Slug | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: Annotated[str, StringConstraints(max_length=200)] | None = Field(None, description="words of the title")
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: str | None = None

    @model_validator(mode="after")
    def _range(self) -> SearchQuery:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError("date_from is after date_to")
        return self


class SearchOut(BaseModel):
    results: list[RecordOut]
    next_cursor: str | None


class RetentionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    retain_until: datetime
    reason: Annotated[str, StringConstraints(min_length=3, max_length=1000)]

    @field_validator("retain_until")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        """In UTC: the catalog keeps UTC (SQLite drops an offset), the store gets the same instant."""
        try:
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        except OverflowError:  # 9999-12-31T23:59:59-14:00 is past the last datetime in UTC
            raise ValueError("retain_until is out of range") from None


STORE_SYNCED = Field(
    True,
    description="false (with HTTP 202): recorded in the catalog, which the service decides by, but the store "
    "stopped before every version had it; the service applies the rest by itself (store_sync)",
)


class RetentionOut(BaseModel):
    record_id: str
    retain_until: datetime
    versions: int
    store_synced: bool = STORE_SYNCED


class HoldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: Annotated[str, StringConstraints(min_length=3, max_length=1000)]


class HoldEvent(BaseModel):
    action: str
    reason: str
    actor: str
    at: datetime


class HoldOut(BaseModel):
    record_id: str
    legal_hold: bool
    history: list[HoldEvent]
    store_synced: bool = STORE_SYNCED


class DueRecord(BaseModel):
    record_id: str
    record_class: RecordClass
    subclass: str
    facility: str
    retain_until: datetime
    title: str


class DueOut(BaseModel):
    records: list[DueRecord]


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    record_ids: Annotated[list[str], Field(min_length=1, max_length=1000)]
    reason: Annotated[str, StringConstraints(min_length=3, max_length=1000)]


class DispositionOut(BaseModel):
    request_id: str
    status: str
    record_ids: list[str]
    reason: str
    requested_by: str
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    executed_by: str | None = None
    executed_at: datetime | None = None
    certificate_key: str | None = None


class CertificateOut(BaseModel):
    certificate_id: str
    object_key: str
    sha256: str
    document: dict[str, object]


class AuditEntryOut(BaseModel):
    seq: int
    ts: str
    actor: str | None = None
    roles: list[str] = Field(default_factory=list)
    facility: str | None = None
    method: str
    path: str
    status: int
    outcome: str
    record_id: str | None = None
    justification: str | None = None
    flagged: bool = False


class FlaggedOut(BaseModel):
    entries: list[AuditEntryOut]


class AuditVerifyOut(BaseModel):
    ok: bool
    entries: int
    objects: int
    problems: list[str]


class FixityItem(BaseModel):
    record_id: str
    version: int
    ok: bool
    detail: str


class FixityOut(BaseModel):
    checked: int
    failures: list[FixityItem]


class RewrapOut(BaseModel):
    current_key: str
    rewrapped: int


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ErrorOut(BaseModel):
    detail: str
