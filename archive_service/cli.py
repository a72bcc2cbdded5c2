"""`hdc archive …` commands: serve, dev store, dev tokens, audit verify, fixity, keys, reconcile, export."""

from __future__ import annotations

import json
import signal
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from hdc.errors import UserError

app = typer.Typer(help="The records archive (API, store, keys, audit).", no_args_is_help=True)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
keys_app = typer.Typer(help="Key-encryption keys.", no_args_is_help=True)
catalog_app = typer.Typer(help="The record catalog (the database indexing the store).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(keys_app, name="keys")
app.add_typer(catalog_app, name="catalog")


def _settings():  # type: ignore[no-untyped-def]
    from .settings import load_settings

    return load_settings()


def _open(writer: str = "cli"):  # type: ignore[no-untyped-def]
    """The archive for one command, auditing into `<instance>-<writer>` (a chain holds a lock while
    open: the nightly fixity job has its own, so an operator's commands never wait for it)."""
    from minio.error import S3Error

    from .service import Archive
    from .store import StoreRefused, StoreUnavailable

    settings = _settings()
    try:
        return Archive.open(settings, cli=True, writer=writer)
    except StoreUnavailable as exc:
        raise UserError(f"{exc} (check HDC_ARCHIVE_S3_ENDPOINT)") from None
    except (StoreRefused, S3Error) as exc:
        raise UserError(_refused(exc, settings.bucket_records, settings.bucket_audit)) from None


def _refused(exc: Exception, *buckets: str) -> str:
    """A store refusal as an operator reads it: which setting to check (never the secret itself)."""
    code = getattr(exc, "code", "") or ""
    if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied"):
        hint = "check HDC_ARCHIVE_S3_ACCESS_KEY and HDC_ARCHIVE_S3_SECRET_KEY"
    elif code in ("InvalidBucketName", "NoSuchBucket"):
        hint = f"check the bucket names ({', '.join(buckets)}: HDC_ARCHIVE_BUCKET_RECORDS, HDC_ARCHIVE_BUCKET_AUDIT, --bucket)"
    else:
        hint = "check the S3 settings (HDC_ARCHIVE_S3_*)"
    return f"the store refused the request ({code or type(exc).__name__}): {hint}"


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8080,
    embedded_store: Annotated[bool, typer.Option(help="start a SeaweedFS store in the state dir first")] = False,
) -> None:
    """Serve the API (OpenAPI docs at /docs). With --embedded-store, also run the local S3 store."""
    import os

    import uvicorn

    settings = _settings()
    store = None
    if embedded_store:
        from .devstore import start_devstore

        work = settings.state_dir / "store"
        if work.exists():
            # SeaweedFS remembers its ports, so the embedded store cannot start again on its data;
            # wiping it would leave the catalog pointing at records that are gone.
            raise UserError(
                f"{work} holds the embedded store of an earlier run, and the catalog in {settings.state_dir} "
                "its records: the embedded store is for trying the archive once. Use a new HDC_ARCHIVE_STATE_DIR, "
                f"or remove {settings.state_dir} to start over (every record in it is lost)"
            )
        store = start_devstore(work)
        os.environ.update(store.env())
        typer.echo(f"embedded store: SeaweedFS on {store.endpoint} (pid {store.process.pid}, data {work})")
    try:
        uvicorn.run("archive_service.app:app_from_env", factory=True, host=host, port=port, log_level="info")
    finally:
        if store is not None:
            store.stop()


@app.command()
def devstore(work_dir: Annotated[Path | None, typer.Option(help="fresh directory for its data")] = None) -> None:
    """Run a throw-away SeaweedFS store and print the settings that point the service at it."""
    from .devstore import start_devstore

    work = work_dir or Path(tempfile.mkdtemp(prefix="hdc-archive-store-"))
    store = start_devstore(work)
    for k, v in store.env().items():
        typer.echo(f"export {k}={v}")
    typer.echo(f"# SeaweedFS pid {store.process.pid}; Ctrl-C stops it", err=True)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        store.stop()


@app.command()
def token(
    role: Annotated[list[str], typer.Option(help="archivist, clinician, auditor or administrator (repeatable)")],
    subject: Annotated[str, typer.Option(help="the user the token names")] = "dev-user",
    facility: Annotated[str | None, typer.Option(help="facility id (clinicians: their facility)")] = None,
    ttl: Annotated[int, typer.Option(help="lifetime in seconds", min=1, max=30 * 86400)] = 3600,
) -> None:
    """Mint a development token signed by the embedded issuer's local key."""
    from .auth import Role, mint_token

    valid = {r.value for r in Role}
    for r in role:
        if r not in valid:
            raise UserError(f"--role {r}: unknown role (choose from {', '.join(sorted(valid))})")
    settings = _settings()
    if settings.jwks_url:
        raise UserError("HDC_ARCHIVE_JWKS_URL is set: tokens come from that issuer, not from `hdc archive token`")
    if facility:
        from .service import facility_ids

        if facility not in facility_ids(settings.catalog):
            raise UserError(f"--facility {facility}: not a facility of catalog {settings.catalog}")
    typer.echo(mint_token(settings, subject, role, facility, ttl))


@audit_app.command("verify")
def audit_verify(
    bucket: Annotated[str | None, typer.Option(help="verify a copy of the chain in another bucket")] = None,
) -> None:
    """Re-read the audit chain from the store; exit 1 on any altered, missing or reordered entry."""
    from minio.error import S3Error

    from .audit import local_heads, verify_chain
    from .store import ObjectStore, StoreRefused, StoreUnavailable

    settings = _settings()
    try:
        report = verify_chain(ObjectStore(settings), bucket, None if bucket else local_heads(settings.state_dir))
    except StoreUnavailable as exc:
        raise UserError(str(exc)) from None
    except (StoreRefused, S3Error) as exc:
        raise UserError(_refused(exc, bucket or settings.bucket_audit)) from None
    for p in report.problems:
        typer.echo(f"PROBLEM: {p}")
    typer.echo(
        f"{report.entries} entries in {report.objects} objects; "
        + ("chain intact" if report.ok else f"{len(report.problems)} problem(s)")
    )
    if not report.ok:
        raise typer.Exit(1)


@audit_app.command("expire")
def audit_expire(
    dry_run: Annotated[bool, typer.Option(help="list what would be removed, change nothing")] = False,
) -> None:
    """Delete the oldest audit batches whose lock has passed, behind a locked anchor `verify` starts from.

    Per writer only leading batches, each past its retain-until date, never the chain's last
    batch; they are re-verified first. The run itself is recorded in the operator chain.
    """
    import getpass

    from .audit_expiry import expire_audit
    from .store import StoreRefused, StoreUnavailable

    archive = _open()
    try:
        try:
            report = expire_audit(archive.store, archive.settings, dry_run=dry_run)
        except (StoreUnavailable, StoreRefused) as exc:
            raise UserError(f"audit expiry stopped: {exc} (run it again: it resumes)") from None
        verb = "would remove" if dry_run else "removed"
        for w in report.writers:
            if w.batches:
                typer.echo(f"{w.writer}: {verb} {len(w.batches)} batch(es) through entry {w.through_seq}")
            typer.echo(f"{w.writer}: kept from here — {w.kept_because}")
        for p in report.problems:
            typer.echo(f"PROBLEM: {p}")
        if not dry_run and report.removed:
            archive.audit.append(
                actor=f"cli:{getpass.getuser()}",
                roles=["operator"],
                method="CLI",
                path="/cli/audit/expire",
                status=200,
                outcome="allowed",
                reason=", ".join(f"{w.writer} through {w.through_seq}" for w in report.writers if w.batches),
            )
    finally:
        archive.close()
    typer.echo(f"{report.removed} batch(es) {verb}; {len(report.problems)} problem(s)")
    if report.problems:
        raise typer.Exit(1)


@app.command()
def fixity(
    limit: Annotated[
        int | None,
        typer.Option(help="check only the N versions checked longest ago (failed and never-checked first)", min=1),
    ] = None,
) -> None:
    """Re-read stored versions, decrypt and recompute their SHA-256; exit 1 on any mismatch."""
    from .fixity import run_fixity
    from .store import StoreUnavailable

    archive = _open("fixity")
    bad = checked = 0
    try:
        for res in run_fixity(archive, limit):
            checked += 1
            if not res.ok:
                bad += 1
                typer.echo(f"MISMATCH {res.record_id} v{res.version}: {res.detail}")
    except StoreUnavailable as exc:
        raise UserError(f"{exc}: fixity stopped after {checked} version(s) ({bad} failure(s)); run it again") from None
    finally:
        archive.close()
    typer.echo(f"{checked} version(s) checked, {bad} failure(s)")
    if bad:
        raise typer.Exit(1)


def _all_keys_present(archive: Any) -> None:
    """Every key-encryption key the catalog's data keys name is in the keyring: checked before a
    rotation saves a new key, so a wrong keyring stops the command instead of failing halfway."""
    from sqlalchemy import select

    from . import catalogdb as db

    with archive.engine.connect() as conn:
        used = {
            r[0]
            for r in conn.execute(select(db.versions.c.key_id).where(db.versions.c.state == "committed").distinct())
        }
    missing = sorted(used - set(archive.keys.keys))
    if missing:
        raise UserError(
            f"key(s) {', '.join(missing)} wrap data keys in the catalog but are not in the keyring "
            f"{archive.settings.keyring_path}: restore it from its backup (runbooks/archive/key-rotation.md) first"
        )


@keys_app.command("rotate")
def keys_rotate(rewrap: Annotated[bool, typer.Option(help="re-wrap every data key now")] = True) -> None:
    """Create a new key-encryption key, make it current, and re-wrap data keys (content untouched)."""
    from .rotation import rewrap_all

    archive = _open()
    try:
        _all_keys_present(archive)
        new = archive.keys.rotate()
        typer.echo(f"current key: {new}")
        if rewrap:
            typer.echo(f"re-wrapped {rewrap_all(archive)} data key(s)")
    finally:
        archive.close()


@keys_app.command("rewrap")
def keys_rewrap() -> None:
    """Re-wrap data keys still wrapped by an older key-encryption key."""
    from .rotation import rewrap_all

    archive = _open()
    try:
        _all_keys_present(archive)
        typer.echo(f"re-wrapped {rewrap_all(archive)} data key(s) under {archive.keys.current_key_id()}")
    finally:
        archive.close()


@keys_app.command("retire")
def keys_retire(key_id: str) -> None:
    """Remove an old key-encryption key once no data key uses it."""
    from sqlalchemy import func, select

    from . import catalogdb as db

    archive = _open()
    try:
        with archive.engine.connect() as conn:
            n = conn.execute(
                select(func.count()).select_from(db.versions).where(db.versions.c.key_id == key_id)
            ).scalar()
        if n:
            raise UserError(f"key {key_id} still wraps {n} data key(s): run `hdc archive keys rewrap` first")
        archive.keys.retire(key_id)
        typer.echo(f"retired {key_id}")
    finally:
        archive.close()


@app.command()
def reconcile(
    grace: Annotated[
        float | None,
        typer.Option(
            help="seconds after which a pending ingest counts as dead (default HDC_ARCHIVE_RECONCILE_GRACE_SECONDS); "
            "0 only when no service instance is running: younger ingests may be uploads in progress",
            min=0,
            max=30 * 86400,
        ),
    ] = None,
) -> None:
    """Settle ingests interrupted by a crash and apply holds and locks an outage left owed (also done
    at every service start, and by POST /admin/reconcile)."""
    archive = _open()
    try:
        typer.echo(json.dumps(archive.reconcile(grace)))
    finally:
        archive.close()


@app.command()
def export(
    record_id: str,
    out: Annotated[Path, typer.Option(help="file to write the decrypted content to")],
    version: Annotated[int | None, typer.Option(help="version (default: current)", min=1, max=2**31 - 1)] = None,
) -> None:
    """Restore a record's content straight from the store (decrypt and verify its SHA-256)."""
    import hashlib

    from cryptography.exceptions import InvalidTag

    from .crypto import KeyError_
    from .ingest import open_content
    from .service import NotFound
    from .store import StoreRefused, StoreUnavailable

    archive = _open()
    try:
        try:
            row = archive.version(record_id, version)
        except NotFound as exc:
            raise UserError(str(exc)) from None
        # Written beside `out` and moved over it only once verified: a failure leaves `out` as it was.
        if not out.parent.is_dir() or out.is_dir():
            raise UserError(f"--out {out}: not a file in an existing directory")
        tmp = out.with_name(f".{out.name}.part")
        h = hashlib.sha256()
        try:
            with tmp.open("wb") as fh:
                if int(row.size):
                    for piece in open_content(archive, row, 0, int(row.size) - 1):
                        h.update(piece)
                        fh.write(piece)
            if h.hexdigest() != row.sha256:
                raise UserError(f"{out}: SHA-256 {h.hexdigest()} differs from the catalog's {row.sha256}")
            tmp.replace(out)
        except OSError as exc:
            raise UserError(f"--out {out}: {exc.strerror or exc}") from None
        except (KeyError_, InvalidTag, StoreUnavailable, StoreRefused) as exc:
            raise UserError(f"record {record_id}: cannot read its content ({type(exc).__name__}: {exc})") from None
        finally:
            tmp.unlink(missing_ok=True)
        typer.echo(f"{out}: {row.size} bytes, SHA-256 {row.sha256} verified")
    finally:
        archive.close()


@catalog_app.command("rebuild")
def catalog_rebuild(
    into: Annotated[
        str | None, typer.Option(help="rebuild into this fresh database (SQLAlchemy URL) instead of the configured one")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="read the store and the audit trail, report, write nothing")] = False,
    workers: Annotated[int, typer.Option(help="parallel header reads from the store")] = 8,
    batch: Annotated[int, typer.Option(help="records per database transaction")] = 200,
    show: Annotated[int, typer.Option(help="list at most this many items of each kind")] = 50,
) -> None:
    """Rebuild the catalog from the store alone (and the keyring) after the database was lost.

    Refuses a non-empty catalog; a killed run is resumed by running it again. Exit 1 when an
    object is skipped (tampered, unreadable) or the audit trail names a record the store lacks.
    """
    from .rebuild import rebuild_catalog

    def progress(stage: str, n: int, total: int) -> None:
        if n % 1000 == 0 or (total and n == total):
            typer.echo(f"{stage} {n}" + (f"/{total}" if total else ""), err=True)

    if show < 0:
        raise UserError(f"--show {show}: must be 0 or more")
    report = rebuild_catalog(_settings(), into=into, dry_run=dry_run, workers=workers, batch=batch, progress=progress)

    def listing(label: str, items: list[str]) -> None:
        for item in items[:show]:
            typer.echo(f"{label}: {item}")
        if len(items) > show:
            typer.echo(f"{label}: … and {len(items) - show} more")

    listing("ERROR", report.errors)
    listing("SKIPPED", [f"{s.key} (object version {s.version_id or '-'}): {s.reason}" for s in report.skipped])
    listing("UNAUDITED", [f"record {r}: in the store, no ingest entry in the audit trail" for r in report.unaudited])
    listing("APPROXIMATED", report.approximated)
    listing("NOTE", report.notes)
    verb = "would rebuild" if dry_run else "rebuilt"
    typer.echo(
        f"{verb} {report.records} record(s) ({report.versions} version(s), {report.destroyed_records} destroyed), "
        f"{report.dispositions} disposition request(s), {report.holds} hold event(s), {report.flags} flag(s) "
        f"from {report.objects} object(s) and {report.audit_entries} audit entries into {report.target}; "
        f"{len(report.skipped)} skipped, {len(report.errors)} error(s), {len(report.unaudited)} unaudited"
        + (f", {report.resumed_records} already there (resumed)" if report.resumed_records else "")
    )
    typer.echo(json.dumps(report.summary()))
    if not report.ok:
        raise typer.Exit(1)


if __name__ == "__main__":
    sys.exit(app())
