# -*- test-case-name: tests.test_rpc -*-
"""
Tests for L{txamqp_next.rpc}: request/reply over direct reply-to, against a
fake broker over a L{StringTransport} with a L{Clock}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import Broker
from txamqp_next import _frames, errors
from txamqp_next.channel import ConsumerCancelled
from txamqp_next.confirms import PublishNacked, Unroutable
from txamqp_next.rpc import REPLY_TO, RPCClient, RPCTimeout, respond


class RPCClientTests(SynchronousTestCase):
    """
    L{RPCClient} correlates replies with requests.
    """

    def setUp(self) -> None:
        self.broker = Broker()
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        self.rpc = RPCClient(self.ch, timeout=5)
        started = self.rpc.start()
        [consume] = self.broker.sent()
        self.assertEqual((consume.queue, consume.no_ack), (REPLY_TO, True))
        self.broker.reply("basic.consume-ok", consumer_tag="amq.ctag-rpc")
        self.assertIs(self.successResultOf(started), self.rpc)

    def request(self, **kwargs: Any) -> tuple[Any, Any]:
        """
        Make a call; return its Deferred and the properties it was sent with.
        """
        d = self.rpc.call(routing_key="service", body=b"question", **kwargs)
        frames = self.broker.frames_sent()
        [method] = [item for kind, _, item in frames if kind == _frames.FRAME_METHOD]
        self.assertEqual((method.NAME, method.routing_key), ("basic.publish", "service"))
        [(_, _, props)] = [item for kind, _, item in frames if kind == _frames.FRAME_HEADER]
        return d, props

    def reply(self, correlation_id: str, body: bytes = b"answer", tag: int = 1) -> None:
        self.broker.deliver(
            "amq.ctag-rpc", tag, body, properties={"correlation_id": correlation_id}
        )

    def test_reply_fires_its_request(self) -> None:
        """
        Requests carry reply_to and distinct correlation ids; each reply
        fires the request with its id, in whatever order they come.
        """
        first, props1 = self.request()
        second, props2 = self.request(properties={"content_type": "text/plain"})
        self.assertEqual(props1.reply_to, REPLY_TO)
        self.assertEqual(props2.content_type, "text/plain")
        self.assertNotEqual(props1.correlation_id, props2.correlation_id)
        self.reply(props2.correlation_id, b"two")
        self.assertNoResult(first)
        self.assertEqual(self.successResultOf(second).body, b"two")
        self.reply(props1.correlation_id, b"one", tag=2)
        self.assertEqual(self.successResultOf(first).body, b"one")
        self.assertEqual(len(self.rpc), 0)

    def test_timeout(self) -> None:
        """
        A request with no reply within its timeout fails with RPCTimeout; a
        late reply is dropped.
        """
        d, props = self.request()
        self.broker.clock.advance(4.9)
        self.assertNoResult(d)
        self.broker.clock.advance(0.2)
        failure = self.failureResultOf(d, RPCTimeout)
        self.assertEqual(failure.value.correlation_id, props.correlation_id)
        self.reply(props.correlation_id)
        self.assertEqual(len(self.rpc), 0)

    def test_per_call_timeout_and_none(self) -> None:
        """
        A call's own timeout overrides the client's; None waits for ever.
        """
        quick, _ = self.request(timeout=1)
        patient, props = self.request(timeout=None)
        self.broker.clock.advance(100)
        self.failureResultOf(quick, RPCTimeout)
        self.assertNoResult(patient)
        self.reply(props.correlation_id)
        self.successResultOf(patient)

    def test_unroutable(self) -> None:
        """
        A mandatory request no queue takes fails with Unroutable at once.
        """
        d, props = self.request()
        self.broker.send(
            self.broker.frames.returned(
                1, b"question", "", "service", properties={"correlation_id": props.correlation_id}
            )
        )
        self.assertEqual(self.failureResultOf(d, Unroutable).value.message.reply_code, 312)

    def test_publish_failure(self) -> None:
        """
        In confirm mode a nacked request fails with PublishNacked.
        """
        self.ch.confirm_select()
        self.broker.reply("confirm.select-ok")
        self.broker.frames_sent()
        d, _ = self.request()
        self.broker.reply("basic.nack", delivery_tag=1, multiple=False, requeue=False)
        self.failureResultOf(d, PublishNacked)

    def test_channel_closed(self) -> None:
        """
        When the channel closes every waiting request fails with its error,
        and later calls fail at once.
        """
        d, _ = self.request()
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        self.failureResultOf(d, errors.PreconditionFailed)
        self.failureResultOf(self.rpc.call(routing_key="x"), errors.PreconditionFailed)

    def test_cancel(self) -> None:
        """
        Cancelling a call forgets it; its reply is dropped.
        """
        d, props = self.request()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(len(self.rpc), 0)
        self.reply(props.correlation_id)

    def test_stop(self) -> None:
        """
        stop() cancels the consumer; waiting requests fail with
        ConsumerCancelled.
        """
        d, _ = self.request()
        stopped = self.rpc.stop()
        [cancel] = self.broker.sent()
        self.assertEqual(cancel.NAME, "basic.cancel")
        self.broker.reply("basic.cancel-ok", consumer_tag="amq.ctag-rpc")
        self.successResultOf(stopped)
        self.failureResultOf(d, ConsumerCancelled)
        self.failureResultOf(self.rpc.call(routing_key="x"), ConsumerCancelled)

    def test_call_before_start(self) -> None:
        """
        A call before start() completed fails with LocalProtocolError.
        """
        rpc = RPCClient(self.ch)
        self.failureResultOf(rpc.call(routing_key="x"), errors.LocalProtocolError)


class RespondTests(SynchronousTestCase):
    """
    L{respond} answers a request on its channel.
    """

    def setUp(self) -> None:
        self.broker = Broker()
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        self.got: list[Any] = []
        self.ch.basic_consume(queue="service", consumer_tag="srv", callback=self.got.append)
        self.broker.reply("basic.consume-ok", consumer_tag="srv")
        self.broker.frames_sent()

    def test_reply_to_and_correlation(self) -> None:
        """
        The reply goes to the default exchange with the request's reply_to
        as routing key and its correlation_id.
        """
        self.broker.deliver("srv", 1, properties={"reply_to": REPLY_TO, "correlation_id": "c1"})
        self.successResultOf(respond(self.got[0], b"answer"))
        frames = self.broker.frames_sent()
        [method] = [item for kind, _, item in frames if kind == _frames.FRAME_METHOD]
        self.assertEqual((method.exchange, method.routing_key), ("", REPLY_TO))
        [(_, _, props)] = [item for kind, _, item in frames if kind == _frames.FRAME_HEADER]
        self.assertEqual(props.correlation_id, "c1")

    def test_no_reply_to(self) -> None:
        """
        A request without reply_to cannot be answered: LocalProtocolError.
        """
        self.broker.deliver("srv", 1)
        self.failureResultOf(respond(self.got[0], b"answer"), errors.LocalProtocolError)
