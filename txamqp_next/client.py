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

__all__ = ["ChannelClosed", "Closed", "ConnectionClosed", "TwistedDelegate", "TwistedEvent"]


class TwistedEvent:
    """
    A one-shot event that can be waited on (txAMQP's C{TwistedEvent}).
    """

    def __init__(self) -> None:
        self.deferred: Deferred[None] = Deferred()
        self.alreadyCalled = False

    def set(self) -> None:
        """
        Fire the waiters and re-arm.
        """
        deferred, self.deferred = self.deferred, Deferred()
        self.alreadyCalled = True
        deferred.callback(None)

    def wait(self) -> Deferred[None]:
        """
        @return: a L{Deferred} firing at the next L{set}.
        """
        return self.deferred


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
