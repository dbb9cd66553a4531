# -*- test-case-name: tests.test_queue -*-
"""
A Deferred queue whose C{get} can time out and which can be closed.

This is txAMQP's C{txamqp.queue} API: C{client.queue(consumer_tag)} returns
a L{TimeoutDeferredQueue} of deliveries, and C{get(timeout=...)} fails with
L{Empty} when nothing arrives in time, or with L{Closed} once the queue has
been closed (its consumer was cancelled or the channel closed).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Generic, TypeVar

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from txamqp_next._deferred import AsyncioDeferred, fail, succeed

__all__ = ["Closed", "Empty", "TimeoutDeferredQueue"]

_T = TypeVar("_T")


class Empty(Exception):
    """
    Nothing arrived before the C{get} timed out.
    """


class Closed(Exception):
    """
    The queue was closed; nothing more will arrive.

    @ivar reason: why it was closed (an exception), when known.
    """

    def __init__(self, reason: BaseException | None = None) -> None:
        super().__init__(reason) if reason is not None else super().__init__()
        self.reason = reason


class TimeoutDeferredQueue(Generic[_T]):
    """
    An unbounded queue of items; C{get} returns a L{Deferred}.

    Items put before C{close} are still handed out; after them, every
    C{get} fails with L{Closed}.

    @param clock: the clock timeouts use (the global reactor by default).
    """

    def __init__(self, clock: IReactorTime | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor

            clock = reactor
        self.clock = clock
        self.pending: deque[_T] = deque()
        self.waiting: deque[tuple[Deferred[_T], IDelayedCall | None]] = deque()
        self.closed: Closed | None = None

    def __len__(self) -> int:
        return len(self.pending)

    def put(self, item: _T) -> None:
        """
        Add an item, handing it to the oldest waiting C{get} if any.
        """
        while self.waiting:
            d, call = self.waiting.popleft()
            if call is not None and call.active():
                call.cancel()
            if not d.called:
                d.callback(item)
                return
        self.pending.append(item)

    def get(self, timeout: float | None = None) -> Deferred[_T]:
        """
        The next item.

        @param timeout: seconds to wait before failing with L{Empty}; wait
            for ever when C{None} or C{0}.
        @return: a L{Deferred} firing with the item, or failing with
            L{Empty} on timeout or L{Closed} when the queue is closed and
            drained (L{txamqp_next.channel.ConsumerCancelled}, a L{Closed},
            when the consumer was cancelled).  Cancelling it gives up the
            place in line.
        """
        if self.pending:
            return succeed(self.pending.popleft())
        if self.closed is not None:
            return fail(self.closed)
        d: Deferred[_T] = AsyncioDeferred(self._cancel)
        call = None
        if timeout:
            assert self.clock is not None
            call = self.clock.callLater(timeout, self._timeout, d)
        self.waiting.append((d, call))
        return d

    def _forget(self, d: Deferred[Any]) -> None:
        for entry in self.waiting:
            if entry[0] is d:
                self.waiting.remove(entry)
                if entry[1] is not None and entry[1].active():
                    entry[1].cancel()
                return

    def _cancel(self, d: Deferred[Any]) -> None:
        self._forget(d)

    def _timeout(self, d: Deferred[Any]) -> None:
        self._forget(d)
        if not d.called:
            d.errback(Empty())

    def close(self, reason: BaseException | None = None) -> None:
        """
        Close the queue: waiting and later C{get}s fail with L{Closed}
        (carrying C{reason}) once the items already queued are taken.  A
        C{reason} that is itself a L{Closed} (such as
        L{txamqp_next.channel.ConsumerCancelled}) is what they fail with.
        """
        if self.closed is not None:
            return
        self.closed = reason if isinstance(reason, Closed) else Closed(reason)
        waiting, self.waiting = self.waiting, deque()
        for d, call in waiting:
            if call is not None and call.active():
                call.cancel()
            if not d.called:
                d.errback(self.closed)
