"""``/metrics`` in the Prometheus text format 0.0.4, byte for byte what ``generate_latest`` writes, faster.

Where the time went (``bench/bot_metrics_endpoint.py``, 100 groups, 502
series; cProfile of ``generate_latest``): two thirds in formatting each
sample line, and most of that in re-validating and re-escaping every label
name and value on every scrape (96,300 ``escape_label_name`` calls per 100
scrapes), for label sets that never change once a series exists. Here each
series' ``name{labels}`` prefix is rendered once, with the library's own
escaping, and kept; a scrape only formats the values. Bounded: the cache is
dropped whole when it outgrows ``MAX_PREFIXES`` (labels are bounded anyway).
"""

from __future__ import annotations

import math
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.openmetrics import exposition as _om
from prometheus_client.utils import floatToGoString

#: Rendered series prefixes kept (far above the bot's bounded label sets).
MAX_PREFIXES = 20_000
_ESCAPING = _om.UNDERSCORES
_OM_SUFFIXES = ("_created", "_gsum", "_gcount")
_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge", "gaugehistogram": "histogram", "unknown": "untyped"}


def _value(value: Any) -> str:
    d = float(value)
    if -math.inf < d < 1e6:  # repr is Go's format below 1e6 (Go switches to exponents sooner above)
        return repr(d)
    return str(floatToGoString(d))  # type: ignore[no-untyped-call]  # prometheus_client leaves it unannotated


class Exposition:
    """Renders one registry; keep one per registry so the prefixes are reused scrape after scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._prefixes: dict[tuple[Any, ...], str] = {}  # (name, label values...) -> 'name{labels} '
        self._headers: dict[tuple[str, str, str], str] = {}

    def _prefix(self, name: str, labels: dict[str, str], key: Any = None) -> str:
        key = key or (name, tuple(labels.items()))
        prefix = self._prefixes.get(key)
        if prefix is None:
            if len(self._prefixes) >= MAX_PREFIXES:
                self._prefixes.clear()
            text = ",".join(f'{_om.escape_label_name(k, _ESCAPING)}="{_om._escape(v, _om.ALLOWUTF8, False)}"'  # type: ignore[arg-type]  # False as generate_latest passes it
                            for k, v in sorted(labels.items()))
            prefix = _om.escape_metric_name(name, _ESCAPING) + (f"{{{text}}}" if text else "") + " "
            self._prefixes[key] = prefix
        return prefix

    def _header(self, name: str, kind: str, documentation: str) -> str:
        key = (name, kind, documentation)
        header = self._headers.get(key)
        if header is None:
            escaped = _om.escape_metric_name(name, _ESCAPING)
            help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
            header = self._headers[key] = f"# HELP {escaped} {help_text}\n# TYPE {escaped} {kind}\n"
        return header

    def _collectors(self) -> list[Any] | None:
        """The registry's collectors in its order, or None to take the library's ``collect()`` path."""
        registry: Any = self.registry
        try:
            with registry._lock:
                if registry._target_info:
                    return None
                return list(registry._collector_to_names)
        except AttributeError:
            return None

    def render(self) -> bytes:
        output: list[str] = []
        collectors = self._collectors()
        if collectors is None:
            for metric in self.registry.collect():
                self._family(output, metric.name, metric.type, metric.documentation,
                             ((s, s.name, s.labels, None) for s in metric.samples))
            return "".join(output).encode("utf-8")
        for collector in collectors:
            if isinstance(collector, MetricWrapperBase):
                try:
                    self._wrapper(output, collector)
                    continue
                except AttributeError:  # a prometheus_client whose internals moved: the public path
                    self._collectors = lambda: None  # type: ignore[method-assign]
                    return self.render()
            for metric in collector.collect():
                self._family(output, metric.name, metric.type, metric.documentation,
                             ((s, s.name, s.labels, None) for s in metric.samples))
        return "".join(output).encode("utf-8")

    def _wrapper(self, output: list[str], w: Any) -> None:
        name = w._name
        if w._is_parent():
            with w._lock:
                children = list(w._metrics.items())
            names = w._labelnames

            def samples() -> Any:
                for values, child in children:
                    for s in child._samples():
                        key = (name + s[0], values, tuple(s[1].items()) if s[1] else ())
                        if key in self._prefixes:
                            yield s, key[0], None, key
                        else:
                            yield s, key[0], {**dict(zip(names, values, strict=True)), **s[1]}, key
            rows = samples()
        else:
            rows = ((s, name + s[0], s[1], None) for s in w._samples())
        self._family(output, name, w._type, w._documentation, rows)

    def _family(self, output: list[str], name: str, kind: str, documentation: str, rows: Any) -> None:
        """One family: its header, its samples (OpenMetrics-only ones as gauges after it, like the library)."""
        exported = name + "_total" if kind == "counter" else name + "_info" if kind == "info" else name
        output.append(self._header(exported, _TYPES.get(kind, kind), documentation))
        extra: dict[str, list[str]] = {}
        for sample, full, labels, key in rows:
            line = self._prefix(full, labels, key) + _value(sample.value)
            if sample.timestamp is not None:
                line += f" {int(float(sample.timestamp) * 1000):d}"
            suffix = full[len(name):]
            if suffix in _OM_SUFFIXES:
                extra.setdefault(suffix, []).append(line + "\n")
            else:
                output.append(line + "\n")
        for suffix, lines in sorted(extra.items()):
            output.append(self._header(name + suffix, "gauge", documentation))
            output.extend(lines)
