# -*- test-case-name: tests.test_thrift -*-
"""
L{ThriftServerService}: a Thrift server (L{serve}) that survives broker
restarts and fails over between brokers, as a Twisted
L{Service <twisted.application.service.Service>} (it is what
C{twistd txamqp_next --thrift-service ...} runs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import CancelledError, Deferred

from txamqp_next._deferred import from_coroutine
from txamqp_next._params import ConnectionParameters
from txamqp_next.connection import AMQPConnection
from txamqp_next.endpoint import BrokerList
from txamqp_next.errors import PreconditionFailed
from txamqp_next.recovery import RecoveringConnection
from txamqp_next.service import _RecoveringService
from txamqp_next.thrift._client import DEFAULT_EXCHANGE, DEFAULT_RESPONSES_EXCHANGE
from txamqp_next.thrift._server import ThriftServer, serve

__all__ = ["ThriftServerService"]


class ThriftServerService(_RecoveringService):
    """
    Serve a Thrift service through a connection that heals itself (a
    L{RecoveringConnection}): after a connection is lost it reconnects (to
    the next broker of the list when there are several) and serves again.

    The service's queue is durable by default, so calls wait in it while no
    server runs, and a call whose server died mid-call (unacknowledged)
    goes to the next server.  Errors that retrying cannot mend (refused
    credentials, a queue that exists with other settings) stop the service
    with one log line.

    @ivar service_name: the routing key the service is called by.
    @ivar server: the running L{ThriftServer}, or C{None} until it runs.
    """

    def __init__(
        self,
        reactor: Any,
        brokers: BrokerList,
        service_name: str,
        processor: Any,
        *,
        exchange: str = DEFAULT_EXCHANGE,
        responses_exchange: str = DEFAULT_RESPONSES_EXCHANGE,
        queue: str | None = None,
        durable: bool = True,
        queue_arguments: Mapping[str, Any] | None = None,
        prefetch: int = 100,
        protocol_factory: Any = None,
        stop_timeout: float = 30.0,
        retry_policy: Callable[[int], float] | None = None,
        connection_name: str | None = None,
        params: ConnectionParameters | None = None,
    ) -> None:
        """
        @param reactor: the reactor to connect with and time things by.
        @param brokers: the brokers, tried in turn (see
            L{txamqp_next.endpoint.brokers_for}): AMQP URIs, endpoint
            strings or endpoints.
        @param service_name: the service's routing key.
        @param processor: the Thrift processor (see L{serve}).
        @param exchange: see L{serve}.
        @param responses_exchange: see L{serve}.
        @param queue: see L{serve}; the service name by default.
        @param durable: declare the queue durable (see L{serve}); when false
            it is auto-deleted with its last consumer, as txAMQP's servers
            declare it.
        @param queue_arguments: see L{serve}.
        @param prefetch: see L{serve}.
        @param protocol_factory: see L{serve}.
        @param stop_timeout: how long L{stopService} waits for the calls
            being processed.
        @param retry_policy: seconds to wait before reconnection attempt
            C{n}; exponential back-off up to a minute by default.
        @param connection_name: the name the broker shows for the
            connection; C{txamqp_next Thrift server of <service>} by
            default.
        @param params: the connection parameters for brokers given as
            endpoints.
        @raise ValueError: a bad URI or endpoint string, or C{prefetch} out
            of range.
        """
        if not 0 <= prefetch <= 0xFFFF:
            raise ValueError(f"prefetch must be between 0 and 65535, not {prefetch}")
        super().__init__(
            reactor,
            brokers,
            default_name=f"txamqp_next Thrift server of {service_name}",
            stop_timeout=stop_timeout,
            retry_policy=retry_policy,
            connection_name=connection_name,
            params=params,
        )
        self.service_name = service_name
        self.processor = processor
        self.exchange = exchange
        self.responses_exchange = responses_exchange
        self.queue = queue or service_name
        self.durable = durable
        self.queue_arguments: dict[str, Any] = dict(queue_arguments or {})
        self.prefetch = prefetch
        self.server: ThriftServer | None = None
        self.description = f"Thrift server of {service_name}"
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
        Wait for the service to serve.

        @param fail_after_failures: fail after this many failed connection
            attempts in a row; never when C{None}.
        @return: a L{Deferred} firing with the L{AMQPConnection} serving now
            (at once if there is one), or the next one; failing with
            C{CancelledError} when the service stops first, with the error
            that stopped it, or with the last attempt's error.
        """
        return self._when_ready(fail_after_failures)

    async def _set_up(self, connection: RecoveringConnection) -> None:
        server = await serve(
            connection,
            self.service_name,
            self.processor,
            exchange=self.exchange,
            responses_exchange=self.responses_exchange,
            queue=self.queue,
            durable=self.durable,
            queue_arguments=self.queue_arguments,
            prefetch=self.prefetch,
            protocol_factory=self._protocol_factory,
        )
        if self._stopping:
            await server.stop(self._stop_timeout)
            raise CancelledError()
        self.server = server
        server.when_ended().addCallback(self._server_ended, server)
        self._log_ready(connection)

    def _log_ready(self, connection: RecoveringConnection) -> None:
        broker = connection.broker
        self.log.info(
            "serving Thrift service {service} from queue {queue} at {broker}",
            service=self.service_name,
            queue=self.queue,
            broker=broker.name if broker is not None else self._broker,
        )

    def _log_stopped(self) -> None:
        self.log.info("stopped serving Thrift service {service}", service=self.service_name)

    def _hint(self, error: BaseException) -> str:
        if isinstance(error, PreconditionFailed):
            return (
                f"queue {self.queue!r} exists with other settings (durable={not self.durable}?): "
                "delete it or give the same settings; "
            )
        return ""

    def _server_ended(self, reason: BaseException, server: ThriftServer) -> None:
        """
        The server's consumer ended for good (the broker cancelled it, or
        closed its channel): serve again on a new channel, unless stopping.
        """
        if self._stopping or server is not self.server or self.failed is not None:
            return
        self.server = None
        self._ready = False
        self.log.warn(
            "the Thrift server of {service} stopped ({reason}); serving again",
            service=self.service_name,
            reason=reason,
        )
        from_coroutine(self._serve_again(server))

    async def _serve_again(self, old: ThriftServer) -> None:
        await old.stop(self._stop_timeout)
        await self._set_up_again()

    async def _wind_down(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            await server.stop(self._stop_timeout)
