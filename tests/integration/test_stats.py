# -*- test-case-name: tests.integration.test_stats -*-
"""
The counters (C{stats()}), their Prometheus export and the connection's log
events, against the real broker.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from twisted.internet import defer
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import provider

from tests.integration.broker import BrokerTestCase, async_test, unique
from txamqp_next.confirms import Unroutable
from txamqp_next.contrib.prometheus import AMQPCollector
from txamqp_next.message import Message


class StatsTests(BrokerTestCase):
    """
    What the broker does shows in the counters of the channel, the
    connection and the Prometheus exposition.
    """

    @async_test
    async def test_publish_confirm_return_consume_settle(self) -> None:
        """
        Publishes with confirms, an unroutable mandatory publish, and
        deliveries acked, nacked and rejected are each counted, on the
        channel, on the connection and in the exposition text.
        """
        client, ch = await self.channel()
        await ch.confirm_select()
        queue = unique("stats")
        await ch.queue_declare(queue=queue, exclusive=True, auto_delete=True)
        for i in range(4):
            await ch.basic_publish(routing_key=queue, body=b"body-%d" % i)
        unroutable = ch.basic_publish(
            exchange="amq.direct", routing_key=unique("nowhere"), body=b"lost", mandatory=True
        )
        with self.assertRaises(Unroutable):
            await unroutable

        received: list[Message] = []
        all_in: defer.Deferred[None] = defer.Deferred()

        def handle(message: Message) -> None:
            received.append(message)
            if len(received) == 4:
                all_in.callback(None)

        await ch.basic_consume(queue=queue, callback=handle)
        await all_in
        await received[0].ack()
        await received[1].ack()
        await received[2].nack(requeue=False)
        await received[3].reject(requeue=False)

        stats = ch.stats()
        self.assertEqual(
            (stats.published, stats.published_bytes, stats.confirmed, stats.returned),
            (5, 4 * 6 + 4, 5, 1),
        )
        self.assertEqual((stats.delivered, stats.delivered_bytes), (4, 4 * 6))
        self.assertEqual((stats.acked, stats.nacked, stats.rejected), (2, 1, 1))
        self.assertEqual(stats.publish_nacked, 0)
        connection_stats = client.stats()
        self.assertEqual(connection_stats.published, 5)
        self.assertEqual(connection_stats.channels_opened, 1)
        self.assertFalse(connection_stats.blocked)

        registry = CollectorRegistry()
        registry.register(AMQPCollector({"it": client}))
        text = generate_latest(registry).decode()
        for line in (
            'amqp_messages_published_total{connection="it"} 5.0',
            'amqp_messages_confirmed_total{connection="it"} 5.0',
            'amqp_messages_returned_total{connection="it"} 1.0',
            'amqp_messages_delivered_total{connection="it"} 4.0',
            'amqp_messages_acked_total{connection="it"} 2.0',
            'amqp_messages_nacked_total{connection="it"} 1.0',
            'amqp_messages_rejected_total{connection="it"} 1.0',
            'amqp_blocked{connection="it"} 0.0',
        ):
            self.assertIn(line, text.splitlines())

    @async_test
    async def test_get_and_closed_channel(self) -> None:
        """
        A C{basic.get-ok} counts as a delivery; a channel's counts stay in
        the connection's after the channel is closed.
        """
        client, ch = await self.channel()
        queue = unique("stats-get")
        await ch.queue_declare(queue=queue, exclusive=True)
        await ch.basic_publish(routing_key=queue, body=b"12345")
        message = None
        while message is None:
            message = await ch.basic_get(queue=queue, no_ack=True)
        self.assertIsNone(await ch.basic_get(queue=queue, no_ack=True))
        await ch.close()
        other = await client.open_channel()
        await other.basic_publish(routing_key=queue, body=b"x")
        stats = client.stats()
        self.assertEqual((stats.delivered, stats.delivered_bytes), (1, 5))
        self.assertEqual((stats.published, stats.published_bytes), (2, 6))
        self.assertEqual(stats.channels_opened, 2)

    @async_test
    async def test_log_events(self) -> None:
        """
        The connection logs C{connection.opened} with the broker's product
        and the negotiated tuning, then C{connection.closing} and
        C{connection.closed} when the application closes it.
        """
        events: list[LogEvent] = []

        @provider(ILogObserver)
        def observe(event: LogEvent) -> None:
            if "amqp_event" in event:
                events.append(event)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        client = await self.connect(heartbeat=20)
        await client.close()
        names = [e["amqp_event"] for e in events if e.get("vhost") == client.vhost]
        self.assertEqual(
            names,
            [
                "connection.connecting",
                "connection.opened",
                "connection.closing",
                "connection.closed",
            ],
        )
        [opened] = [e for e in events if e["amqp_event"] == "connection.opened"]
        self.assertEqual(opened["product"], "RabbitMQ")
        self.assertEqual(opened["heartbeat"], 20)
        self.assertGreater(opened["frame_max"], 0)
        for event in events:
            self.assertNotIn("guest:guest", repr(event))
