# -*- test-case-name: tests.test_thrift -*-
"""
The errors a Thrift call over AMQP fails with, besides the ones Thrift
itself defines (a declared exception, C{TApplicationException}).

Each is a C{TTransportException}, as Thrift code expects of a transport
failure (txAMQP failed unroutable calls with one), and an L{AMQPError}.
"""

from __future__ import annotations

from thrift.transport.TTransport import TTransportException

from txamqp_next.errors import AMQPError

__all__ = ["CallTimeout", "ServiceUnavailable", "ThriftTransportError", "TransportClosed"]


class ThriftTransportError(TTransportException, AMQPError):  # type: ignore[misc]
    """
    A Thrift call could not be carried over AMQP.

    @ivar type: the C{TTransportException} type code.
    @ivar message: what went wrong.
    @ivar reason: the AMQP error behind it (a L{txamqp_next.ChannelClosed},
        a L{txamqp_next.ConnectionClosed}, ...), or C{None}.
    """

    TYPE: int = TTransportException.UNKNOWN

    def __init__(self, message: str, reason: BaseException | None = None) -> None:
        TTransportException.__init__(self, type=self.TYPE, message=message, inner=reason)
        self.reason = reason

    def __str__(self) -> str:
        return str(self.message)


class CallTimeout(ThriftTransportError):
    """
    No reply came within the client's timeout.  A reply arriving later is
    dropped.

    @ivar method: the Thrift method called.
    @ivar seqid: the call's Thrift sequence id.
    @ivar timeout: the timeout, in seconds.
    """

    TYPE = TTransportException.TIMED_OUT

    def __init__(self, service: str, method: str, seqid: int, timeout: float) -> None:
        super().__init__(
            f"no reply to {method} (seqid {seqid}) from service {service!r} within {timeout}s"
        )
        self.method = method
        self.seqid = seqid
        self.timeout = timeout


class ServiceUnavailable(ThriftTransportError):
    """
    The broker returned the call: no queue is bound to the service's
    exchange with its routing key (no server has ever started, or the
    servers' auto-deleted queue went away with the last of them).

    @ivar exchange: the exchange the call was published to.
    @ivar routing_key: its routing key (the service name).
    """

    TYPE = TTransportException.NOT_OPEN

    def __init__(self, exchange: str, routing_key: str, method: str, reply_text: str) -> None:
        super().__init__(
            f"call to {method} was returned ({reply_text}): no queue is bound to exchange "
            f"{exchange!r} with routing key {routing_key!r}"
        )
        self.exchange = exchange
        self.routing_key = routing_key


class TransportClosed(ThriftTransportError):
    """
    The client's channel or connection closed (or the client was closed)
    before a reply came; L{reason} says why.
    """

    TYPE = TTransportException.NOT_OPEN
