# -*- test-case-name: tests.test_txamqp_compat -*-
"""
txAMQP's C{txamqp.factory}: L{AMQFactory}, a protocol factory building
L{AMQClient}s, used with L{txamqp_next.endpoint.AMQEndpoint} or any Twisted
endpoint; and L{DEFAULT_SPEC}, the spec it loads when given none
(txamqp_next's 0-9-1 with RabbitMQ's extensions, inside the package).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Factory

from txamqp_next.client import TwistedDelegate
from txamqp_next.protocol import AMQClient
from txamqp_next.spec import DEFAULT_SPEC, Spec, load

__all__ = ["DEFAULT_SPEC", "AMQFactory"]


class AMQFactory(Factory):
    """
    Builds L{AMQClient}s, each with a new L{TwistedDelegate}, the spec, the
    vhost and the heartbeat.  The clients still need C{authenticate()}
    (which C{AMQEndpoint.connect} calls).

    @param spec: a L{Spec}, a spec file path or short name; L{DEFAULT_SPEC}
        when omitted.
    @param clock: the reactor for the clients' timers.
    """

    protocol = AMQClient

    def __init__(self, spec: Spec | str | None = None, clock: IReactorTime | None = None) -> None:
        self._spec = spec if isinstance(spec, Spec) else load(spec or DEFAULT_SPEC)
        self._clock = clock
        self._vhost = "/"
        self._heartbeat = 0

    def set_vhost(self, vhost: str) -> None:
        """
        The virtual host the clients open.
        """
        self._vhost = vhost

    def set_heartbeat(self, heartbeat: int) -> None:
        """
        The heartbeat interval the clients ask for.
        """
        self._heartbeat = heartbeat

    def buildProtocol(self, addr: Any) -> AMQClient:
        return self.protocol(
            TwistedDelegate(),
            vhost=self._vhost,
            spec=self._spec,
            heartbeat=self._heartbeat,
            clock=self._clock,
        )
