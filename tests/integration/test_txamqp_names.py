# -*- test-case-name: tests.integration.test_txamqp_names -*-
"""
Every txAMQP 0.8.2 name an application imports exists under txamqp_next and
behaves as txAMQP's did, exercised the way txAMQP applications use them
(C{inlineCallbacks}, a delegate, C{AMQFactory} and C{AMQEndpoint}, the
C{started} and C{disconnected} events, C{except Closed}), against the real
broker.
"""

from __future__ import annotations

import uuid
from typing import Any

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

import txamqp_next.spec
from tests.integration.broker import BROKER, reactor
from txamqp_next.client import (
    AlreadyFiredError,
    ChannelClosed,
    Closed,
    ConnectionClosed,
    TwistedDelegate,
    TwistedEvent,
)
from txamqp_next.content import Content
from txamqp_next.endpoint import AMQEndpoint
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Closed as QueueClosed
from txamqp_next.queue import Empty, TimeoutDeferredQueue

REFERENCE = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"


def unique(prefix: str) -> str:
    return f"txamqp-next-names-{prefix}-{uuid.uuid4().hex[:10]}"


class ApplicationTests(TestCase):
    """
    A txAMQP application's life: connect, consume, hit a channel error and
    a connection error.
    """

    timeout = 30

    @defer.inlineCallbacks
    def connect(self) -> Any:
        endpoint = AMQEndpoint.from_uri(reactor(), BROKER)
        try:
            client = yield endpoint.connect(AMQFactory(spec=REFERENCE))
        except Exception as e:
            self.fail(f"no RabbitMQ at {BROKER} ({e}); start one with `rabbitmq-server -detached`")
        self.addCleanup(client.close)
        return client

    @defer.inlineCallbacks
    def test_life(self) -> Any:
        """
        started.wait() fires even after the fact; a Content goes round
        through client.queue(tag); a channel error is ChannelClosed (a
        Closed); a connection error is ConnectionClosed, closes the tag's
        queue (queue.Closed) and fires disconnected.
        """
        client = yield self.connect()
        self.assertIsInstance(client, AMQClient)
        self.assertIsInstance(client.delegate, TwistedDelegate)
        self.assertIs((yield client.started.wait()), True)

        chan = yield client.channel(1)
        yield chan.channel_open()
        reply = yield chan.queue_declare(queue="", exclusive=True)
        queue = reply.queue
        yield chan.basic_consume(queue=queue, no_ack=True, consumer_tag="tag")
        deliveries = yield client.queue("tag")
        self.assertIsInstance(deliveries, TimeoutDeferredQueue)
        content = Content("hello")
        content["delivery-mode"] = 2
        chan.basic_publish(exchange="", routing_key=queue, content=content)
        msg = yield deliveries.get(timeout=5)
        self.assertEqual((msg.content.body, msg.content["delivery-mode"]), (b"hello", 2))
        yield self.assertFailure(deliveries.get(timeout=0.1), Empty)

        other = yield client.channel(2)
        yield other.channel_open()
        try:
            yield other.queue_declare(queue=unique("missing"), passive=True)
        except ChannelClosed as e:
            self.assertIsInstance(e, Closed)
            self.assertEqual(e.reply_code, 404)
        else:
            self.fail("passive declare of a missing queue succeeded")

        waiting = deliveries.get()
        try:
            yield chan.exchange_declare(exchange=unique("x"), type="no-such-exchange-type")
        except ConnectionClosed as e:
            self.assertIsInstance(e, Closed)
            self.assertEqual(e.reply_code, 503)
        else:
            self.fail("an unknown exchange type was accepted")
        yield self.assertFailure(waiting, QueueClosed)
        self.assertIs((yield client.disconnected.wait()), True)
        self.assertTrue(client.closed)

    @defer.inlineCallbacks
    def test_spec_load(self) -> Any:
        """
        txamqp_next.spec.load(path) reads a spec file as txAMQP's did, and
        AMQClient speaks it.
        """
        spec = txamqp_next.spec.load(REFERENCE)
        self.assertEqual((spec.major, spec.minor), (0, 9))
        client = yield self.connect()
        chan = yield client.channel(1)
        yield chan.channel_open()
        reply = yield chan.queue_declare(queue="", exclusive=True)
        self.assertTrue(reply.queue.startswith("amq.gen-"))


class EventAndQueueTests(SynchronousTestCase):
    """
    TwistedEvent and TimeoutDeferredQueue as txAMQP 0.8.2 defines them.
    """

    def test_event_fire(self) -> None:
        """
        Each waiter gets its own Deferred, fired with True; waiting after
        the event fires at once; firing twice is AlreadyFiredError.
        """
        event = TwistedEvent()
        before = event.wait()
        self.assertNoResult(before)
        event.fire()
        self.assertIs(self.successResultOf(before), True)
        self.assertIs(self.successResultOf(event.wait()), True)
        self.assertTrue(event.alreadyCalled)
        self.assertRaises(AlreadyFiredError, event.fire)
        self.assertRaises(AlreadyFiredError, event.fail, Closed())
        event.fail_if_not_fired(Closed())  # no effect
        self.assertIs(self.successResultOf(event.wait()), True)

    def test_event_fail(self) -> None:
        """
        A failed event fails its waiters, present and future.
        """
        event = TwistedEvent()
        before = event.wait()
        event.fail_if_not_fired(ConnectionClosed(reply_text="gone"))
        self.failureResultOf(before, ConnectionClosed)
        self.failureResultOf(event.wait(), ConnectionClosed)

    def test_started_fails_when_lost_before_open(self) -> None:
        """
        A connection lost during the handshake fails client.started with
        a Closed, as txAMQP's delegate did, and fires disconnected.
        """
        from twisted.internet.error import ConnectionDone
        from twisted.internet.testing import StringTransport
        from twisted.python.failure import Failure

        client = AMQClient(TwistedDelegate(), clock=Clock())
        client.makeConnection(StringTransport())
        started = client.started.wait()
        client.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(started, Closed)
        self.assertIs(self.successResultOf(client.disconnected.wait()), True)

    def test_queue(self) -> None:
        """
        get(timeout=...) fails with Empty; put hands items out in order;
        after close() the items left are still handed out, then get fails
        with queue.Closed.
        """
        clock = Clock()
        q: TimeoutDeferredQueue[int] = TimeoutDeferredQueue(clock)
        timed = q.get(timeout=1)
        clock.advance(1)
        self.failureResultOf(timed, Empty)
        waiting = q.get()
        q.put(1)
        q.put(2)
        self.assertEqual(self.successResultOf(waiting), 1)
        q.close()
        self.assertEqual(self.successResultOf(q.get()), 2)
        self.failureResultOf(q.get(), QueueClosed)
