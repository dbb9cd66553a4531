# -*- test-case-name: tests.test_prometheus -*-
"""
Tests for L{txamqp_next.contrib.prometheus}: the collector exports the
counters of real connections, driven by a scripted broker on a L{Clock}.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import open_broker
from txamqp_next.contrib.prometheus import METRICS, AMQPCollector
from txamqp_next.stats import CONNECTION_COUNTERS


def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """
    C{(sample name, connection label)} to value, parsed back from the
    exposition text.
    """
    text = generate_latest(registry).decode()
    return {
        (sample.name, sample.labels["connection"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if "connection" in sample.labels
    }


class CollectorTests(SynchronousTestCase):
    """
    L{AMQPCollector} in a registry.
    """

    def test_every_counter_exported(self) -> None:
        """
        Each numeric field of L{ConnectionStats} has a metric.
        """
        self.assertEqual(sorted(METRICS), sorted(CONNECTION_COUNTERS))

    def test_exports_counters(self) -> None:
        """
        The exposition text carries each connection's counters, labelled
        with its name, as they are when scraped.
        """
        orders, billing = open_broker(), open_broker()
        channel = orders.open_channel()
        channel.basic_publish(routing_key="q", body=b"abc")
        channel.basic_publish(routing_key="q", body=b"de")
        billing.reply("connection.blocked", 0, reason="low memory")
        billing.clock.advance(1.5)
        registry = CollectorRegistry()
        registry.register(AMQPCollector({"orders": orders.client, "billing": billing.client}))
        exported = samples(registry)
        self.assertEqual(exported[("amqp_messages_published_total", "orders")], 2.0)
        self.assertEqual(exported[("amqp_published_bytes_total", "orders")], 5.0)
        self.assertEqual(exported[("amqp_channels_opened_total", "orders")], 1.0)
        self.assertEqual(exported[("amqp_messages_published_total", "billing")], 0.0)
        self.assertEqual(exported[("amqp_blocked", "billing")], 1.0)
        self.assertEqual(exported[("amqp_blocked", "orders")], 0.0)
        self.assertEqual(exported[("amqp_blocked_seconds_total", "billing")], 1.5)
        channel.basic_publish(routing_key="q", body=b"f")
        self.assertEqual(samples(registry)[("amqp_messages_published_total", "orders")], 3.0)

    def test_add_and_remove(self) -> None:
        """
        Connections added later are exported from the next scrape; removed
        ones no longer are.
        """
        collector = AMQPCollector(namespace="app_amqp")
        registry = CollectorRegistry()
        registry.register(collector)
        self.assertEqual(samples(registry), {})
        collector.add("one", open_broker().client)
        self.assertIn(("app_amqp_recoveries_total", "one"), samples(registry))
        collector.remove("one")
        self.assertEqual(samples(registry), {})

    def test_register_reads_no_connection(self) -> None:
        """
        Registering the collector describes its metrics without reading
        any connection's counters.
        """

        class Unreadable:
            def stats(self) -> None:
                raise AssertionError("read while registering")

        collector = AMQPCollector({"x": Unreadable()})  # type: ignore[dict-item]
        CollectorRegistry().register(collector)

    def test_bad_input(self) -> None:
        """
        A name taken twice, an object without C{stats}, a namespace that is
        no metric name and an unknown name to remove are clear errors.
        """
        client = open_broker().client
        collector = AMQPCollector({"a": client})
        with self.assertRaises(ValueError) as taken:
            collector.add("a", client)
        self.assertIn("'a'", str(taken.exception))
        with self.assertRaises(TypeError):
            collector.add("b", object())  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            AMQPCollector(namespace="amqp-client")
        with self.assertRaises(KeyError):
            collector.remove("nope")
