# -*- test-case-name: tests.test_queue -*-
"""
Tests for L{txamqp_next.queue.TimeoutDeferredQueue}, on a L{Clock}.
"""

from __future__ import annotations

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txamqp_next.channel import ConsumerCancelled
from txamqp_next.errors import ConnectionClosed
from txamqp_next.queue import Closed, Empty, TimeoutDeferredQueue


class QueueTests(SynchronousTestCase):
    """
    Putting, getting, timing out, cancelling and closing.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.queue: TimeoutDeferredQueue[str] = TimeoutDeferredQueue(self.clock)

    def test_order(self) -> None:
        """
        Items come out in the order they were put.
        """
        for item in "abc":
            self.queue.put(item)
        self.assertEqual(len(self.queue), 3)
        self.assertEqual([self.successResultOf(self.queue.get()) for _ in range(3)], list("abc"))
        self.assertEqual(len(self.queue), 0)

    def test_get_waits(self) -> None:
        """
        A C{get} on an empty queue waits for the next C{put}; several waiting
        gets are served oldest first.
        """
        first = self.queue.get()
        second = self.queue.get()
        self.assertNoResult(first)
        self.queue.put("a")
        self.assertEqual(self.successResultOf(first), "a")
        self.assertNoResult(second)
        self.queue.put("b")
        self.assertEqual(self.successResultOf(second), "b")
        self.assertEqual(len(self.queue), 0)

    def test_timeout(self) -> None:
        """
        A C{get} with a timeout fails with L{Empty} when nothing arrives in
        time on the clock; a later C{put} is kept for the next C{get}.
        """
        d = self.queue.get(timeout=5)
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.failureResultOf(d, Empty)
        self.queue.put("late")
        self.assertEqual(len(self.queue), 1)
        self.assertEqual(self.successResultOf(self.queue.get()), "late")

    def test_put_cancels_timer(self) -> None:
        """
        An item arriving in time fires the C{get} and cancels its timer.
        """
        d = self.queue.get(timeout=5)
        self.queue.put("x")
        self.assertEqual(self.successResultOf(d), "x")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_no_timeout(self) -> None:
        """
        A timeout of C{None} or C{0} waits for ever and schedules nothing.
        """
        self.queue.get(timeout=None)
        self.queue.get(timeout=0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timed_out_get_skipped(self) -> None:
        """
        A timed-out C{get} gives up its place: the next item goes to the next
        waiting C{get}.
        """
        early = self.queue.get(timeout=1)
        later = self.queue.get()
        self.clock.advance(1)
        self.failureResultOf(early, Empty)
        self.queue.put("x")
        self.assertEqual(self.successResultOf(later), "x")

    def test_cancel(self) -> None:
        """
        Cancelling a C{get} fails it with L{CancelledError}, stops its timer,
        and gives its place to the next one.
        """
        cancelled = self.queue.get(timeout=5)
        waiting = self.queue.get()
        cancelled.cancel()
        self.failureResultOf(cancelled, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.queue.put("x")
        self.assertEqual(self.successResultOf(waiting), "x")
        self.assertEqual(len(self.queue), 0)

    def test_cancel_only_waiting(self) -> None:
        """
        After the only waiting C{get} was cancelled, items are kept.
        """
        d = self.queue.get()
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.queue.put("x")
        self.assertEqual(len(self.queue), 1)

    def test_close_drains_then_closed(self) -> None:
        """
        After C{close} the items already queued are still handed out; then
        every C{get} fails with L{Closed} carrying the reason.
        """
        reason = ConnectionClosed(320, "CONNECTION_FORCED")
        self.queue.put("a")
        self.queue.put("b")
        self.queue.close(reason)
        self.assertEqual(self.successResultOf(self.queue.get()), "a")
        self.assertEqual(self.successResultOf(self.queue.get(timeout=1)), "b")
        failure = self.failureResultOf(self.queue.get(), Closed)
        self.assertIs(failure.value.reason, reason)
        self.assertIs(self.queue.closed.reason if self.queue.closed else None, reason)

    def test_close_fails_waiting(self) -> None:
        """
        C{get}s waiting when the queue is closed fail with L{Closed} carrying
        the reason, and their timers are cancelled.
        """
        reason = ConnectionClosed(0, "connection lost")
        first = self.queue.get(timeout=5)
        second = self.queue.get()
        self.queue.close(reason)
        for d in (first, second):
            failure = self.failureResultOf(d, Closed)
            self.assertIs(failure.value.reason, reason)
            self.assertIn("connection lost", str(failure.value))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_without_reason(self) -> None:
        """
        C{close} without a reason gives L{Closed} whose reason is C{None}.
        """
        self.queue.close()
        failure = self.failureResultOf(self.queue.get(), Closed)
        self.assertIsNone(failure.value.reason)
        self.assertEqual(failure.value.args, ())

    def test_close_twice(self) -> None:
        """
        A second C{close} keeps the first reason.
        """
        first = ValueError("first")
        self.queue.close(first)
        self.queue.close(ValueError("second"))
        failure = self.failureResultOf(self.queue.get(), Closed)
        self.assertIs(failure.value.reason, first)

    def test_close_with_closed_reason(self) -> None:
        """
        A reason that is itself a L{Closed} (a L{ConsumerCancelled}, which
        txAMQP code catches as L{Closed}) is what waiting and later C{get}s
        fail with, not a L{Closed} wrapping it.
        """
        waiting = self.queue.get()
        reason = ConsumerCancelled("the broker cancelled consumer ctag")
        self.assertIsInstance(reason, Closed)
        self.queue.close(reason)
        self.assertIs(self.failureResultOf(waiting, Closed).value, reason)
        self.assertIs(self.failureResultOf(self.queue.get(), ConsumerCancelled).value, reason)
        self.assertIs(self.queue.closed, reason)

    def test_default_clock(self) -> None:
        """
        Without a clock the global reactor is used (it is not run here).
        """
        from twisted.internet import reactor

        self.assertIs(TimeoutDeferredQueue().clock, reactor)
