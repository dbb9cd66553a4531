# -*- test-case-name: tests.test_prometheus -*-
"""
Export the counters of AMQP connections to Prometheus, with
U{prometheus-client<https://pypi.org/project/prometheus-client/>} (the
C{prometheus} extra: C{pip install txamqp-next[prometheus]})::

    from prometheus_client import REGISTRY, start_http_server
    from txamqp_next.contrib.prometheus import AMQPCollector

    collector = AMQPCollector()
    collector.add("orders", connection)
    REGISTRY.register(collector)
    start_http_server(9100)

Each scrape reads C{connection.stats()} (see L{txamqp_next.stats}) of every
connection added, an L{AMQPConnection<txamqp_next.connection.AMQPConnection>}
or a L{RecoveringConnection<txamqp_next.recovery.RecoveringConnection>},
and exports each counter as a Prometheus counter (and C{blocked} as a
gauge) labelled with the name it was added under: C{amqp_messages_published_total
{connection="orders"}}.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from txamqp_next.stats import ConnectionStats

__all__ = ["METRICS", "AMQPCollector"]


class _HasStats(Protocol):
    def stats(self) -> ConnectionStats: ...


#: L{ConnectionStats} field -> (metric name without the namespace, help);
#: every one is a counter (its exported name ends in C{_total})
METRICS: dict[str, tuple[str, str]] = {
    "published": ("messages_published", "Messages published (written to the transport)."),
    "published_bytes": ("published_bytes", "Body bytes of the messages published."),
    "confirmed": ("messages_confirmed", "Publishes the broker acknowledged (confirm mode)."),
    "publish_nacked": ("messages_publish_nacked", "Publishes the broker nacked (confirm mode)."),
    "returned": ("messages_returned", "Messages the broker returned (basic.return)."),
    "delivered": ("messages_delivered", "Messages received (basic.deliver and basic.get-ok)."),
    "delivered_bytes": ("delivered_bytes", "Body bytes of the messages received."),
    "acked": ("messages_acked", "basic.ack sent by the application."),
    "nacked": ("messages_nacked", "basic.nack sent by the application."),
    "rejected": ("messages_rejected", "basic.reject sent by the application."),
    "channels_opened": ("channels_opened", "Channels the broker opened."),
    "blocked_seconds": ("blocked_seconds", "Seconds publishing was blocked by the broker."),
    "heartbeat_timeouts": ("heartbeat_timeouts", "Connections closed for missed heartbeats."),
    "connections_lost": ("connections_lost", "Connections that ended other than by close()."),
    "reconnect_attempts": ("reconnect_attempts", "Reconnections scheduled by the back-off."),
    "recoveries": ("recoveries", "Connections set up again after a loss."),
}


class AMQPCollector(Collector):
    """
    A Prometheus collector of the counters of the connections added to it.

    @param connections: connections to start with, by name (the value of
        their C{connection} label).
    @param namespace: what every metric name starts with.
    """

    def __init__(
        self, connections: dict[str, _HasStats] | None = None, namespace: str = "amqp"
    ) -> None:
        if not namespace or not namespace.replace("_", "").isalnum():
            raise ValueError(f"a metric namespace is letters, digits and _, not {namespace!r}")
        self.namespace = namespace
        self._connections: dict[str, _HasStats] = {}
        for name, connection in (connections or {}).items():
            self.add(name, connection)

    def add(self, name: str, connection: _HasStats) -> None:
        """
        Export the counters of C{connection} with the label
        C{connection=name}.

        @raise ValueError: C{name} is taken.
        @raise TypeError: C{connection} has no C{stats} method.
        """
        if name in self._connections:
            raise ValueError(f"a connection is already exported as {name!r}")
        if not callable(getattr(connection, "stats", None)):
            raise TypeError(f"{connection!r} has no stats() to export")
        self._connections[name] = connection

    def remove(self, name: str) -> None:
        """
        Stop exporting the connection added as C{name}.

        @raise KeyError: none was.
        """
        del self._connections[name]

    def describe(self) -> Iterable[Metric]:
        """
        The metrics this collector exports, without samples (what the
        registry checks names with, without reading any connection).
        """
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        """
        Read every connection's counters now.
        """
        snapshots = [(name, c.stats()) for name, c in sorted(self._connections.items())]
        return list(self._families(snapshots))

    def _families(
        self, snapshots: list[tuple[str, ConnectionStats]] | None = None
    ) -> Iterator[Metric]:
        prefix = self.namespace + "_"
        blocked = GaugeMetricFamily(
            prefix + "blocked",
            "Whether the broker blocks publishing now (1) or not (0).",
            labels=["connection"],
        )
        for name, stats in snapshots or ():
            blocked.add_metric([name], 1.0 if stats.blocked else 0.0)
        yield blocked
        for field, (metric, text) in METRICS.items():
            family = CounterMetricFamily(prefix + metric, text, labels=["connection"])
            for name, stats in snapshots or ():
                family.add_metric([name], float(getattr(stats, field)))
            yield family
