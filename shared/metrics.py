"""Prometheus metrics: requests by route template, method and status, and their latency."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

REQUESTS = Counter("labelhive_http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"])
LATENCY = Histogram(
    "labelhive_http_request_seconds",
    "HTTP request latency",
    ["service", "method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


# The labelled series, looked up once: `labels()` validates and hashes its arguments under a lock on
# every call, which would be most of what recording a request costs.
_series: dict[tuple[str, str, str, int], tuple[Counter, Histogram]] = {}


def observe(service: str, method: str, route: str, status: int, seconds: float) -> None:
    key = (service, method, route, status)
    series = _series.get(key)
    if series is None:
        series = _series[key] = (
            REQUESTS.labels(service, method, route, str(status)),
            LATENCY.labels(service, method, route),
        )
    series[0].inc()
    series[1].observe(seconds)


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
