"""The dev host's metrics: the same instruments as in Azure, read locally.

:class:`LocalMetrics` installs the process's MeterProvider (before the function app is imported, so the app's
Azure Monitor set-up stays off in the CLI) with:

- an in-memory reader, always: the live view and the ``--json`` summary show the emitted metrics from it;
- a Prometheus ``/metrics`` endpoint when a port is given (``streamduck run --metrics-port N``, on 127.0.0.1 by
  default);
- an OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` is set
  (any OTLP backend: a collector, Grafana, Logfire...). The exporter reads the standard ``OTEL_EXPORTER_OTLP_*``
  variables itself (headers, timeout, temporality preference); ``OTEL_METRIC_EXPORT_INTERVAL`` sets its
  period (default 60 s) and :meth:`LocalMetrics.shutdown` exports what is left.

The Prometheus and OTLP exporters come with the ``local`` extra (never deployed); they are imported only when
asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.resources import SERVICE_NAME, Resource

log = logging.getLogger("streamduck.telemetry")

OTLP_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
DEFAULT_METRICS_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Point:
    """One metric stream as read now: a counter's total, a gauge's value or a histogram's summary."""

    name: str
    attributes: dict[str, str]
    value: float | None = None  # counters and gauges
    count: int = 0  # histograms
    sum: float = 0.0
    min: float | None = None
    max: float | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.value is not None:
            return {"name": self.name, "attributes": self.attributes, "value": self.value}
        return {
            "name": self.name,
            "attributes": self.attributes,
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
        }


def otlp_endpoint(environ: Mapping[str, str]) -> str | None:
    """The OTLP endpoint the standard variables name (the metrics one first), or ``None``."""
    for name in OTLP_ENDPOINT_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


class LocalMetrics:
    """The dev host's MeterProvider and its readers (see the module docstring)."""

    def __init__(
        self,
        environ: Mapping[str, str],
        *,
        metrics_port: int | None = None,
        metrics_host: str = DEFAULT_METRICS_HOST,
    ) -> None:
        self.reader = InMemoryMetricReader()
        readers: list[MetricReader] = [self.reader]
        self.outputs: list[str] = []
        self._server: Any = None
        if metrics_port is not None:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import REGISTRY, start_http_server

            prometheus = PrometheusMetricReader(registry=REGISTRY)
            readers.append(prometheus)
            self._server, _ = start_http_server(metrics_port, addr=metrics_host, registry=REGISTRY)
            self.outputs.append(f"Prometheus http://{metrics_host}:{self._server.server_port}/metrics")
        endpoint = otlp_endpoint(environ)
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

            readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
            self.outputs.append(f"OTLP {endpoint}")
        resource = Resource.create()
        if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
            resource = resource.merge(Resource({SERVICE_NAME: "streamduck"}))
        self.provider = MeterProvider(metric_readers=readers, resource=resource)

    def install(self) -> None:
        """Make this the process's MeterProvider (once per process; refuses when another one is installed)."""
        metrics.set_meter_provider(self.provider)
        if metrics.get_meter_provider() is not self.provider:
            raise RuntimeError("another MeterProvider is already installed in this process")
        for output in self.outputs:
            log.info("metrics: %s", output)

    def points(self) -> list[Point]:
        """Every metric stream recorded so far, cumulative since the start."""
        data = self.reader.get_metrics_data()
        found: list[Point] = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = {k: str(v) for k, v in (point.attributes or {}).items()}
                        if isinstance(point, HistogramDataPoint):
                            found.append(
                                Point(
                                    metric.name,
                                    attributes,
                                    count=point.count,
                                    sum=point.sum,
                                    min=point.min,
                                    max=point.max,
                                )
                            )
                        elif isinstance(point, NumberDataPoint):
                            found.append(Point(metric.name, attributes, value=point.value))
        return found

    def shutdown(self) -> None:
        """Export what is left (OTLP), stop the readers and the ``/metrics`` server."""
        try:
            self.provider.shutdown()
        finally:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
