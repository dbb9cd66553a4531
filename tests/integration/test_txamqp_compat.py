# -*- test-case-name: tests.integration.test_txamqp_compat -*-
"""
Code written for txAMQP 0.8.2, with only its imports renamed, runs against the
real RabbitMQ.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from twisted.internet import defer
from twisted.internet.protocol import ClientCreator
from twisted.trial.unittest import TestCase

from txamqp_next import errors
from txamqp_next.client import Closed, TwistedDelegate
from txamqp_next.content import Content
from txamqp_next.endpoint import AMQEndpoint, parse_url
from txamqp_next.factory import AMQFactory
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import Empty
from txamqp_next.spec import load

BROKER = os.environ.get("TXAMQP_NEXT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
REFERENCE = "/usr/share/amqp/specs/0-9-1-rabbit/amqp0-9-1.stripped.extended.xml"


def unique(prefix: str) -> str:
    return f"txamqp-next-compat-{prefix}-{uuid.uuid4().hex[:10]}"


class TxAMQPStyleTests(TestCase):
    """
    The txAMQP way: ClientCreator, a delegate, authenticate(), channel(n),
    channel_open(), client.queue(tag), Content.
    """

    timeout = 30

    @defer.inlineCallbacks
    def connect(self, spec_path: str | None = None) -> Any:
        from twisted.internet import reactor

        params = parse_url(BROKER)
        spec = load(spec_path) if spec_path else load()
        delegate = TwistedDelegate()
        try:
            client = yield ClientCreator(
                reactor, AMQClient, delegate=delegate, vhost=params.vhost, spec=spec
            ).connectTCP(params.host, params.port)
        except Exception as e:
            self.fail(f"no RabbitMQ at {BROKER} ({e}); start one with `rabbitmq-server -detached`")
        self.addCleanup(client.close)
        yield client.authenticate(params.credentials.username, params.credentials._password)
        return client

    @defer.inlineCallbacks
    def round_trip(self, spec_path: str | None) -> Any:
        if spec_path and not os.path.exists(spec_path):
            self.fail(f"{spec_path} is missing: apt-get install amqp-specs")
        client = yield self.connect(spec_path)
        chan = yield client.channel(1)
        yield chan.channel_open()
        queue, exchange = unique("q"), unique("x")
        yield chan.queue_declare(queue=queue, durable=False, exclusive=False, auto_delete=True)
        yield chan.exchange_declare(
            exchange=exchange, type="direct", durable=False, auto_delete=True
        )
        yield chan.queue_bind(queue=queue, exchange=exchange, routing_key="key")
        yield chan.basic_consume(queue=queue, no_ack=True, consumer_tag="testtag")
        queue_of_tag = yield client.queue("testtag")
        msg = Content("hello")
        msg["delivery-mode"] = 2
        chan.basic_publish(exchange=exchange, content=msg, routing_key="key")
        received = yield queue_of_tag.get(timeout=5)
        self.assertEqual(received.content.body, b"hello")
        self.assertEqual(received.content["delivery-mode"], 2)
        self.assertEqual(received.content["delivery mode"], 2)
        self.assertEqual(received.delivery_tag, 1)
        self.assertEqual(received.routing_key, "key")
        self.assertEqual(received[1], 1)
        yield chan.basic_cancel(consumer_tag="testtag")
        yield chan.channel_close()
        chan0 = yield client.channel(0)
        yield chan0.connection_close()

    def test_default_spec(self) -> defer.Deferred[Any]:
        """
        Declare, bind, consume with a tag, publish a Content and read it from
        client.queue(tag), with the packaged spec.
        """
        return self.round_trip(None)

    def test_debian_spec_file(self) -> defer.Deferred[Any]:
        """
        The same with spec.load() of the amqp-specs 0-9-1-rabbit file, as
        txAMQP applications pass their own spec path.
        """
        return self.round_trip(REFERENCE)

    @defer.inlineCallbacks
    def test_queue_get_timeout(self) -> Any:
        """
        client.queue(tag).get(timeout=...) fails with queue.Empty when
        nothing arrives.
        """
        client = yield self.connect()
        q = yield client.queue("nobody")
        yield self.assertFailure(q.get(timeout=0.2), Empty)

    @defer.inlineCallbacks
    def test_closed_is_caught(self) -> Any:
        """
        A channel error is caught by txAMQP's `except Closed`, and is also
        the typed txamqp_next error.
        """
        client = yield self.connect()
        chan = yield client.channel(1)
        yield chan.channel_open()
        try:
            yield chan.queue_declare(queue=unique("missing"), passive=True)
        except Closed as e:
            self.assertIsInstance(e, errors.NotFound)
            self.assertEqual(e.reply_code, 404)
        else:
            self.fail("no error")

    @defer.inlineCallbacks
    def test_basic_return_queue(self) -> Any:
        """
        A mandatory unroutable publish arrives on client.basic_return_queue.
        """
        client = yield self.connect()
        chan = yield client.channel(1)
        yield chan.channel_open()
        chan.basic_publish(
            exchange="", routing_key=unique("nowhere"), content=Content(b"x"), mandatory=True
        )
        returned = yield client.basic_return_queue.get(timeout=5)
        self.assertEqual(returned.content.body, b"x")
        self.assertEqual(returned.reply_code, 312)

    @defer.inlineCallbacks
    def test_factory_and_endpoint(self) -> Any:
        """
        AMQEndpoint.from_uri(...).connect(AMQFactory()) gives an
        authenticated client.
        """
        from twisted.internet import reactor

        endpoint = AMQEndpoint.from_uri(reactor, BROKER)
        client = yield endpoint.connect(AMQFactory(spec=REFERENCE))
        self.addCleanup(client.close)
        chan = yield client.channel(1)
        yield chan.channel_open()
        reply = yield chan.queue_declare(queue="", exclusive=True)
        self.assertTrue(reply.queue.startswith("amq.gen-"))

    @defer.inlineCallbacks
    def test_endpoint_with_arguments(self) -> Any:
        """
        AMQEndpoint(reactor, host, port, username=..., password=...) as
        txAMQP documents it.
        """
        from twisted.internet import reactor

        params = parse_url(BROKER)
        endpoint = AMQEndpoint(
            reactor,
            params.host,
            params.port,
            username=params.credentials.username,
            password=params.credentials._password,
            vhost=params.vhost,
        )
        client = yield endpoint.connect(AMQFactory())
        self.addCleanup(client.close)
        self.assertTrue(client.started.alreadyCalled)
