"""Reading the worker's Prometheus endpoint: a scrape, sums over series, and a histogram's
quantiles between two scrapes (what a Grafana panel would show for that interval)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        response.raise_for_status()
        text = await response.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over every series carrying ``labels`` (and any others)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def by_label(samples: Samples, name: str, label: str) -> Mapping[str, float]:
    """``name`` summed per value of ``label``, the values that are not 0."""
    sums: dict[str, float] = {}
    for (n, ls), v in samples.items():
        if n == name and v and label in dict(ls):
            key = dict(ls)[label]
            sums[key] = sums.get(key, 0.0) + v
    return sums


def histogram_between(before: Samples, after: Samples, name: str, **labels: str) -> dict[str, Any]:
    """Observations of histogram ``name`` (base name, seconds) made between two scrapes:
    their count, and p50 / p95 in ms estimated from the buckets as Prometheus'
    histogram_quantile does (linear within a bucket; the top bucket's lower bound beyond
    it). None where nothing was observed."""
    count = total(after, f"{name}_count", **labels) - total(before, f"{name}_count", **labels)
    was, now = _buckets(before, name, labels), _buckets(after, name, labels)
    cumulative = [(le, n - was.get(le, 0.0)) for le, n in sorted(now.items())]
    return {
        "count": int(count),
        "p50": quantile(cumulative, 0.5),
        "p95": quantile(cumulative, 0.95),
    }


def _buckets(samples: Samples, name: str, labels: Mapping[str, str]) -> dict[float, float]:
    """Histogram ``name``'s cumulative bucket counts by upper bound, summed over the series
    carrying ``labels``."""
    wanted = set(labels.items())
    counts: dict[float, float] = {}
    for (n, ls), v in samples.items():
        if n == f"{name}_bucket" and wanted <= ls:
            le = float(dict(ls)["le"])
            counts[le] = counts.get(le, 0.0) + v
    return counts


def quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile in ms of cumulative (upper bound in s, count) buckets, +Inf last."""
    if not cumulative or cumulative[-1][1] <= 0:
        return None
    rank = q * cumulative[-1][1]
    lower, below = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return round(lower * 1000, 1)  # only "above the top bound" is known
            inside = count - below
            share = (rank - below) / inside if inside else 0.0
            return round((lower + (le - lower) * share) * 1000, 1)
        lower, below = le, count
    return None
