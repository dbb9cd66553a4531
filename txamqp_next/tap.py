# -*- test-case-name: tests.test_service -*-
"""
The C{txamqp_next} twistd plugin: run a L{ConsumerService}.

    twistd -n txamqp_next --queue jobs --handler myapp.jobs.handle

calls C{myapp.jobs.handle(message)} with each message from the queue
C{jobs} (see L{txamqp_next.service} for acknowledgements and failures).
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.python import reflect, usage

from txamqp_next.endpoint import DEFAULT_URL, parse_url
from txamqp_next.service import ConsumerService, Handler

__all__ = ["Options", "makeService", "resolve_handler"]


def resolve_handler(name: str) -> Handler:
    """
    Import a handler by its dotted name.

    @param name: C{package.module.callable}.
    @return: the callable.
    @raise usage.UsageError: C{name} is not a dotted name, cannot be
        imported, or is not callable.
    """
    if "." not in name.strip(".") or not all(part.isidentifier() for part in name.split(".")):
        raise usage.UsageError(
            f"--handler must be a dotted name such as package.module.callable, not {name!r}"
        )
    try:
        handler = reflect.namedAny(name)  # type: ignore[no-untyped-call]
    except (
        reflect.ModuleNotFound,
        reflect.ObjectNotFound,
        reflect.InvalidName,
        AttributeError,
    ) as e:
        raise usage.UsageError(f"--handler {name!r} cannot be found: {e}") from None
    except Exception as e:
        raise usage.UsageError(
            f"--handler {name!r}: importing it failed with {type(e).__name__}: {e}"
        ) from None
    if not callable(handler):
        raise usage.UsageError(f"--handler {name!r} is a {type(handler).__name__}, not a callable")
    return handler  # type: ignore[no-any-return]


class Options(usage.Options):
    """
    Command-line options of the C{txamqp_next} plugin.
    """

    synopsis = "--queue QUEUE --handler PACKAGE.MODULE.CALLABLE [options]"
    longdesc = (
        "Consume an AMQP queue, calling the handler with each message (a "
        "txamqp_next.Message).  A message is acknowledged once its handler has "
        "returned (or the Deferred or coroutine it returned has finished); when the "
        "handler fails, the error is logged and the message rejected.  The service "
        "reconnects whenever the connection is lost."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["url", "u", DEFAULT_URL, "The broker's AMQP URI (amqp:// or amqps://)."],
        ["queue", "q", None, "The queue to consume (required)."],
        [
            "handler",
            None,
            None,
            "The dotted name of the callable to call with each message (required).",
        ],
        ["prefetch", "p", 10, "How many unacknowledged messages to allow at once.", int],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        [
            "requeue-on-failure",
            None,
            "Requeue a message whose handler failed, instead of rejecting it for good "
            "(which dead-letters or drops it).",
        ],
        [
            "no-declare",
            None,
            "Do not declare the queue (durable); only check that it exists.",
        ],
    ]

    def postOptions(self) -> None:
        """
        Check the options; resolve C{--handler} to the callable.

        @raise usage.UsageError: an option is missing or invalid.
        """
        for name in ("queue", "handler"):
            if not self[name]:
                raise usage.UsageError(f"--{name} is required")
        try:
            parse_url(self["url"])
        except ValueError as e:
            raise usage.UsageError(f"--url: {e}") from None
        if not 0 <= self["prefetch"] <= 0xFFFF:
            raise usage.UsageError(
                f"--prefetch must be between 0 and 65535, not {self['prefetch']}"
            )
        self["handler"] = resolve_handler(self["handler"])


def makeService(options: Options) -> ConsumerService:
    """
    Build the service from parsed options.

    @return: a L{ConsumerService} on the global reactor.
    """
    from twisted.internet import reactor

    return ConsumerService(
        reactor,
        options["url"],
        options["queue"],
        options["handler"],
        prefetch=options["prefetch"],
        declare=not options["no-declare"],
        requeue_on_failure=bool(options["requeue-on-failure"]),
    )
