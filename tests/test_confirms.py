# -*- test-case-name: tests.test_confirms -*-
"""
Tests for L{txamqp_next.confirms.ConfirmTracker}: which publishes an ack, a
nack or a return settles.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txamqp_next._methods import methods_for
from txamqp_next.confirms import ConfirmTracker, PublishNacked, Unroutable
from txamqp_next.message import Message
from txamqp_next.spec import load
from txamqp_next.testing import MemoryBroker

MS = methods_for(load())


def returned(routing_key: str = "nowhere") -> Message:
    method = MS.Basic.Return(
        reply_code=312, reply_text="NO_ROUTE", exchange="ex", routing_key=routing_key
    )
    return Message(None, method, MS.Basic.Properties(), b"body")  # type: ignore[arg-type]


class ConfirmTrackerTests(SynchronousTestCase):
    """
    Publishes are numbered from 1 and settled by the broker's acks and
    nacks.
    """

    def setUp(self) -> None:
        self.tracker = ConfirmTracker()
        self.publishes = [self.tracker.add() for _ in range(5)]

    def results(self) -> list[Any]:
        out: list[Any] = []
        for d in self.publishes:
            if not d.called:
                out.append("pending")
                continue
            box: list[Any] = []
            d.addBoth(box.append)
            out.append(box[0] if box[0] is None else type(box[0].value).__name__)
            if box[0] is not None:
                d.addErrback(lambda _: None)
        return out

    def test_numbering(self) -> None:
        """
        Tags start at 1 and count publishes.
        """
        self.assertEqual(self.tracker.next_tag, 6)
        self.assertEqual(len(self.tracker), 5)

    def test_single_ack(self) -> None:
        """
        An ack without multiple settles just its publish, in any order.
        """
        self.tracker.ack(3, multiple=False)
        self.tracker.ack(1, multiple=False)
        self.assertEqual(self.results(), [None, "pending", None, "pending", "pending"])
        self.assertEqual(len(self.tracker), 3)

    def test_multiple_ack(self) -> None:
        """
        An ack with multiple settles every publish up to its tag.
        """
        self.tracker.ack(2, multiple=False)
        self.tracker.ack(4, multiple=True)
        self.assertEqual(self.results(), [None, None, None, None, "pending"])

    def test_nack(self) -> None:
        """
        A nack fails its publishes with L{PublishNacked} carrying the tag.
        """
        failures: list[Any] = []
        self.publishes[1].addErrback(lambda f: failures.append(f) or f)
        self.tracker.nack(2, multiple=True)
        self.assertEqual(failures[0].value.delivery_tag, 2)
        self.assertEqual(
            self.results(), ["PublishNacked", "PublishNacked", "pending", "pending", "pending"]
        )

    def test_return_then_ack(self) -> None:
        """
        A return followed by an ack fails the acked tag with L{Unroutable}
        carrying the returned message; the others the ack covers succeed.
        """
        failures: list[Any] = []
        self.publishes[2].addErrback(lambda f: failures.append(f) or f)
        self.tracker.returned(returned("rk3"))
        self.tracker.ack(3, multiple=True)
        self.assertEqual(self.results(), [None, None, "Unroutable", "pending", "pending"])
        error = failures[0].value
        self.assertIsInstance(error, Unroutable)
        self.assertEqual(error.message.routing_key, "rk3")
        self.assertIn("312 NO_ROUTE", str(error))

    def test_unknown_tags_ignored(self) -> None:
        """
        Acks for tags already settled or never used change nothing.
        """
        self.tracker.ack(1, multiple=False)
        self.tracker.ack(1, multiple=False)
        self.tracker.ack(99, multiple=False)
        self.assertEqual(self.results(), [None, "pending", "pending", "pending", "pending"])

    def test_fail_all(self) -> None:
        """
        When the channel dies every publish in flight fails with its error.
        """
        self.tracker.ack(1, multiple=False)
        self.tracker.fail_all(ConnectionError("gone"))
        self.assertEqual(self.results(), [None] + ["ConnectionError"] * 4)
        self.assertEqual(len(self.tracker), 0)

    def test_nacked_error_is_typed(self) -> None:
        """
        L{PublishNacked} and L{Unroutable} are L{txamqp_next.AMQPError}s.
        """
        from txamqp_next import AMQPError

        self.assertTrue(issubclass(PublishNacked, AMQPError))
        self.assertTrue(issubclass(Unroutable, AMQPError))


class EarlierReturnTests(SynchronousTestCase):
    """
    A return of a message published before confirm mode began.
    """

    def test_not_taken_for_a_confirmed_publish(self) -> None:
        """
        A mandatory message published before C{confirm_select}, whose
        return arrives after the select was sent, goes to the return
        handlers; the first publish in confirm mode is acked, not failed as
        unroutable, and so is the next.
        """
        broker = MemoryBroker()
        client = self.successResultOf(broker.open_connection())
        opening = client.open_channel()
        broker.flush()
        channel = self.successResultOf(opening)
        returned: list[Message] = []
        channel.add_return_handler(returned.append)
        broker.declare_queue("q")
        early = channel.basic_publish(routing_key="nowhere", body=b"early", mandatory=True)
        channel.confirm_select()
        first = channel.basic_publish(routing_key="q", body=b"first")
        second = channel.basic_publish(routing_key="q", body=b"second")
        broker.flush()
        self.successResultOf(early)
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual([m.body for m in returned], [b"early"])
        self.assertEqual(broker.queues["q"].bodies(), [b"first", b"second"])
