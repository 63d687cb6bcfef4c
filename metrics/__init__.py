"""Prometheus metrics: what the worker and the lead API export, and how they are gathered.

- The worker (``python -m agent`` with ``WORKER_METRICS_PORT``): ``CallMetrics`` per call,
  fed by the call's ``AgentSession`` events in its job process; ``tool_failed`` from the
  tools' failure boundary; ``shared_directory`` and ``forget_finished_processes`` so LiveKit
  Agents' own endpoint serves the sum over all job processes (see ``metrics.multiprocess``).
- The lead API: ``ApiMetrics`` on its FastAPI app, at ``/metrics``.
- The dialer (``DIALER_METRICS_PORT``): ``DialerMetrics``, its passes over the queue.
- ``exported_names()``: every series name exported, which the Grafana dashboard
  (``metrics/grafana-dashboard.json``) may query and nothing else.

Names resolve on first use: prometheus_client must not be imported before the worker has set
its metrics directory (``shared_directory``), so importing this package imports nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metrics.api import ApiMetrics
    from metrics.calls import CallMetrics, tool_failed
    from metrics.catalog import exported_names
    from metrics.dialer import DialerMetrics
    from metrics.multiprocess import forget_finished_processes, shared_directory

_HOMES = {
    "ApiMetrics": "metrics.api",
    "CallMetrics": "metrics.calls",
    "DialerMetrics": "metrics.dialer",
    "tool_failed": "metrics.calls",
    "exported_names": "metrics.catalog",
    "forget_finished_processes": "metrics.multiprocess",
    "shared_directory": "metrics.multiprocess",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'metrics' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)


__all__ = [
    "ApiMetrics",
    "CallMetrics",
    "DialerMetrics",
    "exported_names",
    "forget_finished_processes",
    "shared_directory",
    "tool_failed",
]
