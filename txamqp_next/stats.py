# -*- test-case-name: tests.test_stats -*-
"""
Counters of what a channel and a connection did, read as snapshots.

C{channel.stats()} returns a L{ChannelStats}; C{connection.stats()} (an
L{AMQPConnection<txamqp_next.connection.AMQPConnection>} or a
L{RecoveringConnection<txamqp_next.recovery.RecoveringConnection>})
returns a L{ConnectionStats}: the sum over its channels, open and closed,
plus what only the connection knows.  Each snapshot is a frozen dataclass:
it never changes once read, so two reads taken apart give rates.

Counters only grow, from zero when the object is made.  They are plain
integers kept by the channel and the connection themselves; reading them
costs a few attribute reads and no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["CHANNEL_COUNTERS", "CONNECTION_COUNTERS", "ChannelStats", "ConnectionStats"]


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """
    What one channel did.

    @ivar published: messages handed to the transport by C{basic_publish}
        (a publish held while publishing is paused counts once it is
        written).
    @ivar published_bytes: the body bytes of those messages.
    @ivar confirmed: publishes the broker acknowledged (C{basic.ack} in
        confirm mode; one C{multiple} ack counts every publish it settles).
        RabbitMQ also acks a C{mandatory} message after returning it: such
        a message counts in L{returned} and here.
    @ivar publish_nacked: publishes the broker refused (C{basic.nack} in
        confirm mode).
    @ivar returned: messages the broker returned (C{basic.return}).
    @ivar delivered: messages received: consumer deliveries
        (C{basic.deliver}) and C{basic.get-ok}s.
    @ivar delivered_bytes: the body bytes of those messages.
    @ivar acked: C{basic.ack}s the application sent (a C{multiple} ack
        counts once).
    @ivar nacked: C{basic.nack}s the application sent.
    @ivar rejected: C{basic.reject}s the application sent.
    """

    published: int = 0
    published_bytes: int = 0
    confirmed: int = 0
    publish_nacked: int = 0
    returned: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    acked: int = 0
    nacked: int = 0
    rejected: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionStats(ChannelStats):
    """
    What a connection did: the counters of L{ChannelStats} summed over its
    channels (those closed since included), and its own.

    @ivar channels_opened: channels the broker opened (C{channel.open-ok}).
    @ivar blocked: whether the broker blocks publishing now
        (C{connection.blocked}).
    @ivar blocked_seconds: the total time publishing was blocked by the
        broker, the current block included, by the connection's clock.
    @ivar heartbeat_timeouts: connections closed because the broker sent
        nothing for two heartbeat intervals.
    @ivar connections_lost: connections that ended other than by the
        application's C{close} (the broker closed it, a heartbeat timeout,
        the network); 0 or 1 for one L{AMQPConnection
        <txamqp_next.connection.AMQPConnection>}.
    @ivar reconnect_attempts: for a recovering connection, the
        reconnections its back-off scheduled (after a loss or a failed
        attempt); 0 otherwise.
    @ivar recoveries: for a recovering connection, how many times it was
        set up again after a loss; 0 otherwise.
    """

    channels_opened: int = 0
    blocked: bool = False
    blocked_seconds: float = 0.0
    heartbeat_timeouts: int = 0
    connections_lost: int = 0
    reconnect_attempts: int = 0
    recoveries: int = 0


#: the names of the counters every channel keeps, in L{ChannelStats} order
CHANNEL_COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(ChannelStats))
#: the names of the numeric fields of L{ConnectionStats}: all but C{blocked}
CONNECTION_COUNTERS: tuple[str, ...] = tuple(
    f.name for f in fields(ConnectionStats) if f.name != "blocked"
)


def sum_channels(many: Iterable[ChannelStats]) -> ChannelStats:
    """
    The sum of channel snapshots, counter by counter.
    """
    sums = dict.fromkeys(CHANNEL_COUNTERS, 0)
    for stats in many:
        for name in CHANNEL_COUNTERS:
            sums[name] += getattr(stats, name)
    return ChannelStats(**sums)


def connection_stats(channels: ChannelStats, **own: Any) -> ConnectionStats:
    """
    A connection snapshot from the sum of its channels' and its own fields.

    @raise TypeError: a name in C{own} that is no field of
        L{ConnectionStats}.
    """
    return ConnectionStats(**{name: getattr(channels, name) for name in CHANNEL_COUNTERS}, **own)


def sum_connections(many: Iterable[ConnectionStats], **own: Any) -> ConnectionStats:
    """
    The sum of connection snapshots (C{blocked} if any is), with C{own}
    fields added to the sums.

    @raise TypeError: a name in C{own} that is no counter of
        L{ConnectionStats}.
    """
    sums: dict[str, Any] = dict.fromkeys(CONNECTION_COUNTERS, 0)
    blocked = False
    for stats in many:
        blocked = blocked or stats.blocked
        for name in CONNECTION_COUNTERS:
            sums[name] += getattr(stats, name)
    for name, amount in own.items():
        if name not in sums:
            raise TypeError(f"ConnectionStats has no counter {name!r}")
        sums[name] += amount
    return ConnectionStats(blocked=blocked, **sums)
