"""Prometheus exposition of the latest link snapshot and of the poller's own health.

Link series are rendered straight to the text format from the current `dict[str, LinkState]`,
once per snapshot (every scrape in between gets the cached bytes), with each target's label
set escaped once. prometheus-client's generic path costs ~3 s of CPU and ~150 MB of transient
memory per scrape at 10,000 links; this one a small fraction of that. The poller's own health
is a regular prometheus-client collector. Every link series carries the labels facility,
facility_name, kind and region.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .poller import Poller
from .state import LinkState, OperStatus
from .targets import Target

LABELS = ("facility", "facility_name", "kind", "region")
OPER_CODES = {
    OperStatus.UP: 1,
    OperStatus.DOWN: 2,
    OperStatus.TESTING: 3,
    OperStatus.UNKNOWN: 4,
    OperStatus.DORMANT: 5,
    OperStatus.NOT_PRESENT: 6,
    OperStatus.LOWER_LAYER_DOWN: 7,
}
ERROR_REASONS = (
    "timeout",
    "auth",
    "no_such_interface",
    "no_such_object",
    "bad_type",
    "bad_value",
    "bad_response",
    "agent_error",
    "snmp_error",
    "config",
)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(float(v))


def _opt(v: float | None, scale: float = 1.0) -> float | None:
    return None if v is None else v * scale


# (name, help, value of a LinkState or None to omit the series)
FAMILIES: tuple[tuple[str, str, Callable[[LinkState], float | None]], ...] = (
    ("hdc_link_up", "1 if the facility's uplink is operationally up and its router answers",
     lambda s: 1.0 if s.link_up else 0.0),
    ("hdc_link_reachable", "1 if the last poll got a valid SNMP answer from the router",
     lambda s: 1.0 if s.reachable else 0.0),
    ("hdc_link_admin_up", "1 if the uplink is administratively up (ifAdminStatus)",
     lambda s: (1.0 if s.admin_up else 0.0) if s.reachable else None),
    ("hdc_link_oper_status", "IF-MIB ifOperStatus code (1 up, 2 down, 3 testing, 4 unknown, 5 dormant, "
     "6 notPresent, 7 lowerLayerDown)", lambda s: float(OPER_CODES[s.oper_status]) if s.reachable else None),
    # Prometheus base units are bytes (promtool rejects "bits"): bits per second = 8 × these.
    ("hdc_link_in_bytes_per_second", "Inbound traffic on the uplink (×8 for bits per second)",
     lambda s: _opt(s.in_bps, 1 / 8)),
    ("hdc_link_out_bytes_per_second", "Outbound traffic on the uplink (×8 for bits per second)",
     lambda s: _opt(s.out_bps, 1 / 8)),
    ("hdc_link_utilisation_ratio", "max(in, out) / contracted bandwidth (ifHighSpeed if none)",
     lambda s: s.utilisation),
    ("hdc_link_in_errors_per_second", "Inbound packets with errors (ifInErrors rate)", lambda s: s.in_errors_per_s),
    ("hdc_link_out_errors_per_second", "Outbound packets with errors (ifOutErrors rate)",
     lambda s: s.out_errors_per_s),
    ("hdc_link_in_discards_per_second", "Inbound packets discarded (ifInDiscards rate)",
     lambda s: s.in_discards_per_s),
    ("hdc_link_out_discards_per_second", "Outbound packets discarded (ifOutDiscards rate)",
     lambda s: s.out_discards_per_s),
    ("hdc_link_bandwidth_bytes_per_second", "Contracted bandwidth utilisation is measured against (×8: bit/s)",
     lambda s: _opt(s.bandwidth_bps, 1 / 8)),
    ("hdc_link_speed_bytes_per_second", "Interface speed reported by the router, ifHighSpeed (×8: bit/s)",
     lambda s: _opt(s.speed_bps, 1 / 8)),
    ("hdc_link_last_poll_timestamp_seconds", "Unix time of the last poll attempt",
     lambda s: s.last_poll or None),
    ("hdc_link_last_success_timestamp_seconds", "Unix time of the last valid answer", lambda s: s.last_success),
    ("hdc_link_consecutive_failures", "Failed polls in a row (0 after a good one)",
     lambda s: float(s.consecutive_failures)),
    ("hdc_link_device_uptime_seconds", "Router sysUpTime at the last good poll", lambda s: s.uptime_s),
)  # fmt: skip


class LinkExposition:
    """Renders the link families of one snapshot to Prometheus text, cached per snapshot."""

    def __init__(self, poller: Poller, snapshot: Callable[[], Mapping[str, LinkState]]) -> None:
        self.poller = poller
        self.snapshot = snapshot
        self._labels: dict[str, tuple[Target, str]] = {}
        self._gzipped: tuple[Mapping[str, LinkState], bytes, Any] | None = None

    def _label_text(self, t: Target) -> str:
        got = self._labels.get(t.facility_id)
        if got is None or got[0] is not t:
            text = ",".join(f'{k}="{_esc(v)}"' for k, v in zip(LABELS, t.labels, strict=True))
            got = (t, text)
            self._labels[t.facility_id] = got
        return got[1]

    def render(self) -> bytes:
        """The link series as Prometheus text (rendered on each call: plain scrapes are rare)."""
        return b"".join(self.stream())

    def stream(self) -> Iterator[bytes]:
        """The link series, one family at a time (a plain-text scrape never holds all of it)."""
        return self._families(self.snapshot())

    def render_gzip(self, tail: bytes) -> bytes:
        """Link series then `tail`, as one gzip stream. The link part is compressed once per
        snapshot, family by family (the 25 MB of text for 10,000 links never exists at once),
        and the compressor's state is copied for each scrape."""
        snap = self.snapshot()
        cached = self._gzipped
        if cached is None or cached[0] is not snap:  # snapshots are replaced, never mutated
            self._gzipped = None  # let the previous one go before building the next
            z = zlib.compressobj(1, zlib.DEFLATED, 31)  # 31: gzip container
            prefix = bytearray()
            for chunk in self._families(snap):
                prefix += z.compress(chunk)
            cached = (snap, bytes(prefix), z)
            self._gzipped = cached
        z = cached[2].copy()
        return cached[1] + z.compress(tail) + z.flush()

    def _families(self, snap: Mapping[str, LinkState]) -> Iterator[bytes]:
        """One encoded family at a time."""
        targets = {rt.target.facility_id: rt.target for rt in self.poller.runtimes.values()}
        rows = [(self._label_text(targets[fid]), st) for fid, st in snap.items() if fid in targets]
        for name, doc, get in FAMILIES:
            out = bytearray(f"# HELP {name} {doc}\n# TYPE {name} gauge\n".encode())
            for labels, st in rows:
                value = get(st)
                if value is not None:
                    out += f"{name}{{{labels}}} {_num(value)}\n".encode()
            yield bytes(out)
        out = bytearray(
            b"# HELP hdc_link_poll_error 1 for the reason the last poll failed (absent when it succeeded)\n"
            b"# TYPE hdc_link_poll_error gauge\n"
        )
        for labels, st in rows:
            if st.error is not None:
                out += f'hdc_link_poll_error{{{labels},reason="{_esc(st.reason or "unknown")}"}} 1.0\n'.encode()
        yield bytes(out)
        out = bytearray(
            b"# HELP hdc_link_info Descriptive fields of the uplink as read from the router (value is always 1)\n"
            b"# TYPE hdc_link_info gauge\n"
        )
        for labels, st in rows:
            t = targets[st.facility_id]
            counters = "" if st.counters_64bit is None else ("64" if st.counters_64bit else "32")
            extra = (
                ("router", f"{t.host}:{t.port}" if t.host else ""),
                ("sys_name", st.sys_name or ""),
                ("if_index", str(t.if_index)),
                ("if_name", st.if_name or ""),
                ("if_alias", st.if_alias or ""),
                ("counters", counters),
            )
            more = ",".join(f'{k}="{_esc(v)}"' for k, v in extra)
            out += f"hdc_link_info{{{labels},{more}}} 1.0\n".encode()
        yield bytes(out)


class HealthCollector(Collector):
    """The poller's own health, as prometheus-client families (a handful of series)."""

    def __init__(self, poller: Poller) -> None:
        self.poller = poller

    def collect(self) -> Iterator[Metric]:
        yield from self._health()

    def _health(self) -> Iterator[Metric]:
        p = self.poller
        s = p.stats
        yield GaugeMetricFamily(
            "hdc_poller_last_cycle_duration_seconds", "Wall-clock duration of the last poll cycle", value=s.duration
        )
        yield GaugeMetricFamily(
            "hdc_poller_last_cycle_timestamp_seconds", "Unix time the last poll cycle started", value=s.started
        )
        yield CounterMetricFamily("hdc_poller_cycles", "Poll cycles completed", value=p.cycles)
        yield GaugeMetricFamily("hdc_poller_targets", "Facility links assigned to this poller", value=len(p.runtimes))
        yield GaugeMetricFamily(
            "hdc_poller_last_cycle_targets_polled", "Targets polled in the last cycle", value=s.polled
        )
        yield GaugeMetricFamily(
            "hdc_poller_last_cycle_targets_failed", "Targets whose poll failed in the last cycle", value=s.failed
        )
        yield GaugeMetricFamily(
            "hdc_poller_targets_backing_off", "Targets skipped in the last cycle (back-off)", value=s.skipped_backoff
        )
        yield CounterMetricFamily("hdc_poller_targets_polled", "Target polls attempted", value=p.polled_total)
        yield CounterMetricFamily("hdc_poller_targets_failed", "Target polls that failed", value=p.failed_total)
        yield GaugeMetricFamily(
            "hdc_poller_queue_depth", "Targets waiting to be sent in the current cycle", value=p.queue_depth
        )
        yield GaugeMetricFamily("hdc_poller_requests_in_flight", "SNMP requests awaiting an answer", value=p.in_flight)
        errors = CounterMetricFamily("hdc_poller_errors", "Failed polls by reason", labels=["reason"])
        for reason in sorted(set(ERROR_REASONS) | set(p.errors_total)):
            errors.add_metric([reason], float(p.errors_total.get(reason, 0)))
        yield errors
        config = sum(1 for rt in p.runtimes.values() if rt.target.config_error)
        yield GaugeMetricFamily(
            "hdc_poller_misconfigured_targets",
            "Catalog entries that cannot be polled (see hdc_link_poll_error)",
            value=config,
        )
