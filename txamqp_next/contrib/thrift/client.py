# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP's C{txamqp.contrib.thrift.client}: L{ThriftTwistedDelegate}.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger

from txamqp_next.client import TwistedDelegate

__all__ = ["ThriftTwistedDelegate"]


class ThriftTwistedDelegate(TwistedDelegate):
    """
    A delegate for L{txamqp_next.contrib.thrift.protocol.ThriftAMQClient}.

    The Thrift clients of this library take the calls the broker returns
    themselves (failing them with a C{TTransportException}); the returns
    that still reach the delegate (a client that closed, say) are put on
    the client's C{thriftBasicReturnQueue(name)} for the C{thriftClientName}
    header they carry, as with txAMQP, or logged when they carry none.
    """

    log = Logger()

    def basic_return_(self, channel: Any, message: Any) -> None:
        content = message.content
        headers = (content.properties.get("headers") if content is not None else None) or {}
        name = headers.get("thriftClientName")
        client = self.client
        if name is None or client is None or not hasattr(client, "thriftBasicReturnQueue"):
            self.log.info(
                "returned message without a thriftClientName header: {message}", message=message
            )
            return
        client.thriftBasicReturnQueue(name).addCallback(lambda queue: queue.put(message))
