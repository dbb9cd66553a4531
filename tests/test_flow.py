# -*- test-case-name: tests.test_flow -*-
"""
Adapter tests for flow control and confirms: C{connection.blocked}, C{channel.flow},
publisher confirms, returns in confirm mode and C{update_secret}, over a
L{StringTransport} with a fake broker.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import Broker
from txamqp_next import errors
from txamqp_next.confirms import PublishNacked, Unroutable


class FlowTests(SynchronousTestCase):
    """
    Publishes wait while the broker blocks the connection or pauses the
    channel, and go out in order afterwards.
    """

    def setUp(self) -> None:
        self.broker = Broker()
        self.broker.handshake()
        self.ch = self.broker.open_channel()

    def test_blocked_holds_publishes(self) -> None:
        """
        While blocked, publishes stay pending and nothing is written; on
        unblock they go out in order and fire.  Handlers hear both changes.
        """
        changes: list[tuple[bool, str]] = []
        self.broker.client.add_blocked_handler(lambda b, r: changes.append((b, r)))
        self.broker.reply("connection.blocked", channel=0, reason="low on memory")
        self.assertEqual(self.broker.client.blocked, "low on memory")
        ds = [self.ch.basic_publish(routing_key="q", body=b"%d" % i) for i in range(3)]
        self.assertEqual(self.broker.sent_names(), [])
        for d in ds:
            self.assertNoResult(d)
        self.broker.reply("connection.unblocked", channel=0)
        frames = self.broker.frames_sent()
        bodies = [item for kind, _, item in frames if kind == 3]
        self.assertEqual(bodies, [b"0", b"1", b"2"])
        for d in ds:
            self.assertIsNone(self.successResultOf(d))
        self.assertEqual(changes, [(True, "low on memory"), (False, "")])
        self.assertIsNone(self.broker.client.blocked)

    def test_other_calls_not_held(self) -> None:
        """
        Blocking holds publishes only; other calls go out.
        """
        self.broker.reply("connection.blocked", channel=0, reason="disk")
        self.ch.basic_ack(delivery_tag=1)
        self.assertEqual(self.broker.sent_names(), [(1, "basic.ack")])

    def test_channel_flow(self) -> None:
        """
        C{channel.flow(active=False)} pauses publishing on that channel only
        (flow-ok is answered); C{active=True} releases the held publishes.
        """
        other = self.broker.open_channel()
        self.broker.reply("channel.flow", channel=self.ch.id, active=False)
        self.assertEqual(self.broker.sent_names(), [(self.ch.id, "channel.flow-ok")])
        held = self.ch.basic_publish(body=b"held")
        sent = other.basic_publish(body=b"free")
        self.assertNoResult(held)
        self.assertIsNone(self.successResultOf(sent))
        self.assertEqual(self.broker.sent_names(), [(other.id, "basic.publish")])
        self.broker.reply("channel.flow", channel=self.ch.id, active=True)
        self.assertEqual(
            self.broker.sent_names(),
            [(self.ch.id, "channel.flow-ok"), (self.ch.id, "basic.publish")],
        )
        self.assertIsNone(self.successResultOf(held))

    def test_held_publishes_fail_with_channel(self) -> None:
        """
        Publishes held when the channel closes fail with its error.
        """
        self.broker.reply("connection.blocked", channel=0, reason="memory")
        d = self.ch.basic_publish(body=b"x")
        self.broker.reply("channel.close", channel=self.ch.id, reply_code=404, reply_text="gone")
        self.failureResultOf(d, errors.NotFound)

    def test_held_publishes_fail_with_connection(self) -> None:
        """
        Publishes held when the connection is lost fail with its error.
        """
        self.broker.reply("connection.blocked", channel=0, reason="memory")
        d = self.ch.basic_publish(body=b"x")
        self.broker.reply("connection.close", channel=0, reply_code=320, reply_text="bye")
        self.failureResultOf(d, errors.ConnectionForced)


class ConfirmModeTests(SynchronousTestCase):
    """
    In confirm mode a publish's L{Deferred} follows the broker's ack, nack or
    return.
    """

    def setUp(self) -> None:
        self.broker = Broker()
        self.broker.handshake()
        self.ch = self.broker.open_channel()
        d = self.ch.confirm_select()
        self.assertEqual(self.broker.sent_names(), [(1, "confirm.select")])
        self.broker.reply("confirm.select-ok")
        self.successResultOf(d)

    def publish(self, **kwargs: Any) -> Any:
        d = self.ch.basic_publish(body=b"x", **kwargs)
        self.broker.frames_sent()
        return d

    def test_ack_and_nack(self) -> None:
        """
        A multiple ack settles the first two; a nack fails the third.
        """
        ds = [self.publish() for _ in range(3)]
        self.broker.reply("basic.ack", delivery_tag=2, multiple=True)
        self.assertIsNone(self.successResultOf(ds[0]))
        self.assertIsNone(self.successResultOf(ds[1]))
        self.assertNoResult(ds[2])
        self.broker.reply("basic.nack", delivery_tag=3)
        self.failureResultOf(ds[2], PublishNacked)

    def test_return_then_ack(self) -> None:
        """
        A return followed by its ack fails the publish with L{Unroutable}
        carrying the returned message.
        """
        d = self.publish(mandatory=True, routing_key="nowhere")
        self.broker.send(self.broker.frames.returned(1, b"x", "", "nowhere"))
        self.assertNoResult(d)
        self.broker.reply("basic.ack", delivery_tag=1)
        failure = self.failureResultOf(d, Unroutable)
        self.assertEqual(failure.value.message.reply_code, 312)

    def test_in_flight_fail_on_close(self) -> None:
        """
        Publishes in flight fail with the channel's error when it closes.
        """
        d = self.publish()
        self.broker.reply("channel.close", reply_code=406, reply_text="PRECONDITION_FAILED")
        self.failureResultOf(d, errors.PreconditionFailed)


class UpdateSecretTests(SynchronousTestCase):
    """
    C{update_secret} sends the new secret and fires on update-secret-ok.
    """

    def test_update_secret(self) -> None:
        """
        The reply fires the Deferred; the secret never shows in the method's
        repr.
        """
        broker = Broker()
        broker.handshake()
        d = broker.client.update_secret("token-123", reason="refresh")
        [sent] = broker.sent()
        self.assertEqual(sent.NAME, "connection.update-secret")
        self.assertEqual(sent.new_secret, b"token-123")
        self.assertNotIn("token-123", repr(sent))
        broker.reply("connection.update-secret-ok", channel=0)
        self.assertEqual(self.successResultOf(d).NAME, "connection.update-secret-ok")

    def test_fails_when_closed(self) -> None:
        """
        After the connection closed the call fails at once.
        """
        broker = Broker()
        broker.handshake()
        broker.reply("connection.close", channel=0, reply_code=320)
        self.failureResultOf(broker.client.update_secret("x"), errors.ConnectionForced)
