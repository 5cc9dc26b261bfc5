"""OTel metrics as Prometheus text exposition lines (format 0.0.4), for `/metrics`: counters get
`_total`, histograms their cumulative `_bucket`/`_sum`/`_count` lines, attributes become labels."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.metrics.export import Gauge, Metric, Sum
from opentelemetry.sdk.metrics.export import Histogram as HistogramData


def _escape(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attributes: Mapping[str, Any] | None, extra: str = "") -> str:
    parts = [f'{k.replace(".", "_")}="{_escape(v)}"' for k, v in sorted((attributes or {}).items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))



def render(metric: Metric) -> list[str]:
    name = metric.name.replace(".", "_").replace("-", "_")
    data = metric.data
    if isinstance(data, Sum) and data.is_monotonic:
        name = name if name.endswith("_total") else name + "_total"
        kind = "counter"
    elif isinstance(data, Sum | Gauge):
        kind = "gauge"
    elif isinstance(data, HistogramData):
        kind = "histogram"
    else:  # exponential histograms: not used by notar
        return []
    lines = [f"# HELP {name} {_escape(metric.description)}", f"# TYPE {name} {kind}"]
    if isinstance(data, HistogramData):
        for p in data.data_points:
            cumulative = 0
            for bound, count in zip(p.explicit_bounds, p.bucket_counts, strict=False):
                cumulative += count
                le = 'le="' + _number(float(bound)) + '"'
                lines.append(f"{name}_bucket{_labels(p.attributes, le)} {cumulative}")
            inf = 'le="+Inf"'
            lines.append(f"{name}_bucket{_labels(p.attributes, inf)} {p.count}")
            lines.append(f"{name}_sum{_labels(p.attributes)} {_number(p.sum)}")
            lines.append(f"{name}_count{_labels(p.attributes)} {p.count}")
    else:
        lines += [f"{name}{_labels(p.attributes)} {_number(p.value)}" for p in data.data_points]
    return lines
