"""What the poller knows about each facility link, as read by alerting and the NOC page.

This is the contract between the collector (`monitor.poller`) and its consumers
(`monitor.alerting`, `monitor.web`): the poller updates one `LinkState` per polled facility
after every attempt; consumers only read snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OperStatus(StrEnum):
    """IF-MIB ifOperStatus, plus 'unknown' before the first successful poll."""

    UP = "up"
    DOWN = "down"
    TESTING = "testing"
    UNKNOWN = "unknown"
    DORMANT = "dormant"
    NOT_PRESENT = "notPresent"
    LOWER_LAYER_DOWN = "lowerLayerDown"


@dataclass(frozen=True, slots=True)
class LinkState:
    facility_id: str
    reachable: bool  # the last poll got a valid answer
    oper_status: OperStatus
    admin_up: bool
    consecutive_failures: int  # failed polls in a row (0 after a good one)
    last_poll: float  # unix time of the last attempt
    last_success: float | None  # unix time of the last good answer
    in_bps: float | None  # None until two good polls give a rate
    out_bps: float | None
    utilisation: float | None  # max(in, out) / contracted bandwidth, 0..1+
    in_errors_per_s: float | None
    out_errors_per_s: float | None
    in_discards_per_s: float | None
    out_discards_per_s: float | None
    error: str | None = None  # why the last poll failed, in words an operator reads
    # Added by the poller (optional for consumers): a machine-readable reason for `error`
    # (timeout, auth, no_such_interface, bad_type, bad_response, agent_error, config…),
    # the device's descriptive fields, and the speeds utilisation is measured against.
    reason: str | None = None
    sys_name: str | None = None
    if_name: str | None = None
    if_alias: str | None = None
    bandwidth_bps: float | None = None  # contracted (catalog), else interface speed
    speed_bps: float | None = None  # ifHighSpeed (or ifSpeed) as read from the device
    uptime_s: float | None = None
    counters_64bit: bool | None = None

    @property
    def link_up(self) -> bool:
        return self.reachable and self.oper_status is OperStatus.UP
