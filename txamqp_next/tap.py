# -*- test-case-name: tests.test_tap -*-
"""
The C{txamqp_next} twistd plugin: run a L{ConsumerService}, a Thrift server
(L{txamqp_next.thrift.ThriftServerService}), or both::

    twistd -n txamqp_next --queue jobs --handler myapp.jobs.handle

calls C{myapp.jobs.handle(message)} with each message from the queue
C{jobs} (see L{txamqp_next.service} for acknowledgements and failures)::

    twistd -n txamqp_next --thrift-service calculator \
        --thrift-processor myapp.calc.make_processor

serves the Thrift service C{calculator} with the processor that
C{myapp.calc.make_processor()} returns (see L{txamqp_next.thrift}).

Every option can also be set, so that no password shows in C{ps}:

  - in the environment, as C{TXAMQP_NEXT_<OPTION>}: the long option's
    name in upper case with dashes as underscores (C{TXAMQP_NEXT_URL},
    C{TXAMQP_NEXT_QUEUE_ARGUMENT}).  Flags take C{1}, C{true}, C{yes},
    C{on} or C{0}, C{false}, C{no}, C{off}; a repeatable option
    (C{--endpoint}, C{--queue-argument}) takes its values separated by
    C{;} or line breaks;
  - in a settings file named by C{--config} (or C{TXAMQP_NEXT_CONFIG}):
    one C{name = value} per line with the long option's name, blank lines
    and lines starting with C{#} ignored; a repeatable option takes one
    value per line and may appear on several lines, others only once;
  - the URL alone in a file named by C{--url-file} (or
    C{TXAMQP_NEXT_URL_FILE}), such as a Docker or Kubernetes secret.

The command line wins over the environment, which wins over the settings
file, which wins over the defaults.  An empty value (C{TXAMQP_NEXT_QUEUE=},
C{queue =}) leaves its option unset.  A repeatable option given in one of
these places replaces its values from the places below.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from typing import Any, ClassVar, Protocol

from twisted.application.service import IService, MultiService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import ReactorNotRunning
from twisted.logger import Logger
from twisted.python import reflect, usage

from txamqp_next._params import ConnectionParameters, parse_brokers
from txamqp_next.endpoint import DEFAULT_URL, BrokerList, brokers_for
from txamqp_next.service import ConsumerService, Handler

__all__ = [
    "ENV_PREFIX",
    "Options",
    "environment_variable",
    "makeService",
    "queue_argument",
    "resolve_handler",
    "resolve_processor",
]

THRIFT_PROTOCOLS = ("binary", "compact", "json")

#: the prefix of the environment variables that set options
ENV_PREFIX = "TXAMQP_NEXT_"

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")

#: options that may be given several times, each adding a value
_REPEATABLE = ("endpoint", "queue-argument", "thrift-queue-argument")

# what a setting's name looks like in a settings file; anything else on the
# left of "=" is not shown in error messages (it could be part of a URL)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")

# the values of an option, each with where it was found: "" for the command
# line, else the environment variable or the file and line
_Values = list[tuple[str, str]]
_Settings = dict[str, _Values]


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
    from txamqp_next.thrift._client import binary_protocol

    return binary_protocol()


def environment_variable(option: str) -> str:
    """
    The environment variable that sets an option.

    @param option: the long option's name, such as C{"queue-argument"}.
    @return: such as C{"TXAMQP_NEXT_QUEUE_ARGUMENT"}.
    """
    return ENV_PREFIX + option.upper().replace("-", "_")


def _from(where: str) -> str:
    return f" (from {where})" if where else ""


def _whole(low: int, high: int | None) -> Callable[[str], int]:
    def convert(text: str) -> int:
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"must be a whole number, not {text!r}") from None
        if number < low or (high is not None and number > high):
            if high is None:
                raise ValueError(f"must be {low} or more, not {number}")
            raise ValueError(f"must be between {low} and {high}, not {number}")
        return number

    return convert


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(f"must be a number of seconds, not {text!r}") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"must be a number of seconds, 0 or more, not {text!r}")
    return seconds


def _flag(text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"takes {', '.join(_TRUE)} or {', '.join(_FALSE)}, not {text!r}")


def _thrift_protocol(text: str) -> str:
    if text not in THRIFT_PROTOCOLS:
        raise ValueError(f"must be one of {', '.join(THRIFT_PROTOCOLS)}, not {text!r}")
    return text


def queue_argument(text: str) -> tuple[str, Any]:
    """
    Read a C{--queue-argument}: C{KEY=VALUE}, where a value that reads as a
    whole number becomes an C{int}, C{true} and C{false} (in any case)
    booleans, and anything else stays a string.

    @param text: such as C{"x-max-length=1000"}.
    @return: the key and the value, such as C{("x-max-length", 1000)}.
    @raise ValueError: C{text} is not C{KEY=VALUE}.
    """
    key, equals, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key:
        raise ValueError(f"takes KEY=VALUE (such as x-queue-type=quorum), not {text!r}")
    if re.fullmatch(r"[+-]?[0-9]+", value):
        return key, int(value)
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value


def _has_password(url: str) -> bool:
    """
    Whether an AMQP URI (or a list of them) spells out a password.
    """
    for uri in re.split(r"[;\s]+", url):
        _, separator, rest = uri.partition("://")
        if not separator:
            continue
        authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
        userinfo, at, _ = authority.rpartition("@")
        if at and userinfo.partition(":")[2]:
            return True
    return False


def _read_text(path: str, option: str, path_from: str) -> str:
    """
    The text of the file an option names.

    @raise usage.UsageError: it cannot be read, or is not UTF-8 text.
    """
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise usage.UsageError(
            f"--{option} {path}: cannot read it: {e.strerror or e}{_from(path_from)}"
        ) from None
    except UnicodeDecodeError:
        raise usage.UsageError(
            f"--{option} {path}: not a UTF-8 text file{_from(path_from)}"
        ) from None


def _read_settings(path: str, path_from: str, names: Iterable[str]) -> _Settings:
    """
    Read a settings file.

    @param path: the file's name.
    @param path_from: where the file's name comes from (C{""} for the
        command line).
    @param names: the options' names.

    @raise usage.UsageError: the file cannot be read, or a line is not
        C{name = value} with an option's name.  Values are never quoted.
    """
    known = set(names)
    lines = _read_text(path, "config", path_from).splitlines()
    settings: _Settings = {}
    first: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        where = f"{path}, line {number}"
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        name, equals, value = text.partition("=")
        name, value = name.strip(), value.strip()
        if not equals or not _NAME.fullmatch(name):
            raise usage.UsageError(f"{where}: not a setting (name = value)")
        if name not in known:
            dashes = name.replace("_", "-") in known
            hint = " (the long option's name, with dashes)" if dashes else ""
            raise usage.UsageError(f"{where}: no option is called {name!r}{hint}")
        if name == "config":
            raise usage.UsageError(f"{where}: a settings file cannot name another one")
        if name in first and name not in _REPEATABLE:
            raise usage.UsageError(f"{where}: {name} is set twice (first on line {first[name]})")
        first.setdefault(name, number)
        if value:
            settings.setdefault(name, []).append((value, where))
    return settings


class Options(usage.Options):
    """
    The options of the C{txamqp_next} plugin, from the command line, the
    environment and a settings file (see the module's description).

    Once parsed, each option holds its value, whatever its source:
    C{options["prefetch"]} an C{int}, C{options["handler"]} the callable,
    C{options["thrift-processor"]} the processor, C{options["endpoint"]} a
    list of endpoint strings, C{options["queue-argument"]} a C{dict}, flags
    a C{bool}, unset options C{None}.
    """

    log = Logger()

    synopsis = (
        "--queue QUEUE --handler PACKAGE.MODULE.CALLABLE | "
        "--thrift-service NAME --thrift-processor PACKAGE.MODULE.FACTORY [options]"
    )
    longdesc = (
        "Consume an AMQP queue, calling the handler with each message (a "
        "txamqp_next.Message).  A message is acknowledged once its handler has "
        "returned (or the Deferred or coroutine it returned has finished); when the "
        "handler fails, the error is logged and the message rejected (or sent back "
        "to the queue: --max-redeliveries, --requeue-on-failure).  "
        "With --thrift-service, serve a Thrift service over AMQP (txAMQP's wire "
        "format) with the processor --thrift-processor names; both may run at once.  "
        "The services reconnect whenever the connection is lost, to the next broker "
        "when there are several; an error that retrying cannot mend (refused "
        "credentials, a queue declared with other arguments) stops them, and twistd "
        "exits once all have stopped.\n\n"
        "Every option can also be set in the environment as TXAMQP_NEXT_<OPTION> "
        "(TXAMQP_NEXT_URL, TXAMQP_NEXT_NO_DECLARE=true, "
        "TXAMQP_NEXT_QUEUE_ARGUMENT='x-queue-type=quorum;x-max-length=1000') or in a "
        "settings file (--config or TXAMQP_NEXT_CONFIG) of 'name = value' lines "
        "('url = amqp://...', 'no-declare = true', one 'queue-argument = K=V' line "
        "per argument, '#' comment lines).  The command line wins over the "
        "environment, which wins over the file."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        [
            "config",
            None,
            None,
            "Read settings from this file: 'name = value' lines with the long "
            "options' names (see below).",
        ],
        [
            "url",
            "u",
            None,
            "The brokers' AMQP URI (amqp:// or amqps://): several hosts as "
            "amqp://user:password@host1,host2:5673/vhost, or several URIs separated by "
            f"';' or spaces [default: {DEFAULT_URL}].  A password given here shows in ps: "
            "prefer TXAMQP_NEXT_URL, --url-file or --config.",
        ],
        [
            "url-file",
            None,
            None,
            "Read the URL from this file, which holds just it (a Docker or Kubernetes secret).",
        ],
        ["queue", "q", None, "The queue to consume (required for a consumer)."],
        [
            "handler",
            None,
            None,
            "The dotted name of the callable to call with each message (required for a consumer).",
        ],
        [
            "prefetch",
            "p",
            None,
            "How many unacknowledged messages to allow at once; 0 for no limit [default: 10].",
        ],
        [
            "max-redeliveries",
            None,
            None,
            "Send a message whose handler failed back to the queue at most this many "
            "times, then reject it for good (dead-letter it).",
        ],
        [
            "redelivery-delay",
            None,
            None,
            "Seconds a failed message waits before it goes back to the queue [default: 1].",
        ],
        [
            "stop-timeout",
            None,
            None,
            "Seconds to wait, when stopping, for the running handlers and Thrift calls "
            "[default: 30].",
        ],
        [
            "connection-name",
            None,
            None,
            "The name the broker shows for the connections.",
        ],
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
            None,
            "The exchange Thrift clients publish calls to (a direct exchange) [default: thrift].",
        ],
        [
            "thrift-responses-exchange",
            None,
            None,
            "The exchange Thrift replies are published to [default: amq.direct].",
        ],
        [
            "thrift-queue",
            None,
            None,
            "The queue of Thrift calls to consume [default: the service name].",
        ],
        [
            "thrift-prefetch",
            None,
            None,
            "How many Thrift calls to process at once [default: 100].",
        ],
        [
            "thrift-protocol",
            None,
            None,
            "The Thrift protocol: binary, compact or json [default: binary].",
        ],
    ]
    optFlags: ClassVar[list[list[Any]]] = [
        [
            "no-declare",
            None,
            "Do not declare the queue (durable, with its --queue-argument); only check "
            "that it exists.",
        ],
        [
            "requeue-on-failure",
            None,
            "Without --max-redeliveries, send a message whose handler failed back to the "
            "queue, for ever, instead of rejecting it for good (which dead-letters or "
            "drops it).",
        ],
        [
            "thrift-transient-queue",
            None,
            "Declare the Thrift queue non-durable and auto-deleted with its last server, "
            "as txAMQP's servers do (by default it is durable, so calls wait while no "
            "server runs).",
        ],
    ]

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """
        @param environ: the environment to read settings from; C{os.environ}
            (when parsing) by default.
        """
        super().__init__()  # type: ignore[no-untyped-call]
        self._environ = environ
        for name in _REPEATABLE:
            self[name] = []
            # the help shows the opt_ methods' docstrings: one paragraph each
            self.docs[name] = " ".join(self.docs[name].split())

    def opt_endpoint(self, endpoint: str) -> None:
        """
        A Twisted client endpoint string to connect to (tcp:HOST:PORT,
        tls:HOST:PORT, unix:PATH), instead of the URL's hosts; the URL's
        user, password, vhost and parameters apply.  Repeat it for several
        brokers, tried in order.
        """
        self["endpoint"].append(endpoint)

    def opt_queue_argument(self, argument: str) -> None:
        """
        KEY=VALUE: an argument of the queue (x-queue-type=quorum,
        x-dead-letter-exchange=dlx); whole numbers become integers, true
        and false booleans.  Repeat it for several.
        """
        self["queue-argument"].append(argument)

    def opt_thrift_queue_argument(self, argument: str) -> None:
        """
        KEY=VALUE: an argument of the Thrift service's queue
        (x-queue-type=quorum), read as --queue-argument's.  Repeat it for
        several.
        """
        self["thrift-queue-argument"].append(argument)

    # -- where the settings come from ------------------------------------------

    def _names(self) -> list[str]:
        return [
            *(parameter[0] for parameter in self.optParameters),
            *(flag[0] for flag in self.optFlags),
            *_REPEATABLE,
        ]

    def _command_line(self) -> _Settings:
        given: _Settings = {}
        for parameter in self.optParameters:
            name = parameter[0]
            if self[name] is not None:
                given[name] = [(self[name], "")]
        for flag in self.optFlags:
            if self[flag[0]]:
                given[flag[0]] = [("true", "")]
        for name in _REPEATABLE:
            if self[name]:
                given[name] = [(value, "") for value in self[name]]
        return given

    def _environment(self) -> _Settings:
        environ = self._environ if self._environ is not None else os.environ
        given: _Settings = {}
        for name in self._names():
            variable = environment_variable(name)
            text = environ.get(variable, "").strip()
            if not text:
                continue
            if name in _REPEATABLE:
                values = [value.strip() for value in re.split(r"[;\r\n]", text)]
                given[name] = [(value, variable) for value in values if value]
            else:
                given[name] = [(text, variable)]
        return given

    def _url(self, levels: Sequence[_Settings]) -> tuple[str, str]:
        """
        The URL and where it comes from: C{--url} or C{--url-file} from the
        first place that gives either.
        """
        for level in levels:
            url, url_file = level.get("url"), level.get("url-file")
            if url and url_file:
                places = f" ({url[0][1]} and {url_file[0][1]})" if url[0][1] else ""
                raise usage.UsageError(f"give --url or --url-file, not both{places}")
            if url:
                return url[0]
            if url_file:
                path, where = url_file[0]
                self["url-file"] = path
                text = _read_text(path, "url-file", where).strip()
                if not text:
                    raise usage.UsageError(f"--url-file {path} is empty{_from(where)}")
                return text, f"the file {path}"
        return DEFAULT_URL, ""

    # -- checking them ---------------------------------------------------------------

    def postOptions(self) -> None:
        """
        Merge the settings from the command line, the environment and the
        settings file; check them; resolve C{--handler} to the callable and
        C{--thrift-processor} to the processor.

        @raise usage.UsageError: an option is missing or invalid, or the
            settings file cannot be read or holds a line that is not a
            setting.  No message shows the URL's password.
        """
        command_line = self._command_line()
        environment = self._environment()
        [(config, config_from)] = (
            command_line.get("config") or environment.get("config") or [("", "")]
        )
        settings = _read_settings(config, config_from, self._names()) if config else {}
        if config and "config" not in command_line:
            self["config"] = config
        levels = (command_line, environment, settings)

        def chosen(name: str) -> _Values:
            for level in levels:
                if name in level:
                    return level[name]
            return []

        def value(name: str, convert: Callable[[str], Any], default: Any) -> Any:
            values = chosen(name)
            if not values:
                return default
            text, where = values[-1]
            try:
                return convert(text)
            except ValueError as e:
                raise usage.UsageError(f"--{name} {e}{_from(where)}") from None

        url, url_from = self._url(levels)
        if "url" in command_line and _has_password(command_line["url"][0][0]):
            self.log.warn(
                "--url on the command line holds a password, which anyone on this host "
                "can read with ps: set it with TXAMQP_NEXT_URL, --url-file or --config instead"
            )

        for name in (
            "queue",
            "handler",
            "connection-name",
            "thrift-service",
            "thrift-processor",
            "thrift-queue",
        ):
            self[name] = value(name, str, None)
        self["thrift-exchange"] = value("thrift-exchange", str, "thrift")
        self["thrift-responses-exchange"] = value("thrift-responses-exchange", str, "amq.direct")
        for name in ("no-declare", "requeue-on-failure", "thrift-transient-queue"):
            self[name] = value(name, _flag, False)

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

        # building endpoints connects nothing; it checks strings and TLS files
        from twisted.internet import reactor

        try:
            # AMQP URIs only (brokers_for takes endpoint strings as well)
            parse_brokers(url)
            brokers_for(reactor, url)
        except (ValueError, ImportError) as e:
            raise usage.UsageError(f"--url{_from(url_from)}: {e}") from None
        self["url"] = url
        self["endpoint"] = self._endpoints(reactor, chosen("endpoint"))

        self["prefetch"] = value("prefetch", _whole(0, 0xFFFF), 10)
        self["thrift-prefetch"] = value("thrift-prefetch", _whole(0, 0xFFFF), 100)
        self["max-redeliveries"] = value("max-redeliveries", _whole(0, None), None)
        self["redelivery-delay"] = value("redelivery-delay", _seconds, 1.0)
        self["stop-timeout"] = value("stop-timeout", _seconds, 30.0)
        self["thrift-protocol"] = value("thrift-protocol", _thrift_protocol, "binary")
        self["queue-argument"] = self._queue_arguments(chosen("queue-argument"))
        self["thrift-queue-argument"] = self._queue_arguments(
            chosen("thrift-queue-argument"), "thrift-queue-argument"
        )

        if consumer:
            self["handler"] = self._resolved(resolve_handler, chosen("handler"))
        if thrift:
            self["thrift-processor"] = self._resolved(resolve_processor, chosen("thrift-processor"))

    def _resolved(self, resolve: Callable[[str], Any], values: _Values) -> Any:
        text, where = values[-1]
        try:
            return resolve(text)
        except usage.UsageError as e:
            raise usage.UsageError(f"{e}{_from(where)}") from None

    def _endpoints(self, reactor: Any, values: _Values) -> list[str]:
        """
        Check the C{--endpoint} strings.
        """
        for text, where in values:
            if "://" in text:
                raise usage.UsageError(
                    f"--endpoint takes a Twisted endpoint string such as tcp:HOST:PORT; "
                    f"give AMQP URIs with --url{_from(where)}"
                )
            try:
                endpoints.clientFromString(reactor, text)  # type: ignore[no-untyped-call]
            except Exception as e:
                raise usage.UsageError(
                    f"--endpoint {text!r} is not a client endpoint string: "
                    f"{type(e).__name__}: {e}{_from(where)}"
                ) from None
        return [text for text, _ in values]

    def _queue_arguments(self, values: _Values, option: str = "queue-argument") -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        for text, where in values:
            try:
                key, argument = queue_argument(text)
            except ValueError as e:
                raise usage.UsageError(f"--{option} {e}{_from(where)}") from None
            if key in arguments:
                raise usage.UsageError(f"--{option} {key} is given twice{_from(where)}")
            arguments[key] = argument
        return arguments


class _Service(Protocol):
    """
    What L{_ExitWhenFailed} needs of a service: L{ConsumerService} and
    L{txamqp_next.thrift.ThriftServerService} both have it.
    """

    failed: BaseException | None
    running: int

    def stopService(self) -> Deferred[None]: ...


class _ExitWhenFailed:
    """
    Stop the reactor, so that twistd exits, once every service watched has
    stopped itself for good: an error that retrying cannot mend (refused
    credentials, a queue declared with other arguments) set its C{failed}
    and made it call its own C{stopService}.  Services stopped otherwise
    (twistd shutting down) stop nothing.

    It wraps each service's C{stopService}: the services call
    C{self.stopService()} when they give up, after setting C{failed}.
    """

    log = Logger()

    def __init__(self, reactor: Any, services: Sequence[_Service]) -> None:
        """
        @param reactor: the reactor to stop.
        @param services: the services to watch.
        """
        self._reactor = reactor
        self._services = list(services)
        self._done = False
        for service in self._services:
            self._watch(service)

    def _watch(self, service: _Service) -> None:
        stop = service.stopService

        def stopService() -> Deferred[None]:
            stopped = stop()
            if service.failed is not None:
                stopped.addCallback(self._stopped)
            return stopped

        service.stopService = stopService  # type: ignore[method-assign]

    def _stopped(self, result: None) -> None:
        if self._done or not all(
            service.failed is not None and not service.running for service in self._services
        ):
            return
        self._done = True
        reactor = self._reactor
        self.log.warn(
            "{count} service(s) stopped for good: stopping the reactor",
            count=len(self._services),
        )
        if not reactor.running:
            # given up before the reactor ran
            reactor.callWhenRunning(reactor.stop)
            return
        # ReactorNotRunning: it is stopping already
        with suppress(ReactorNotRunning):
            reactor.stop()


def _brokers(options: Options) -> tuple[BrokerList, ConnectionParameters | None]:
    """
    The brokers to give the services, and the parameters for endpoints.
    """
    if options["endpoint"]:
        return list(options["endpoint"]), parse_brokers(options["url"])[0]
    return options["url"], None


def makeService(options: Options, reactor: Any = None) -> IService:
    """
    Build the service from parsed options.

    When every service built has stopped itself for good (refused
    credentials, a queue declared with other arguments: see
    L{ConsumerService}), the reactor is stopped, so that twistd exits.

    @param reactor: the reactor the services run on, and stop; the global
        reactor by default.
    @return: a L{ConsumerService}, a
        L{txamqp_next.thrift.ThriftServerService}, or a L{MultiService}
        holding both when both were asked for.
    """
    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    brokers, params = _brokers(options)
    services: list[Any] = []
    if options["queue"]:
        services.append(
            ConsumerService(
                reactor,
                brokers,
                options["queue"],
                options["handler"],
                prefetch=options["prefetch"],
                declare=not options["no-declare"],
                queue_arguments=options["queue-argument"],
                max_redeliveries=options["max-redeliveries"],
                redelivery_delay=options["redelivery-delay"],
                requeue_on_failure=options["requeue-on-failure"],
                stop_timeout=options["stop-timeout"],
                connection_name=options["connection-name"],
                params=params,
            )
        )
    if options["thrift-service"]:
        from txamqp_next.thrift import ThriftServerService

        services.append(
            ThriftServerService(
                reactor,
                brokers,
                options["thrift-service"],
                options["thrift-processor"],
                exchange=options["thrift-exchange"],
                responses_exchange=options["thrift-responses-exchange"],
                queue=options["thrift-queue"],
                durable=not options["thrift-transient-queue"],
                queue_arguments=options["thrift-queue-argument"],
                prefetch=options["thrift-prefetch"],
                protocol_factory=_protocol_factory(options["thrift-protocol"]),
                stop_timeout=options["stop-timeout"],
                connection_name=options["connection-name"],
                params=params,
            )
        )
    _ExitWhenFailed(reactor, services)
    if len(services) == 1:
        return services[0]  # type: ignore[no-any-return]
    multi = MultiService()  # type: ignore[no-untyped-call]
    for service in services:
        service.setServiceParent(multi)
    return multi
