# -*- test-case-name: tests.test_service -*-
"""
The C{txamqp_next} twistd plugin: run a L{ConsumerService}, a Thrift server
(L{txamqp_next.thrift.ThriftServerService}), or both.

    twistd -n txamqp_next --queue jobs --handler myapp.jobs.handle

calls C{myapp.jobs.handle(message)} with each message from the queue
C{jobs} (see L{txamqp_next.service} for acknowledgements and failures).

    twistd -n txamqp_next --thrift-service calculator \
        --thrift-processor myapp.calc.make_processor

serves the Thrift service C{calculator} with the processor that
C{myapp.calc.make_processor()} returns (see L{txamqp_next.thrift}).
"""

from __future__ import annotations

from typing import Any, ClassVar

from twisted.application.service import IService, MultiService
from twisted.python import reflect, usage

from txamqp_next.endpoint import DEFAULT_URL, parse_url
from txamqp_next.service import ConsumerService, Handler

__all__ = ["Options", "makeService", "resolve_handler", "resolve_processor"]

THRIFT_PROTOCOLS = ("binary", "compact", "json")


def _resolve(name: str, option: str) -> Any:
    if "." not in name.strip(".") or not all(part.isidentifier() for part in name.split(".")):
        raise usage.UsageError(
            f"{option} must be a dotted name such as package.module.callable, not {name!r}"
        )
    try:
        return reflect.namedAny(name)  # type: ignore[no-untyped-call]
    except (
        reflect.ModuleNotFound,
        reflect.ObjectNotFound,
        reflect.InvalidName,
        AttributeError,
    ) as e:
        raise usage.UsageError(f"{option} {name!r} cannot be found: {e}") from None
    except Exception as e:
        raise usage.UsageError(
            f"{option} {name!r}: importing it failed with {type(e).__name__}: {e}"
        ) from None


def resolve_handler(name: str) -> Handler:
    """
    Import a handler by its dotted name.

    @param name: C{package.module.callable}.
    @return: the callable.
    @raise usage.UsageError: C{name} is not a dotted name, cannot be
        imported, or is not callable.
    """
    handler = _resolve(name, "--handler")
    if not callable(handler):
        raise usage.UsageError(f"--handler {name!r} is a {type(handler).__name__}, not a callable")
    return handler  # type: ignore[no-any-return]


def resolve_processor(name: str) -> Any:
    """
    Import a Thrift processor by its dotted name: either a processor (an
    object with a C{process} method) or a callable that returns one when
    called with no arguments.

    @param name: C{package.module.name}.
    @return: the processor.
    @raise usage.UsageError: C{name} cannot be imported, or is neither a
        processor nor a callable returning one (or that callable failed).
    """
    found = _resolve(name, "--thrift-processor")
    if callable(getattr(found, "process", None)):
        return found
    if not callable(found):
        raise usage.UsageError(
            f"--thrift-processor {name!r} is a {type(found).__name__}, neither a Thrift "
            "processor nor a callable returning one"
        )
    try:
        processor = found()
    except Exception as e:
        raise usage.UsageError(
            f"--thrift-processor {name!r}: calling it failed with {type(e).__name__}: {e}"
        ) from None
    if not callable(getattr(processor, "process", None)):
        raise usage.UsageError(
            f"--thrift-processor {name!r} returned a {type(processor).__name__}, "
            "not a Thrift processor (it has no process method)"
        )
    return processor


def _protocol_factory(name: str) -> Any:
    if name == "compact":
        from thrift.protocol.TCompactProtocol import TCompactProtocolFactory

        return TCompactProtocolFactory()
    if name == "json":
        from thrift.protocol.TJSONProtocol import TJSONProtocolFactory

        return TJSONProtocolFactory()
    from thrift.protocol.TBinaryProtocol import TBinaryProtocolFactory

    return TBinaryProtocolFactory()


class Options(usage.Options):
    """
    Command-line options of the C{txamqp_next} plugin.
    """

    synopsis = (
        "--queue QUEUE --handler PACKAGE.MODULE.CALLABLE | "
        "--thrift-service NAME --thrift-processor PACKAGE.MODULE.FACTORY [options]"
    )
    longdesc = (
        "Consume an AMQP queue, calling the handler with each message (a "
        "txamqp_next.Message).  A message is acknowledged once its handler has "
        "returned (or the Deferred or coroutine it returned has finished); when the "
        "handler fails, the error is logged and the message rejected.  "
        "With --thrift-service, serve a Thrift service over AMQP (txAMQP's wire "
        "format) with the processor --thrift-processor names; both may run at once.  "
        "The services reconnect whenever the connection is lost."
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
        [
            "thrift-service",
            None,
            None,
            "Serve this Thrift service (the routing key its clients call it by).",
        ],
        [
            "thrift-processor",
            None,
            None,
            "The dotted name of the Thrift processor, or of a callable returning one "
            "(such as a function returning Calculator.Processor(Handler())).",
        ],
        [
            "thrift-exchange",
            None,
            "thrift",
            "The exchange Thrift clients publish calls to (a direct exchange).",
        ],
        [
            "thrift-responses-exchange",
            None,
            "amq.direct",
            "The exchange Thrift replies are published to.",
        ],
        [
            "thrift-queue",
            None,
            None,
            "The queue of Thrift calls to consume (default: the service name).",
        ],
        [
            "thrift-prefetch",
            None,
            100,
            "How many Thrift calls to process at once.",
            int,
        ],
        [
            "thrift-protocol",
            None,
            "binary",
            "The Thrift protocol: binary, compact or json.",
        ],
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
        consumer = bool(self["queue"] or self["handler"])
        thrift = bool(self["thrift-service"] or self["thrift-processor"])
        if consumer or not thrift:
            for name in ("queue", "handler"):
                if not self[name]:
                    hint = "" if consumer else " (or --thrift-service to serve Thrift)"
                    raise usage.UsageError(f"--{name} is required{hint}")
        if thrift:
            for name in ("thrift-service", "thrift-processor"):
                if not self[name]:
                    raise usage.UsageError(f"--{name} is required with a Thrift server")
        try:
            parse_url(self["url"])
        except ValueError as e:
            raise usage.UsageError(f"--url: {e}") from None
        for name in ("prefetch", "thrift-prefetch"):
            if not 0 <= self[name] <= 0xFFFF:
                raise usage.UsageError(f"--{name} must be between 0 and 65535, not {self[name]}")
        if self["thrift-protocol"] not in THRIFT_PROTOCOLS:
            raise usage.UsageError(
                f"--thrift-protocol must be one of {', '.join(THRIFT_PROTOCOLS)}, "
                f"not {self['thrift-protocol']!r}"
            )
        if consumer:
            self["handler"] = resolve_handler(self["handler"])
        if thrift:
            self["thrift-processor"] = resolve_processor(self["thrift-processor"])


def makeService(options: Options) -> IService:
    """
    Build the service from parsed options.

    @return: on the global reactor, a L{ConsumerService}, a
        L{txamqp_next.thrift.ThriftServerService}, or a L{MultiService}
        holding both when both were asked for.
    """
    from twisted.internet import reactor

    services: list[IService] = []
    if options["queue"]:
        services.append(
            ConsumerService(
                reactor,
                options["url"],
                options["queue"],
                options["handler"],
                prefetch=options["prefetch"],
                declare=not options["no-declare"],
                requeue_on_failure=bool(options["requeue-on-failure"]),
            )
        )
    if options["thrift-service"]:
        from txamqp_next.thrift import ThriftServerService

        services.append(
            ThriftServerService(
                reactor,
                options["url"],
                options["thrift-service"],
                options["thrift-processor"],
                exchange=options["thrift-exchange"],
                responses_exchange=options["thrift-responses-exchange"],
                queue=options["thrift-queue"],
                prefetch=options["thrift-prefetch"],
                protocol_factory=_protocol_factory(options["thrift-protocol"]),
            )
        )
    if len(services) == 1:
        return services[0]
    multi = MultiService()  # type: ignore[no-untyped-call]
    for service in services:
        service.setServiceParent(multi)  # type: ignore[no-untyped-call]
    return multi
