"""The series names the worker, the lead API and the dialer export, as a scrape shows them."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics import MetricWrapperBase

from metrics.api import ApiMetrics
from metrics.dialer import DialerMetrics
from metrics.families import WORKER_FAMILIES

# What each metric type adds to its name in the exposition format.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
}


def exported_names() -> frozenset[str]:
    api, dialer = ApiMetrics(), DialerMetrics()
    families = [*WORKER_FAMILIES, api.requests, api.request_seconds, api.leads_accepted,
                api.leads_refused, dialer.claims, dialer.pass_failures, dialer.pass_seconds,
                dialer.last_pass]  # fmt: skip
    return frozenset(_series(families))


def _series(families: Iterable[MetricWrapperBase]) -> Iterable[str]:
    for family in families:
        for described in family.describe():
            for suffix in _SUFFIXES[described.type]:
                yield described.name + suffix
