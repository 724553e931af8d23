"""The I/O layer of the connectors: HTTP and WebSocket, driving the pure exchange code only
through the contract in :mod:`tickvault.exchanges.base`. See docs/connectors.md."""

from tickvault.exchanges.io.backfill import Backfiller, TaskProgress
from tickvault.exchanges.io.collector import Collector
from tickvault.exchanges.io.counters import IoCounters, counters_for, snapshot
from tickvault.exchanges.io.policy import RestPolicy, WsPolicy, rest_policy, ws_policy
from tickvault.exchanges.io.ratelimit import LocalBudget, RateBudget, RedisBudget
from tickvault.exchanges.io.rest import RestClient, RestResponse
from tickvault.exchanges.io.sinks import (
    Checkpoint,
    CheckpointStore,
    ErrorSink,
    EventSink,
    GapSink,
    Sinks,
)
from tickvault.exchanges.io.ws import WsSession

__all__ = [
    "Backfiller",
    "Checkpoint",
    "CheckpointStore",
    "Collector",
    "ErrorSink",
    "EventSink",
    "GapSink",
    "IoCounters",
    "LocalBudget",
    "RateBudget",
    "RedisBudget",
    "RestClient",
    "RestPolicy",
    "RestResponse",
    "Sinks",
    "TaskProgress",
    "WsPolicy",
    "WsSession",
    "counters_for",
    "rest_policy",
    "snapshot",
    "ws_policy",
]
