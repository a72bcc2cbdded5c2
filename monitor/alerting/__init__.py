"""Alerting: rules evaluated on LinkState snapshots, topology suppression, silences, acks, SQLite state."""

from .engine import AlertEngine, Cycle
from .store import Alert, Silence, Store

__all__ = ["Alert", "AlertEngine", "Cycle", "Silence", "Store"]
