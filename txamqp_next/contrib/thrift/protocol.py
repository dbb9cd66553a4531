# -*- test-case-name: tests.integration.test_thrift_compat -*-
"""
txAMQP's C{txamqp.contrib.thrift.protocol}: L{ThriftAMQClient}, an
L{AMQClient} that makes Thrift clients and servers, and
L{IThriftAMQClientFactory}.

The clients and servers are those of L{txamqp_next.thrift}, on the
channel txAMQP's methods name.  As with txAMQP, a client's calls wait for
their reply without a time limit unless C{timeout} is given, and a call no
queue takes fails with a C{TTransportException} (C{NOT_OPEN}); a server
acknowledges a call once its reply is handed to the transport.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, DeferredLock

from txamqp_next._deferred import from_coroutine, succeed
from txamqp_next.channel import Channel
from txamqp_next.contrib.thrift.service import IThriftAMQClientFactory
from txamqp_next.protocol import AMQClient
from txamqp_next.queue import TimeoutDeferredQueue
from txamqp_next.thrift import ThriftServer, open_client, serve

__all__ = ["IThriftAMQClientFactory", "ThriftAMQClient"]


class ThriftAMQClient(AMQClient):
    """
    An L{AMQClient} with txAMQP's C{createThriftClient} and
    C{createThriftServer}.  Its factory may provide C{iprot_factory} and
    C{oprot_factory} (L{IThriftAMQClientFactory}); the binary protocol is
    used otherwise.

    @ivar replyToField: the reply-to property's name in the loaded spec.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replyToField = "reply to" if self.spec.major == 8 else "reply-to"
        self.thriftBasicReturnQueueLock = DeferredLock()
        self.thriftBasicReturnQueues: dict[str, TimeoutDeferredQueue[Any]] = {}

    def thriftBasicReturnQueue(self, key: str) -> Deferred[TimeoutDeferredQueue[Any]]:
        """
        The queue of returned messages for the Thrift client named C{key}
        (used by L{txamqp_next.contrib.thrift.client.ThriftTwistedDelegate}).
        """
        queue = self.thriftBasicReturnQueues.get(key)
        if queue is None:
            queue = self.thriftBasicReturnQueues[key] = TimeoutDeferredQueue(self.clock)
        return succeed(queue)

    def _protocol_factory(self, given: Any, name: str) -> Any:
        if given is not None:
            return given
        return getattr(getattr(self, "factory", None), name, None)

    async def _open(self, channel: int) -> Channel:
        ch = await self.channel(channel)
        await ch.channel_open()
        modern = ch.channel
        assert modern is not None
        return modern

    def createThriftClient(
        self,
        responsesExchange: str,
        serviceExchange: str,
        routingKey: str,
        clientClass: Any,
        channel: int = 1,
        responseQueue: str | None = None,
        iprot_factory: Any = None,
        oprot_factory: Any = None,
        timeout: float | None = None,
    ) -> Deferred[Any]:
        """
        Make a Thrift client of C{clientClass} whose calls go to
        C{serviceExchange} with C{routingKey}, its replies arriving on
        C{responseQueue} or on an exclusive queue bound to
        C{responsesExchange}.

        @param timeout: seconds a call waits for its reply (new; txAMQP
            waits for ever, as does the default).
        @return: a L{Deferred} firing with the generated client, or failing
            with the channel's error.
        """

        async def create() -> Any:
            ch = await self._open(channel)
            client = await open_client(
                ch,
                routingKey,
                clientClass,
                exchange=serviceExchange,
                responses_exchange=responsesExchange,
                reply_queue=responseQueue,
                timeout=timeout,
                iprot_factory=self._protocol_factory(iprot_factory, "iprot_factory"),
                oprot_factory=self._protocol_factory(oprot_factory, "oprot_factory"),
                declare=False,
                client_name=getattr(clientClass, "__name__", "") + routingKey,
            )
            self.log.info("consuming messages on queue {queue}", queue=client.reply_queue)
            return client.stub

        return from_coroutine(create())

    def createThriftServer(
        self,
        responsesExchange: str,
        serviceExchange: str,
        routingKey: str,
        processor: Any,
        serviceQueue: str,
        channel: int = 1,
        iprot_factory: Any = None,
        oprot_factory: Any = None,
    ) -> Deferred[ThriftServer]:
        """
        Serve C{processor} on C{serviceQueue}: declare C{serviceExchange}
        (direct) and the queue (auto-deleted), bind them with C{routingKey}
        and publish replies to C{responsesExchange}, as txAMQP does.

        @return: a L{Deferred} firing with the L{ThriftServer} (txAMQP's
            fired with C{None}) once consuming, or failing with the
            channel's error.
        """

        async def create() -> ThriftServer:
            ch = await self._open(channel)
            return await serve(
                ch,
                routingKey,
                processor,
                exchange=serviceExchange,
                responses_exchange=responsesExchange,
                queue=serviceQueue,
                prefetch=0,
                declare_responses_exchange=False,
                confirm=False,
                iprot_factory=self._protocol_factory(iprot_factory, "iprot_factory"),
                oprot_factory=self._protocol_factory(oprot_factory, "oprot_factory"),
            )

        return from_coroutine(create())
