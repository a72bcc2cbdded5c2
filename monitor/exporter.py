"""Prometheus exposition of the latest link snapshot and of the poller's own health.

A custom collector builds the families from the current `dict[str, LinkState]` at scrape time:
no per-sample registry objects to create or delete as facilities come and go. Every link series
carries the labels facility, facility_name, kind and region.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .poller import Poller
from .state import LinkState, OperStatus
from .targets import Target

LABELS = ["facility", "facility_name", "kind", "region"]
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


def _g(name: str, doc: str, extra: list[str] | None = None, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=[*LABELS, *(extra or [])], unit=unit)


class LinkCollector(Collector):
    """Reads the poller's snapshot at scrape time."""

    def __init__(self, poller: Poller, snapshot: Callable[[], Mapping[str, LinkState]]) -> None:
        self.poller = poller
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        targets: dict[str, Target] = {rt.target.facility_id: rt.target for rt in self.poller.runtimes.values()}
        up = _g("hdc_link_up", "1 if the facility's uplink is operationally up and its router answers")
        reachable = _g("hdc_link_reachable", "1 if the last poll got a valid SNMP answer from the router")
        admin = _g("hdc_link_admin_up", "1 if the uplink is administratively up (ifAdminStatus)")
        oper = _g("hdc_link_oper_status", "IF-MIB ifOperStatus code (1 up, 2 down, … 7 lowerLayerDown)")
        # Prometheus base units are bytes (promtool rejects "bits"): bits/s = 8 × these.
        in_bps = _g("hdc_link_in_bytes_per_second", "Inbound traffic on the uplink (×8 for bits per second)")
        out_bps = _g("hdc_link_out_bytes_per_second", "Outbound traffic on the uplink (×8 for bits per second)")
        util = _g("hdc_link_utilisation_ratio", "max(in, out) / contracted bandwidth (ifHighSpeed if none)")
        in_err = _g("hdc_link_in_errors_per_second", "Inbound packets with errors (ifInErrors rate)")
        out_err = _g("hdc_link_out_errors_per_second", "Outbound packets with errors (ifOutErrors rate)")
        in_disc = _g("hdc_link_in_discards_per_second", "Inbound packets discarded (ifInDiscards rate)")
        out_disc = _g("hdc_link_out_discards_per_second", "Outbound packets discarded (ifOutDiscards rate)")
        bw = _g(
            "hdc_link_bandwidth_bytes_per_second", "Contracted bandwidth utilisation is measured against (×8: bit/s)"
        )
        speed = _g("hdc_link_speed_bytes_per_second", "Interface speed reported by the router, ifHighSpeed (×8: bit/s)")
        last_poll = _g("hdc_link_last_poll_timestamp_seconds", "Unix time of the last poll attempt")
        last_ok = _g("hdc_link_last_success_timestamp_seconds", "Unix time of the last valid answer")
        fails = _g("hdc_link_consecutive_failures", "Failed polls in a row (0 after a good one)")
        uptime = _g("hdc_link_device_uptime_seconds", "Router sysUpTime at the last good poll")
        error = _g(
            "hdc_link_poll_error", "1 for the reason the last poll failed (absent when it succeeded)", ["reason"]
        )
        info = GaugeMetricFamily(
            "hdc_link_info",
            "Descriptive fields of the uplink as read from the router (value is always 1)",
            labels=[*LABELS, "router", "sys_name", "if_index", "if_name", "if_alias", "counters"],
        )
        for fid, st in snap.items():
            t = targets.get(fid)
            if t is None:
                continue
            lv = list(t.labels)
            up.add_metric(lv, 1.0 if st.link_up else 0.0)
            reachable.add_metric(lv, 1.0 if st.reachable else 0.0)
            fails.add_metric(lv, float(st.consecutive_failures))
            if st.last_poll:
                last_poll.add_metric(lv, st.last_poll)
            if st.last_success is not None:
                last_ok.add_metric(lv, st.last_success)
            if st.reachable:
                admin.add_metric(lv, 1.0 if st.admin_up else 0.0)
                oper.add_metric(lv, float(OPER_CODES[st.oper_status]))
            for fam, value in (
                (in_bps, None if st.in_bps is None else st.in_bps / 8),
                (out_bps, None if st.out_bps is None else st.out_bps / 8),
                (util, st.utilisation),
                (in_err, st.in_errors_per_s),
                (out_err, st.out_errors_per_s),
                (in_disc, st.in_discards_per_s),
                (out_disc, st.out_discards_per_s),
                (bw, None if st.bandwidth_bps is None else st.bandwidth_bps / 8),
                (speed, None if st.speed_bps is None else st.speed_bps / 8),
                (uptime, st.uptime_s),
            ):
                if value is not None:
                    fam.add_metric(lv, float(value))
            if st.error is not None:
                error.add_metric([*lv, st.reason or "unknown"], 1.0)
            counters = "" if st.counters_64bit is None else ("64" if st.counters_64bit else "32")
            info.add_metric(
                [*lv, f"{t.host}:{t.port}" if t.host else "", st.sys_name or "", str(t.if_index), st.if_name or "",
                 st.if_alias or "", counters],
                1.0,
            )  # fmt: skip
        yield from (up, reachable, admin, oper, in_bps, out_bps, util, in_err, out_err, in_disc, out_disc, bw, speed)
        yield from (last_poll, last_ok, fails, uptime, error, info)
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
