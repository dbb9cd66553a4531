# -*- test-case-name: tests.integration.test_txamqp_compat -*-
"""
txAMQP's C{txamqp.client} names: L{TwistedDelegate}, L{TwistedEvent} and the
C{Closed} exceptions (the same classes as L{txamqp_next.errors}': a
C{ChannelClosed} raised by a call is also the typed L{errors.NotFound} or
L{errors.PreconditionFailed}, and its C{args[0]} is the broker's
C{channel.close} as a txAMQP message).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred

from txamqp_next._deferred import AsyncioDeferred
from txamqp_next.delegate import Delegate
from txamqp_next.errors import ChannelClosed, Closed, ConnectionClosed

__all__ = [
    "AlreadyFiredError",
    "ChannelClosed",
    "Closed",
    "ConnectionClosed",
    "Delegate",
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
        d: Deferred[bool] = AsyncioDeferred()
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


class TwistedDelegate(Delegate):
    """
    The delegate txAMQP applications pass to C{AMQClient}.

    txamqp_next's core answers the broker's C{connection.start},
    C{connection.tune}, C{channel.flow} and the closes itself; these
    handlers are told of them afterwards (a subclass that calls
    C{super()} keeps working, and one that does not loses nothing).  The
    delivery and return handlers do the work txAMQP's did: a delivery goes
    to C{client.queue(consumer_tag)}, a returned message to
    C{client.basic_return_queue}.  Subclass it and override any handler as
    with txAMQP.

    @ivar client: the client, set by C{AMQClient}.
    """

    client: Any = None

    def connection_start(self, ch: Any, msg: Any) -> None:
        """
        The broker's C{connection.start} arrived (C{msg.server_properties},
        C{msg.mechanisms}); the client answers it once it has credentials.
        """

    def connection_tune(self, ch: Any, msg: Any) -> None:
        """
        The broker's C{connection.tune} arrived (C{msg.frame_max},
        C{msg.channel_max}, C{msg.heartbeat}) and was answered.
        """

    def connection_close(self, ch: Any, msg: Any) -> None:
        """
        The broker closed the connection (C{msg.reply_code}); the close was
        acknowledged.
        """

    def channel_close(self, ch: Any, msg: Any) -> None:
        """
        The broker closed channel C{ch} (C{msg.reply_code}); the close was
        acknowledged and the channel's calls failed.
        """

    def channel_flow(self, ch: Any, msg: Any) -> None:
        """
        The broker paused (C{msg.active} false) or resumed channel C{ch};
        the client answered and holds or releases its publishes.
        """

    def basic_deliver(self, ch: Any, msg: Any) -> None:
        """
        A delivery: queue it for C{client.queue(consumer_tag)}.
        """
        assert self.client is not None
        self.client.queue_for(msg.consumer_tag).put(msg)

    def basic_return_(self, ch: Any, msg: Any) -> None:
        """
        A returned message: queue it on C{client.basic_return_queue}.
        """
        assert self.client is not None
        self.client.basic_return_queue.put(msg)

    def close(self, reason: Any) -> None:
        """
        The connection ended, for C{reason}.
        """
