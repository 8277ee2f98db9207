"""`carpscope sniff --metrics HOST:PORT`: a Prometheus exporter on the official Python client
library (prometheus-client): a collector that turns the families of metrics.py into the
library's metric families, served by its own HTTP server (``start_http_server``) on a thread
of its own. The client library writes the exposition format; nothing here does.

Imported only when --metrics is given (the other commands never load the client library).
The listening address defaults to the loopback: ``--metrics 9417`` is ``127.0.0.1:9417``; any
other address is given whole (``0.0.0.0:9417``, ``[::]:9417``, ``10.0.0.5:9417``).
"""
from __future__ import annotations

import time
TYPE_CHECKING = False     # typing.TYPE_CHECKING without importing typing at run time (start-up)
if TYPE_CHECKING:
    from typing import Callable, Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from carpscope.metrics import Family, Metrics

DEFAULT_HOST = "127.0.0.1"


class ListenError(ValueError):
    """A --metrics value that is no address: one line for the user, exit status 2."""


def parse_listen(text: str) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[V6]:PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, text
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"--metrics {text}: write an IPv6 address in brackets: [{host}]:{port}")
    if not host:
        raise ListenError(f"--metrics {text}: give the address to listen on (127.0.0.1:{port}, or 0.0.0.0:{port} "
                          "for every address)")
    try:
        n = int(port)
    except ValueError:
        n = -1
    if not 1 <= n <= 65535:
        raise ListenError(f"--metrics {text}: the port must be a number from 1 to 65535")
    return host, n


class Exporter:
    """Serves the last families published by ``update``; ``collect`` runs on the server's
    thread and only reads that list (replaced whole, never changed in place)."""

    def __init__(self, host: str, port: int, hosts: dict[str, str] | None = None,
                 clock: Callable[[], float] = time.time, metrics_caps: dict[str, int] | None = None) -> None:
        self.metrics = Metrics(hosts, **(metrics_caps or {}))
        self.clock = clock
        self.families: list[Family] = []
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)       # the sensor's own memory and CPU
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = self.server.server_port

    def update(self, now: float, groups, findings: list, taps) -> None:
        self.families = self.metrics.sample(now, groups, findings, taps)

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        for fam in self.families:
            yield build(fam, now)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def build(fam: Family, now: float) -> Metric:
    """One family as the client library's metric family."""
    labels = list(fam.labels)
    if fam.kind == "info":
        m: Metric = InfoMetricFamily(fam.name, fam.doc, labels=[])
        for values, _ in fam.samples:
            m.add_metric([], dict(zip(labels, values)))
        return m
    if fam.kind == "counter":
        c = CounterMetricFamily(fam.name, fam.doc, labels=labels)
        for values, v in fam.samples:
            c.add_metric(list(values), v)
        return c
    g = GaugeMetricFamily(fam.name, fam.doc, labels=labels)
    for values, v in fam.samples:
        g.add_metric(list(values), max(0.0, now - v) if fam.kind == "age" else v)
    return g
