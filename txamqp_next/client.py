# -*- test-case-name: tests.integration.test_txamqp_compat -*-
"""
txAMQP's C{txamqp.client} names: L{TwistedDelegate}, L{TwistedEvent} and the
C{Closed} exceptions.

The delegate receives what no consumer or handler took: deliveries for a
consumer tag with no callback go to C{client.queue(consumer_tag)}, returned
messages to C{client.basic_return_queue}.  Subclass it and override
C{basic_deliver}, C{basic_return_} or C{close} as with txAMQP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

from txamqp_next.errors import ChannelClosed, Closed, ConnectionClosed

if TYPE_CHECKING:
    from txamqp_next.channel import Channel
    from txamqp_next.message import Message
    from txamqp_next.protocol import AMQClient

__all__ = [
    "AlreadyFiredError",
    "ChannelClosed",
    "Closed",
    "ConnectionClosed",
    "TwistedDelegate",
    "TwistedEvent",
]


class AlreadyFiredError(Exception):
    """
    A L{TwistedEvent} was fired or failed a second time.
    """


class TwistedEvent:
    """
    A one-shot event that can be waited on (txAMQP's C{TwistedEvent}): not
    fired, fired, or failed.  Each L{wait} gets its own L{Deferred}, which
    fires (or fails) at once if the event already happened.
    """

    def __init__(self) -> None:
        self._waiters: list[Deferred[bool]] = []
        self._result: tuple[bool, Any] | None = None

    @property
    def alreadyCalled(self) -> bool:
        """
        Whether the event has fired or failed.
        """
        return self._result is not None

    def fire(self) -> None:
        """
        Fire the event: waiters get C{True}.

        @raise AlreadyFiredError: it already fired or failed.
        """
        self._settle((True, True))

    def fail(self, reason: BaseException) -> None:
        """
        Fail the event: waiters fail with C{reason}.

        @raise AlreadyFiredError: it already fired or failed.
        """
        self._settle((False, reason))

    def fail_if_not_fired(self, reason: BaseException) -> None:
        """
        Fail the event unless it already fired or failed.
        """
        if self._result is None:
            self.fail(reason)

    def set(self) -> None:
        """
        Fire the event unless it already fired (older txAMQP's name).
        """
        if self._result is None:
            self.fire()

    def wait(self) -> Deferred[bool]:
        """
        @return: a L{Deferred} firing with C{True} once the event fires, or
            failing with its reason once it fails; at once if it already
            did.
        """
        d: Deferred[bool] = Deferred()
        if self._result is None:
            self._waiters.append(d)
        else:
            self._notify(d)
        return d

    def _settle(self, result: tuple[bool, Any]) -> None:
        if self._result is not None:
            raise AlreadyFiredError()
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._notify(d)

    def _notify(self, d: Deferred[bool]) -> None:
        assert self._result is not None
        fired, value = self._result
        if fired:
            d.callback(value)
        else:
            d.errback(value)


class TwistedDelegate:
    """
    The delegate txAMQP applications pass to C{AMQClient}.

    @ivar client: the client, set by C{AMQClient}.
    """

    client: AMQClient | None = None

    def basic_deliver(self, channel: Channel, message: Message) -> None:
        """
        A delivery for a consumer without a callback: queue it for
        C{client.queue(consumer_tag)}.
        """
        assert self.client is not None
        self.client._queue_for(message.consumer_tag).put(message)

    def basic_return_(self, channel: Channel, message: Message) -> None:
        """
        A returned message no handler took: queue it on
        C{client.basic_return_queue}.
        """
        assert self.client is not None
        self.client.basic_return_queue.put(message)

    def close(self, reason: Any) -> None:
        """
        The connection ended, for C{reason}.
        """
