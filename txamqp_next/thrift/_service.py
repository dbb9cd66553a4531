# -*- test-case-name: tests.test_thrift -*-
"""
L{ThriftServerService}: a Thrift server (L{serve}) that survives broker
restarts, as a Twisted L{Service} (it is what C{twistd txamqp_next
--thrift-service ...} runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred

from txamqp_next.connection import AMQPConnection
from txamqp_next.service import _ReconnectingService
from txamqp_next.thrift._client import DEFAULT_EXCHANGE, DEFAULT_RESPONSES_EXCHANGE
from txamqp_next.thrift._server import ThriftServer, serve

__all__ = ["ThriftServerService"]


class ThriftServerService(_ReconnectingService):
    """
    Serve a Thrift service from the broker at C{url}, reconnecting whenever
    the connection (or the server's channel) is lost.

    Each connection is prepared before it counts as connected: the AMQP
    handshake, then L{serve} (exchange, queue, binding, C{basic.qos},
    confirm mode, consumer).  A connection that fails any of these is closed
    and the attempt retried with an exponential back-off.

    @ivar service_name: the routing key the service is called by.
    @ivar server: the running L{ThriftServer}, or C{None} between
        connections.
    """

    _cannot_format = "cannot serve Thrift service {service} at {broker}: {error}; will retry"
    _stopped_format = "stopped serving Thrift service {service}"

    def __init__(
        self,
        reactor: Any,
        url: str,
        service_name: str,
        processor: Any,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        responses_exchange: str = DEFAULT_RESPONSES_EXCHANGE,
        queue: str | None = None,
        prefetch: int = 100,
        protocol_factory: Any = None,
        stop_timeout: float = 30.0,
        retry_policy: Callable[[int], float] | None = None,
        connection_name: str | None = None,
    ) -> None:
        """
        @param reactor: the reactor to connect with and time things by.
        @param url: the broker's AMQP URI.
        @param service_name: the service's routing key.
        @param processor: the Thrift processor (see L{serve}).
        @param exchange: see L{serve}.
        @param responses_exchange: see L{serve}.
        @param queue: see L{serve}; the service name by default.
        @param prefetch: see L{serve}.
        @param protocol_factory: see L{serve}.
        @param stop_timeout: how long L{stopService} waits for the calls
            being processed.
        @param retry_policy: seconds to wait before reconnection attempt
            C{n}; exponential back-off up to a minute by default.
        @param connection_name: the name the broker shows for the
            connection; C{txamqp_next Thrift server of <service>} by
            default.
        @raise ValueError: C{url} is not an AMQP URI, or C{prefetch} is out
            of range.
        """
        if not 0 <= prefetch <= 0xFFFF:
            raise ValueError(f"prefetch must be between 0 and 65535, not {prefetch}")
        super().__init__(
            reactor,
            url,
            default_name=f"txamqp_next Thrift server of {service_name}",
            stop_timeout=stop_timeout,
            retry_policy=retry_policy,
            connection_name=connection_name,
        )
        self.service_name = service_name
        self.processor = processor
        self.exchange = exchange
        self.responses_exchange = responses_exchange
        self.queue = queue or service_name
        self.prefetch = prefetch
        self.server: ThriftServer | None = None
        self._protocol_factory = protocol_factory

    def __repr__(self) -> str:
        return f"<ThriftServerService {self.service_name!r} at {self._broker}>"

    def stopService(self) -> Deferred[None]:
        """
        Stop serving (L{ThriftServer.stop}, at most C{stop_timeout}
        seconds), close the connection and stop reconnecting.

        @return: a L{Deferred} firing with C{None} once stopped.  It does
            not fail.
        """
        return super().stopService()

    def when_serving(self, fail_after_failures: int | None = None) -> Deferred[AMQPConnection]:
        """
        Wait for a connection that serves.

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @return: a L{Deferred} firing with the connected L{AMQPConnection} (in a
            later reactor turn than the server started), or failing with
            C{CancelledError} when the service stops first, or with the
            last attempt's error.
        """
        return self._when_ready(fail_after_failures, at_once=False)

    async def _set_up(self, client: AMQPConnection) -> None:
        opened = await client.when_open()
        if self._stopping:
            raise CancelledError()
        server = await serve(
            opened,
            self.service_name,
            self.processor,
            exchange=self.exchange,
            responses_exchange=self.responses_exchange,
            queue=self.queue,
            prefetch=self.prefetch,
            protocol_factory=self._protocol_factory,
        )
        if self._stopping:
            await server.stop(self._stop_timeout)
            raise CancelledError()
        self._client, self.server = opened, server
        server.when_ended().addCallback(self._server_ended, opened, server)
        self.log.info(
            "serving Thrift service {service} from queue {queue} at {broker}",
            service=self.service_name,
            queue=self.queue,
            broker=self._broker,
        )

    def _log_fields(self) -> dict[str, object]:
        return {"service": self.service_name}

    def _server_ended(
        self, reason: BaseException, client: AMQPConnection, server: ThriftServer
    ) -> None:
        if self.server is server:
            self.server = None
        self._reconnect(
            client,
            "the Thrift server of {service} stopped ({reason}); reconnecting",
            service=self.service_name,
            reason=reason,
        )

    async def _wind_down(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(self._stop_timeout)
