# -*- test-case-name: tests.test_thrift -*-
"""
L{ThriftServerService}: a Thrift server (L{serve}) that survives broker
restarts, as a Twisted L{Service} (it is what C{twistd txamqp_next
--thrift-service ...} runs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IProtocol
from twisted.logger import Logger

from txamqp_next.endpoint import endpoint_and_factory, parse_url
from txamqp_next.protocol import AMQClient
from txamqp_next.service import _close, _detach, _fire, _ReportingEndpoint
from txamqp_next.thrift._client import DEFAULT_EXCHANGE, DEFAULT_RESPONSES_EXCHANGE
from txamqp_next.thrift._server import ThriftServer, serve

__all__ = ["ThriftServerService"]


class ThriftServerService(Service):
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

    log = Logger()

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
        params = parse_url(url)
        self.service_name = service_name
        self.processor = processor
        self.exchange = exchange
        self.responses_exchange = responses_exchange
        self.queue = queue or service_name
        self.prefetch = prefetch
        self.server: ThriftServer | None = None
        self._protocol_factory = protocol_factory
        self._reactor = reactor
        self._stop_timeout = stop_timeout
        self._setup_timeout = params.connection_timeout
        scheme = "amqps" if params.tls else "amqp"
        self._broker = f"{scheme}://{params.host}:{params.port} vhost {params.vhost!r}"
        if connection_name is not None or params.connection_name is None:
            default_name = f"txamqp_next Thrift server of {service_name}"
            params.connection_name = connection_name or default_name
        endpoint, factory = endpoint_and_factory(reactor, params)
        self._client_service = ClientService(
            _ReportingEndpoint(endpoint, self._broker, self._attempt_failed),
            factory,
            retryPolicy=retry_policy if retry_policy is not None else backoffPolicy(),
            clock=reactor,
            prepareConnection=self._prepare,
        )
        self._stopping = False
        self._client: AMQClient | None = None

    def __repr__(self) -> str:
        return f"<ThriftServerService {self.service_name!r} at {self._broker}>"

    def startService(self) -> None:
        """
        Start connecting; serving starts once a connection is prepared.
        """
        super().startService()  # type: ignore[no-untyped-call]
        self._stopping = False
        self._client_service.startService()

    def stopService(self) -> Deferred[None]:
        """
        Stop serving (L{ThriftServer.stop}, at most C{stop_timeout}
        seconds), close the connection and stop reconnecting.

        @return: a L{Deferred} firing with C{None} once stopped.  It does
            not fail.
        """
        super().stopService()  # type: ignore[no-untyped-call]
        return Deferred.fromCoroutine(self._stop())

    def when_serving(self, fail_after_failures: int | None = None) -> Deferred[AMQClient]:
        """
        Wait for a connection that serves.

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @return: a L{Deferred} firing with the connected L{AMQClient} (in a
            later reactor turn than the server started), or failing with
            C{CancelledError} when the service stops first, or with the
            last attempt's error.
        """
        connected = self._client_service.whenConnected(failAfterFailures=fail_after_failures)
        result: Deferred[AMQClient] = Deferred()
        connected.addBoth(lambda outcome: self._reactor.callLater(0, _fire, result, outcome))
        return result

    def _prepare(self, protocol: IProtocol) -> Deferred[None]:
        return Deferred.fromCoroutine(self._prepare_or_close(protocol))

    async def _prepare_or_close(self, protocol: IProtocol) -> None:
        client = cast(AMQClient, protocol)
        try:
            setting_up = Deferred.fromCoroutine(self._set_up(client))
            await setting_up.addTimeout(self._setup_timeout, self._reactor)
        except Exception as e:
            _detach(protocol)
            self._attempt_failed(e)
            await _close(client)
            raise

    async def _set_up(self, client: AMQClient) -> None:
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

    def _attempt_failed(self, error: BaseException) -> None:
        if self._stopping and isinstance(error, CancelledError):
            return
        self.log.warn(
            "cannot serve Thrift service {service} at {broker}: {error}; will retry",
            service=self.service_name,
            broker=self._broker,
            error=error,
        )

    def _server_ended(self, reason: BaseException, client: AMQClient, server: ThriftServer) -> None:
        if self.server is server:
            self.server = None
        if self._stopping:
            return
        if client.closed is not None:
            self.log.warn(
                "lost the connection to {broker} ({reason}); reconnecting",
                broker=self._broker,
                reason=client.closed,
            )
            return
        self.log.warn(
            "the Thrift server of {service} stopped ({reason}); reconnecting",
            service=self.service_name,
            reason=reason,
        )
        _close(client)

    async def _stop(self) -> None:
        self._stopping = True
        client, server = self._client, self.server
        self._client = self.server = None
        if server is not None:
            await server.stop(self._stop_timeout)
        if client is not None:
            await _close(client)
        await self._client_service.stopService()
        self.log.info("stopped serving Thrift service {service}", service=self.service_name)
