# -*- test-case-name: tests.test_pool -*-
"""
L{ChannelPool}: many synchronous calls in flight at once, over a pool of
channels.

A channel answers its synchronous calls one at a time: a thousand
C{queue_declare}s on one channel are a thousand broker round trips in a
row.  A pool gives each call a channel of its own while it is in flight,
opening channels as needed up to C{size} (or as many as the connection
has channel ids left for), and queues calls beyond that until a channel
is free::

    pool = ChannelPool(connection, size=64)
    oks = await gatherResults([pool.queue_declare(queue=name) for name in names])

A broker error closes only the channel of the call that caused it, so it
fails that call alone (with its typed error, L{errors.NotFound} say); the
pool drops the channel and opens another when it needs one.  The pool has
the typed calls of L{ChannelMethods} (declare, bind, delete, purge, QoS
and the others the default spec defines) and L{invoke} for any method by
name; it is for independent calls whose order does not matter, each
answered by the broker (a method with no answer, or C{no_wait=True},
is refused: its error would fail whichever call used the channel next).  Publish
and consume on a L{txamqp_next.channel.Channel}: their order and their
consumers belong to one channel.
"""

from __future__ import annotations

from collections import deque
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred

from txamqp_next._deferred import AsyncioDeferred, fail, from_coroutine, succeed
from txamqp_next.connection import AMQPConnection
from txamqp_next.errors import COMMAND_INVALID, AMQPError, LocalProtocolError, NoFreeChannel
from txamqp_next.methods import ChannelMethods

if TYPE_CHECKING:
    from txamqp_next.channel import Channel
    from txamqp_next.recovery import RecoveringChannel, RecoveringConnection

__all__ = ["ChannelPool", "PoolClosed"]


class PoolClosed(AMQPError):
    """
    The pool was closed: calls still waiting for a channel fail with this,
    and so do later ones.
    """


class ChannelPool(ChannelMethods):
    """
    A pool of up to C{size} channels of one connection, each call on a
    channel of its own while in flight.

    @ivar size: the most channels the pool opens.
    @ivar connection: the connection the channels belong to.
    """

    def __init__(self, connection: AMQPConnection | RecoveringConnection, size: int = 32) -> None:
        """
        @param connection: an L{AMQPConnection} or a recovering one, whose
            channels are opened again after a reconnection.
        @param size: the most channels open at once, at least 1.  When the
            connection has no channel id left (its C{channel_max}, with the
            channels it has besides the pool's), the pool makes do with
            the channels it has: calls wait for one of them.
        @raise TypeError: C{size} is not an C{int}.
        @raise ValueError: C{size} below 1.
        """
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"a channel pool's size is an int, not {size!r}")
        if size < 1:
            raise ValueError(f"a channel pool needs a size of at least 1, not {size}")
        self.connection = connection
        self.size = size
        self._methods = (
            connection.core.methods
            if isinstance(connection, AMQPConnection)
            else connection.methods
        )
        self._idle: list[Channel | RecoveringChannel] = []
        # channels open or being opened, idle or busy
        self._count = 0
        # how many channels the pool had when the connection had no channel
        # id left for another; it opens no more until one of its own closes
        self._ceiling: int | None = None
        self._waiting: deque[Deferred[Channel | RecoveringChannel]] = deque()
        self._closed: PoolClosed | None = None
        self._serving = False

    def __repr__(self) -> str:
        return (
            f"<ChannelPool {self._count}/{self.size} channels, {len(self._idle)} idle, "
            f"{len(self._waiting)} calls waiting>"
        )

    @property
    def channels(self) -> int:
        """
        How many channels the pool has open or opening.
        """
        return self._count

    def invoke(self, name: str, **fields: Any) -> Deferred[Any]:
        """
        Call a method of the connection's spec by its full name
        (C{"queue.declare"}) on a channel of the pool.

        @return: a L{Deferred} firing with the reply (C{None} for a method
            that has none), or failing with the broker's error for this call
            (its channel closes; the pool's other channels go on), the
            connection's error, or L{PoolClosed}; it fails with
            L{LocalProtocolError} naming the spec when the spec lacks the
            method, as on a channel, and for a method the broker does not
            answer (C{basic.ack}, C{no_wait=True}): its error would come
            back on the next call to take its channel.
        @raise TypeError: a field the spec does not take, at once.
        """
        if self._closed is not None:
            return fail(self._closed)
        # bad fields raise now, as on a Channel
        try:
            method = self._methods.make(name, (), fields)
        except LocalProtocolError as e:
            return fail(e)
        if not method.expects_reply:
            # its channel would go back to the pool at once, and a broker
            # error over it would fail whichever call took the channel next
            return fail(
                LocalProtocolError(
                    COMMAND_INVALID,
                    f"{method.NAME} gets no answer from the broker, so a channel pool "
                    "cannot tell its error from the next call's: send it on a Channel",
                )
            )
        return from_coroutine(self._call(name, fields))

    async def _call(self, name: str, fields: dict[str, Any]) -> Any:
        channel = await self._acquire()
        try:
            return await channel.invoke(name, **fields)
        finally:
            self._release(channel)

    def _acquire(self) -> Deferred[Channel | RecoveringChannel]:
        while self._idle:
            channel = self._idle.pop()
            if channel.is_open:
                return succeed(channel)
            self._count -= 1
            self._ceiling = None
        if self._count < self._limit():
            return self._open()
        return self._wait()

    def _limit(self) -> int:
        """
        How many channels the pool may have now: its size, or fewer while
        the connection has no channel id left.
        """
        ceiling = self._ceiling
        return self.size if ceiling is None else min(self.size, ceiling)

    def _wait(self) -> Deferred[Channel | RecoveringChannel]:
        """
        Wait for a channel of the pool to be released.
        """
        d: Deferred[Channel | RecoveringChannel] = AsyncioDeferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def _open(self) -> Deferred[Channel | RecoveringChannel]:
        self._count += 1
        d: Deferred[Any] = self.connection.open_channel()

        def failed(reason: Any) -> Any:
            self._count -= 1
            if reason.check(NoFreeChannel) and self._count > 0 and self._closed is None:
                # every channel id is taken: wait for one of the pool's own
                self._ceiling = self._count
                return self._wait()
            # no busy channel may be left to hand to the calls waiting (the
            # connection is gone, say): each tries a channel of its own
            self._serve_waiting()
            return reason

        return d.addErrback(failed)

    def _serve_waiting(self) -> None:
        """
        Open a channel for each waiting call while the pool has room: after
        a channel closed or failed to open, so that no call waits for a
        channel that will never come.  On a lost connection every open
        fails at once with its error, and so every waiting call.
        """
        if self._serving:
            # an open that failed at once, inside the loop below
            return
        self._serving = True
        try:
            while self._waiting and self._count < self._limit() and self._closed is None:
                self._open().chainDeferred(self._waiting.popleft())
        finally:
            self._serving = False

    def _release(self, channel: Channel | RecoveringChannel) -> None:
        if not channel.is_open:
            # the broker closed it over this call's error: another takes
            # its place when a call needs one (its id is free again)
            self._count -= 1
            self._ceiling = None
            self._serve_waiting()
            return
        if self._closed is not None:
            self._count -= 1
            channel.close()
        elif self._waiting:
            self._waiting.popleft().callback(channel)
        else:
            self._idle.append(channel)

    def close(self) -> Deferred[None]:
        """
        Close the pool: calls waiting for a channel fail with L{PoolClosed},
        idle channels close now and busy ones once their call is answered.

        @return: a L{Deferred} firing once the idle channels are closed.
        """
        if self._closed is None:
            self._closed = PoolClosed("the channel pool is closed")
        while self._waiting:
            self._waiting.popleft().errback(self._closed)
        idle, self._idle = self._idle, []
        self._count -= len(idle)
        closing = [channel.close() for channel in idle]
        if not closing:
            return succeed(None)
        return from_coroutine(_all(closing))


async def _all(closing: list[Deferred[Any]]) -> None:
    # a channel that cannot close (its connection is gone) is closed enough
    for d in closing:
        with suppress(AMQPError, CancelledError):
            await d
