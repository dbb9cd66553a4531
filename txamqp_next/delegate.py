# -*- test-case-name: tests.test_txamqp_compat -*-
"""
txAMQP's C{txamqp.delegate}: L{Delegate}, the base of
L{txamqp_next.client.TwistedDelegate}.

A delegate is told of the methods the broker sends on its own: L{dispatch}
calls the handler named after the method's class and name
(C{basic_deliver}, C{channel_flow}, C{basic_cancel}, ...) with the channel
and a txAMQP message.  Unlike txAMQP's, a method without a handler is
ignored rather than ending the connection with an C{AttributeError}.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

from txamqp_next.spec import python_name

__all__ = ["Delegate"]


class Delegate:
    """
    Dispatches received methods to handlers named C{<class>_<method>}.
    """

    log = Logger()

    def __init__(self) -> None:
        self.handlers: dict[Any, Callable[..., object] | None] = {}
        self.invokers: dict[Any, Any] = {}
        self.invoke_all("init")

    def invoke_all(self, meth: str, *args: Any, **kwargs: Any) -> None:
        """
        Call the method C{meth} of every class of this delegate that
        defines one, from the most derived down (txAMQP's mixin hook).
        """
        for cls in inspect.getmro(type(self)):
            handler = cls.__dict__.get(meth)
            if handler is not None:
                handler(self, *args, **kwargs)

    def dispatch(self, channel: Any, message: Any) -> object:
        """
        Hand C{message} to the handler for its method
        (C{message.method.klass.name} and C{message.method.name}).

        @return: what the handler returned, or C{None} when there is none.
        """
        method = message.method
        try:
            handler = self.handlers[method]
        except KeyError:
            name = f"{python_name(method.klass.name)}_{python_name(method.name)}"
            handler = getattr(self, name, None)
            self.handlers[method] = handler
        if handler is None:
            self.log.info(
                "the delegate has no handler for {klass}.{name}",
                klass=method.klass.name,
                name=method.name,
            )
            return None
        return handler(channel, message)

    def close(self, reason: Any) -> None:
        """
        The connection ended, for C{reason} (the broker's
        C{connection.close} as a txAMQP message, or the
        L{twisted.python.failure.Failure} of a lost connection).
        """
