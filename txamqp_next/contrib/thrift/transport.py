# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP's C{txamqp.contrib.thrift.transport}: L{TwistedAMQPTransport}.
"""

from __future__ import annotations

from typing import Any

from thrift.transport.TTwisted import TMessageSenderTransport
from twisted.internet.defer import Deferred

from txamqp_next.channel import Channel
from txamqp_next.content import Content
from txamqp_next.protocol import AMQChannel

__all__ = ["TwistedAMQPTransport"]


class TwistedAMQPTransport(TMessageSenderTransport):  # type: ignore[misc]
    """
    A Thrift transport that publishes each flushed message on C{channel}
    (a txAMQP-style L{AMQChannel} or a L{Channel}) to C{exchange} with
    C{routingKey}, C{mandatory}, as txAMQP's does: with a
    C{thriftClientName} header when C{clientName} is given and a reply-to
    property when C{replyTo} is.

    @param replyToField: the name of the reply-to property; any spelling
        (C{"reply to"}, C{"reply-to"}) means the same.
    """

    def __init__(
        self,
        channel: Channel | AMQChannel,
        exchange: str,
        routingKey: str,
        clientName: str | None = None,
        replyTo: str | None = None,
        replyToField: str | None = None,
    ) -> None:
        TMessageSenderTransport.__init__(self)
        self.channel = channel
        self.exchange = exchange
        self.routingKey = routingKey
        self.clientName = clientName
        self.replyTo = replyTo
        self.replyToField = replyToField or "reply-to"

    def sendMessage(self, message: bytes) -> Deferred[Any]:
        """
        Publish one Thrift message.

        @return: the L{Deferred} of C{basic_publish}.
        """
        content = Content(body=message)
        if self.clientName:
            content["headers"] = {"thriftClientName": self.clientName}
        if self.replyTo:
            content[self.replyToField] = self.replyTo
        if isinstance(self.channel, Channel):
            return self.channel.basic_publish(
                exchange=self.exchange,
                routing_key=self.routingKey,
                body=content.body_bytes(),
                properties=dict(content.properties),
                mandatory=True,
            )
        published: Deferred[Any] = self.channel.basic_publish(
            exchange=self.exchange, routing_key=self.routingKey, content=content, mandatory=True
        )
        return published
