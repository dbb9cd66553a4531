# -*- test-case-name: tests.test_confirms -*-
"""
Publisher confirms: which publish each C{basic.ack} or C{basic.nack} from the
broker settles.

After C{confirm.select} the broker numbers a channel's publishes 1, 2, 3, ...
and acknowledges each one (or several at once with C{multiple}).  A
C{mandatory} message that no queue takes comes back first as
C{basic.return}, and RabbitMQ then sends the ack for it: the delivery tag of
the ack that follows a return names the returned publish.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred

from txamqp_next._deferred import AsyncioDeferred
from txamqp_next.errors import AMQPError

if TYPE_CHECKING:
    from txamqp_next.message import Message

__all__ = ["ConfirmTracker", "PublishNacked", "Unroutable"]


class PublishNacked(AMQPError):
    """
    The broker refused responsibility for a message (C{basic.nack}): it was
    not stored, and may be published again.

    @ivar delivery_tag: the publish's sequence number on its channel.
    """

    def __init__(self, delivery_tag: int) -> None:
        super().__init__(f"the broker nacked publish {delivery_tag}")
        self.delivery_tag = delivery_tag


class Unroutable(AMQPError):
    """
    A C{mandatory} message reached no queue and came back (C{basic.return}).

    @ivar message: the returned L{Message} (with C{reply_code},
        C{reply_text}, C{exchange} and C{routing_key} from the return).
    """

    def __init__(self, message: Message) -> None:
        super().__init__(
            f"{message.reply_code} {message.reply_text}: exchange {message.exchange!r}, "
            f"routing key {message.routing_key!r}"
        )
        self.message = message


class ConfirmTracker:
    """
    The publishes of one channel in confirm mode that the broker has not yet
    settled.

    @ivar next_tag: the sequence number the next publish will get.
    @ivar acked: how many publishes the broker acked (a returned one
        included: RabbitMQ acks it after the return).
    @ivar nacked: how many publishes the broker nacked.
    @ivar started: whether the broker has put the channel in confirm mode
        (C{confirm.select-ok} arrived, or the select was sent with
        C{no_wait}); a return before that is of a message published before
        confirm mode, which no ack follows.
    """

    def __init__(self, started: bool = True) -> None:
        self.started = started
        self.next_tag = 1
        self.acked = 0
        self.nacked = 0
        # in publish order, so also ascending tags
        self._pending: dict[int, Deferred[None]] = {}
        self._returned: list[Message] = []

    def __len__(self) -> int:
        """
        How many publishes are in flight.
        """
        return len(self._pending)

    def add(self, d: Deferred[None] | None = None) -> Deferred[None]:
        """
        Register the publish about to be sent.

        @param d: the L{Deferred} to settle (a new one when omitted).
        @return: C{d}, firing with C{None} when the broker acks the publish,
            or failing with L{PublishNacked} or L{Unroutable}.
        """
        if d is None:
            d = AsyncioDeferred()
        self._pending[self.next_tag] = d
        self.next_tag += 1
        return d

    def returned(self, message: Message) -> bool:
        """
        A C{basic.return} arrived; the next ack or nack names its publish.

        @return: whether it is the return of a publish in confirm mode; the
            broker handles a channel's methods in order, so a return before
            C{confirm.select-ok} is of a message published before the select.
        """
        if not self.started:
            return False
        self._returned.append(message)
        return True

    def ack(self, delivery_tag: int, multiple: bool) -> None:
        """
        Settle publishes the broker acked.
        """
        self._settle(delivery_tag, multiple, None)

    def nack(self, delivery_tag: int, multiple: bool) -> None:
        """
        Fail publishes the broker nacked with L{PublishNacked}.
        """
        self._settle(delivery_tag, multiple, PublishNacked)

    def _settle(self, delivery_tag: int, multiple: bool, error: type[PublishNacked] | None) -> None:
        returned = self._returned.pop(0) if self._returned else None
        if multiple:
            tags = []
            for tag in self._pending:
                if tag > delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [delivery_tag] if delivery_tag in self._pending else []
        if error is None:
            self.acked += len(tags)
        else:
            self.nacked += len(tags)
        for tag in tags:
            d = self._pending.pop(tag)
            if returned is not None and tag == delivery_tag:
                d.errback(Unroutable(returned))
            elif error is not None:
                d.errback(error(tag))
            else:
                d.callback(None)

    def fail_all(self, reason: BaseException) -> None:
        """
        The channel or connection closed: every publish in flight fails with
        C{reason} (the broker may or may not have stored them).
        """
        pending, self._pending = self._pending, {}
        self._returned.clear()
        for d in pending.values():
            d.errback(reason)

    def __repr__(self) -> str:
        return f"<ConfirmTracker next_tag={self.next_tag} in_flight={len(self)}>"
