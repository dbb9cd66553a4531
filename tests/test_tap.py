# -*- test-case-name: tests.test_tap -*-
"""
Tests for the twistd plugin, L{txamqp_next.tap}: its options from the
command line, the environment and a settings file, the services it builds,
and the reactor it stops once they have all failed for good.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from twisted.application.service import IServiceMaker, MultiService, Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ReactorNotRunning
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.plugin import getPlugins
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

import txamqp_next.thrift
from tests.thrift.support import make_processor
from txamqp_next import Message, tap
from txamqp_next._params import ConnectionParameters, Credentials
from txamqp_next.endpoint import DEFAULT_URL, Broker
from txamqp_next.errors import AuthenticationError, PreconditionFailed
from txamqp_next.service import ConsumerService
from txamqp_next.testing import MemoryBroker
from txamqp_next.thrift import ThriftServerService

NOT_CALLABLE = 42

CONSUMER = ["--queue", "q", "--handler", "tests.test_tap.record"]
PASSWORD = "s3cret"

#: a value for every option (lists for the repeatable ones) ...
SETTINGS: dict[str, str | list[str]] = {
    "url": f"amqp://app:{PASSWORD}@rabbit1,rabbit2:5673/prod?heartbeat=30",
    "endpoint": ["tcp:rabbit1:5672", "unix:/run/rabbitmq.sock"],
    "queue": "jobs",
    "handler": "tests.test_tap.record",
    "prefetch": "4",
    "no-declare": "true",
    "queue-argument": [
        "x-queue-type=quorum",
        "x-max-length=1000",
        "x-single-active-consumer=true",
    ],
    "max-redeliveries": "5",
    "redelivery-delay": "2.5",
    "requeue-on-failure": "true",
    "stop-timeout": "7",
    "connection-name": "worker-1",
    "thrift-service": "calc",
    "thrift-processor": "tests.thrift.support.make_processor",
    "thrift-exchange": "services",
    "thrift-responses-exchange": "responses",
    "thrift-queue": "pool",
    "thrift-prefetch": "7",
    "thrift-protocol": "compact",
    "thrift-transient-queue": "true",
    "thrift-queue-argument": ["x-queue-type=quorum"],
}

#: ... and what the parsed options hold for it (the handler and processor
#: are checked apart)
EXPECTED: dict[str, Any] = {
    "url": SETTINGS["url"],
    "endpoint": SETTINGS["endpoint"],
    "queue": "jobs",
    "prefetch": 4,
    "no-declare": True,
    "queue-argument": {
        "x-queue-type": "quorum",
        "x-max-length": 1000,
        "x-single-active-consumer": True,
    },
    "max-redeliveries": 5,
    "redelivery-delay": 2.5,
    "requeue-on-failure": True,
    "stop-timeout": 7.0,
    "connection-name": "worker-1",
    "thrift-service": "calc",
    "thrift-exchange": "services",
    "thrift-responses-exchange": "responses",
    "thrift-queue": "pool",
    "thrift-prefetch": 7,
    "thrift-protocol": "compact",
    "thrift-transient-queue": True,
    "thrift-queue-argument": {"x-queue-type": "quorum"},
}

FLAGS = ("no-declare", "requeue-on-failure", "thrift-transient-queue")


def record(message: Message) -> None:
    """
    A handler for the option tests; never called.
    """


def parse(*args: str, environ: Mapping[str, str] | None = None) -> tap.Options:
    """
    Parse C{args} with C{environ} as the environment (an empty one by
    default, so that the real environment never matters).
    """
    options = tap.Options(environ={} if environ is None else environ)
    options.parseOptions(list(args))
    return options


def command_line(settings: Mapping[str, str | list[str]]) -> list[str]:
    """
    The command line that gives C{settings}.
    """
    args: list[str] = []
    for name, value in settings.items():
        if name in FLAGS:
            args.append(f"--{name}")
        elif isinstance(value, list):
            for item in value:
                args += [f"--{name}", item]
        else:
            args.append(f"--{name}={value}")
    return args


def environment(settings: Mapping[str, str | list[str]]) -> dict[str, str]:
    """
    The environment that gives C{settings}.
    """
    return {
        tap.environment_variable(name): ";".join(value) if isinstance(value, list) else value
        for name, value in settings.items()
    }


def settings_file(settings: Mapping[str, str | list[str]]) -> str:
    """
    The settings file that gives C{settings}.
    """
    lines = ["# the plugin's settings", ""]
    for name, value in settings.items():
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"{name} = {item}")
    return "\n".join(lines) + "\n"


class TapTestCase(SynchronousTestCase):
    """
    Helpers: files, and the log.
    """

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def write(self, text: str | bytes) -> str:
        """
        @return: the name of a new file holding C{text}.
        """
        path = Path(self.mktemp())
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return str(path)

    def warnings(self) -> list[str]:
        """
        The plugin's warnings logged so far.
        """
        return [
            formatEvent(event)
            for event in self.events
            if event.get("log_namespace", "").startswith("txamqp_next.tap")
            and event["log_level"] == LogLevel.warn
        ]

    def assertRefused(
        self, args: Sequence[str], *fragments: str, environ: Mapping[str, str] | None = None
    ) -> str:
        """
        Parsing C{args} fails with a message that holds C{fragments} and
        never the password.

        @return: the message.
        """
        with self.assertRaises(UsageError) as caught:
            parse(*args, environ=environ)
        message = str(caught.exception)
        for fragment in fragments:
            self.assertIn(fragment, message)
        self.assertNotIn(PASSWORD, message)
        return message

    def assertEverything(self, options: tap.Options) -> None:
        """
        C{options} hold every value of L{SETTINGS}.
        """
        for name, expected in EXPECTED.items():
            self.assertEqual(options[name], expected, name)
        self.assertIs(options["handler"], record)
        self.assertTrue(callable(options["thrift-processor"].process))


class OptionsTests(TapTestCase):
    """
    The plugin's command line.
    """

    def test_defaults(self) -> None:
        """
        Only the queue and handler are needed; the handler is resolved and
        every other option has its default.
        """
        options = parse(*CONSUMER)
        self.assertEqual(options["url"], DEFAULT_URL)
        self.assertEqual(options["queue"], "q")
        self.assertIs(options["handler"], record)
        self.assertEqual(options["endpoint"], [])
        self.assertEqual(options["prefetch"], 10)
        self.assertFalse(options["no-declare"])
        self.assertEqual(options["queue-argument"], {})
        self.assertIsNone(options["max-redeliveries"])
        self.assertEqual(options["redelivery-delay"], 1.0)
        self.assertFalse(options["requeue-on-failure"])
        self.assertEqual(options["stop-timeout"], 30.0)
        self.assertIsNone(options["connection-name"])
        self.assertIsNone(options["thrift-service"])
        self.assertEqual(options["thrift-exchange"], "thrift")
        self.assertEqual(options["thrift-responses-exchange"], "amq.direct")
        self.assertEqual(options["thrift-prefetch"], 100)
        self.assertEqual(options["thrift-protocol"], "binary")
        self.assertFalse(options["thrift-transient-queue"])
        self.assertEqual(self.warnings(), [])

    def test_every_option(self) -> None:
        """
        The test settings name every option but C{--config} and
        C{--url-file} (tested apart).
        """
        names = {p[0] for p in tap.Options.optParameters} | {f[0] for f in tap.Options.optFlags}
        self.assertEqual(
            set(SETTINGS) | {"config", "url-file"},
            names | {"endpoint", "queue-argument", "thrift-queue-argument"},
        )
        self.assertEqual(set(SETTINGS) - set(EXPECTED), {"handler", "thrift-processor"})

    def test_everything(self) -> None:
        """
        Every option is read from the command line.
        """
        self.assertEverything(parse(*command_line(SETTINGS)))

    def test_short_options(self) -> None:
        """
        C{-u}, C{-q} and C{-p} stand for C{--url}, C{--queue} and
        C{--prefetch}.
        """
        options = parse(
            "-u", "amqp://broker/", "-q", "q", "-p", "3", "--handler=examples.handler.show"
        )
        from examples.handler import show

        self.assertEqual((options["url"], options["queue"]), ("amqp://broker/", "q"))
        self.assertEqual(options["prefetch"], 3)
        self.assertIs(options["handler"], show)

    def test_required(self) -> None:
        """
        Without C{--queue} or C{--handler} parsing fails, naming the option.
        """
        self.assertRefused(["--handler", "tests.test_tap.record"], "--queue")
        self.assertRefused(["--queue", "q"], "--handler")
        nothing = self.assertRefused([], "--queue", "--thrift-service")
        self.assertIn("is required", nothing)

    def test_bad_values(self) -> None:
        """
        A URI that is not AMQP (the message names C{--url} and never the
        password), or a number out of range, is a usage error.
        """
        for url in (
            f"http://u:{PASSWORD}@host/",
            f"amqp://u:{PASSWORD}@host:port/",
            f"amqp://u:{PASSWORD}@host/?heartbeat=x",
            f"amqp://u:{PASSWORD}@host/?{PASSWORD}=1",
            f"amqp://u:{PASSWORD}@h1,,h2/",
            f"u:{PASSWORD}@host",
        ):
            self.assertRefused([*CONSUMER, "--url", url], "--url")
        missing = self.mktemp()
        self.assertRefused(
            [*CONSUMER, "--url", f"amqps://u:{PASSWORD}@host/?cacertfile={missing}"],
            "--url",
            "cacertfile",
            missing,
        )
        self.assertRefused([*CONSUMER, "--url", "tcp:host:5672"], "--url: not an AMQP URI")
        for name, value, fragment in [
            ("prefetch", "many", "must be a whole number, not 'many'"),
            ("prefetch", "-1", "between 0 and 65535, not -1"),
            ("prefetch", "65536", "between 0 and 65535, not 65536"),
            ("max-redeliveries", "-1", "must be 0 or more, not -1"),
            ("max-redeliveries", "1.5", "whole number"),
            ("redelivery-delay", "soon", "number of seconds"),
            ("redelivery-delay", "-1", "0 or more"),
            ("stop-timeout", "nan", "number of seconds"),
            ("thrift-prefetch", "70000", "between 0 and 65535"),
        ]:
            message = self.assertRefused([*CONSUMER, f"--{name}={value}"], f"--{name}", fragment)
            self.assertNotIn("(from", message)

    def test_bad_endpoints(self) -> None:
        """
        C{--endpoint} takes Twisted client endpoint strings; an AMQP URI,
        an unknown type or a missing port is a usage error.
        """
        self.assertRefused(
            [*CONSUMER, "--endpoint", f"amqp://u:{PASSWORD}@host/"], "--endpoint", "--url"
        )
        self.assertRefused([*CONSUMER, "--endpoint", "carrier:pigeon"], "'carrier:pigeon'")
        self.assertRefused([*CONSUMER, "--endpoint", "tcp:host"], "--endpoint 'tcp:host'")

    def test_help(self) -> None:
        """
        The help lists the repeatable options with their descriptions on
        one paragraph, and tells about the environment and settings files.
        """
        options = tap.Options(environ={})
        text = str(options)
        for fragment in ("--endpoint=", "--queue-argument=", "TXAMQP_NEXT_URL", "--config"):
            self.assertIn(fragment, text)
        for name in ("endpoint", "queue-argument"):
            self.assertNotIn("  ", options.docs[name].replace(".  ", ". "))
            self.assertNotIn("\n", options.docs[name])


class QueueArgumentTests(TapTestCase):
    """
    C{--queue-argument KEY=VALUE}.
    """

    def test_typing(self) -> None:
        """
        Values that read as whole numbers become integers, C{true} and
        C{false} booleans, the rest strings.
        """
        self.assertEqual(tap.queue_argument("x-max-length=1000"), ("x-max-length", 1000))
        self.assertEqual(tap.queue_argument("x-expires=-5"), ("x-expires", -5))
        self.assertEqual(tap.queue_argument("x-lazy=True"), ("x-lazy", True))
        self.assertEqual(tap.queue_argument("x-lazy=false"), ("x-lazy", False))
        self.assertEqual(tap.queue_argument("x-queue-type=quorum"), ("x-queue-type", "quorum"))
        self.assertEqual(tap.queue_argument("x-ratio=1.5"), ("x-ratio", "1.5"))
        self.assertEqual(tap.queue_argument(" x-key = a=b "), ("x-key", "a=b"))
        self.assertEqual(tap.queue_argument("x-empty="), ("x-empty", ""))

    def test_options(self) -> None:
        """
        Several C{--queue-argument}s make the queue's arguments.
        """
        options = parse(
            *CONSUMER,
            "--queue-argument",
            "x-queue-type=quorum",
            "--queue-argument",
            "x-dead-letter-exchange=dlx",
            "--queue-argument=x-delivery-limit=3",
        )
        self.assertEqual(
            options["queue-argument"],
            {"x-queue-type": "quorum", "x-dead-letter-exchange": "dlx", "x-delivery-limit": 3},
        )

    def test_refused(self) -> None:
        """
        An argument without C{=} or a key, or a key given twice, is a usage
        error.
        """
        self.assertRefused([*CONSUMER, "--queue-argument", "x-queue-type"], "KEY=VALUE")
        self.assertRefused([*CONSUMER, "--queue-argument", "=quorum"], "KEY=VALUE")
        self.assertRefused(
            [*CONSUMER, "--queue-argument", "x-a=1", "--queue-argument", "x-a=2"],
            "--queue-argument x-a is given twice",
        )


class EnvironmentTests(TapTestCase):
    """
    Options from C{TXAMQP_NEXT_<OPTION>} environment variables.
    """

    def test_everything(self) -> None:
        """
        Every option is read from the environment; repeatable options
        split at C{;}.
        """
        environ = environment(SETTINGS)
        self.assertEqual(
            environ["TXAMQP_NEXT_ENDPOINT"], "tcp:rabbit1:5672;unix:/run/rabbitmq.sock"
        )
        self.assertEverything(parse(environ=environ))
        self.assertEqual(self.warnings(), [])

    def test_os_environ(self) -> None:
        """
        By default the options read C{os.environ} when parsing.
        """
        self.patch(os, "environ", environment({"queue": "q", "handler": "tests.test_tap.record"}))
        options = tap.Options()
        options.parseOptions([])
        self.assertEqual(options["queue"], "q")

    def test_lists(self) -> None:
        """
        Repeatable options take values separated by C{;} or line breaks;
        white space around them and empty ones are dropped.
        """
        options = parse(
            *CONSUMER,
            environ={
                "TXAMQP_NEXT_ENDPOINT": " tcp:h1:5672 ;\ntcp:h2:5672\r\n;; ",
                "TXAMQP_NEXT_QUEUE_ARGUMENT": "x-queue-type=quorum\nx-max-length=10",
            },
        )
        self.assertEqual(options["endpoint"], ["tcp:h1:5672", "tcp:h2:5672"])
        self.assertEqual(options["queue-argument"], {"x-queue-type": "quorum", "x-max-length": 10})

    def test_flags(self) -> None:
        """
        Flags take 1, true, yes, on or 0, false, no, off, in any case;
        anything else is a usage error naming the variable.
        """
        for text, expected in [
            ("1", True),
            ("TRUE", True),
            ("yes", True),
            ("On", True),
            ("0", False),
            ("false", False),
            ("No", False),
            ("off", False),
        ]:
            options = parse(*CONSUMER, environ={"TXAMQP_NEXT_NO_DECLARE": text})
            self.assertIs(options["no-declare"], expected, text)
        self.assertRefused(
            CONSUMER,
            "--requeue-on-failure takes",
            "not 'maybe'",
            "(from TXAMQP_NEXT_REQUEUE_ON_FAILURE)",
            environ={"TXAMQP_NEXT_REQUEUE_ON_FAILURE": "maybe"},
        )

    def test_empty_and_unknown(self) -> None:
        """
        An empty variable leaves its option unset; variables that name no
        option are ignored; values are stripped.
        """
        options = parse(
            *CONSUMER,
            environ={
                "TXAMQP_NEXT_PREFETCH": "",
                "TXAMQP_NEXT_CONNECTION_NAME": "  ",
                "TXAMQP_NEXT_BROKER_URL": "amqp://elsewhere/",
                "TXAMQP_NEXT_URL": " amqp://broker/\n",
            },
        )
        self.assertEqual(options["prefetch"], 10)
        self.assertIsNone(options["connection-name"])
        self.assertEqual(options["url"], "amqp://broker/")

    def test_bad_values(self) -> None:
        """
        A bad value from the environment is a usage error naming the
        variable; a bad URL never shows its password.
        """
        self.assertRefused(
            CONSUMER,
            "--prefetch must be a whole number, not 'lots' (from TXAMQP_NEXT_PREFETCH)",
            environ={"TXAMQP_NEXT_PREFETCH": "lots"},
        )
        self.assertRefused(
            CONSUMER,
            "--url (from TXAMQP_NEXT_URL): not an AMQP URI",
            environ={"TXAMQP_NEXT_URL": f"http://u:{PASSWORD}@host/"},
        )
        self.assertRefused(
            [],
            "--handler 'tests.test_tap.nothing' cannot be found",
            "(from TXAMQP_NEXT_HANDLER)",
            environ={"TXAMQP_NEXT_QUEUE": "q", "TXAMQP_NEXT_HANDLER": "tests.test_tap.nothing"},
        )


class SettingsFileTests(TapTestCase):
    """
    Options from a settings file, C{--config} or C{TXAMQP_NEXT_CONFIG}.
    """

    def test_everything(self) -> None:
        """
        Every option is read from the file; repeatable options take one
        value per line.
        """
        path = self.write(settings_file(SETTINGS))
        options = parse("--config", path)
        self.assertEverything(options)
        self.assertEqual(options["config"], path)
        self.assertEqual(self.warnings(), [])

    def test_from_environment(self) -> None:
        """
        C{TXAMQP_NEXT_CONFIG} names the file too.
        """
        path = self.write("queue = q\nhandler = tests.test_tap.record\n")
        options = parse(environ={"TXAMQP_NEXT_CONFIG": path})
        self.assertEqual((options["queue"], options["config"]), ("q", path))

    def test_layout(self) -> None:
        """
        Blank lines and lines starting with C{#} are skipped; white space
        around names and values is dropped; a C{#} inside a value is kept;
        an empty value leaves the option unset.
        """
        path = self.write(
            "  # settings\n\n"
            "\tqueue=q  \n"
            "handler   =   tests.test_tap.record\n"
            "connection-name = worker #1\n"
            "thrift-queue =\n"
            "   # url = amqp://other/\n"
        )
        options = parse("--config", path)
        self.assertEqual(options["queue"], "q")
        self.assertEqual(options["connection-name"], "worker #1")
        self.assertIsNone(options["thrift-queue"])

    def test_bad_lines(self) -> None:
        """
        A line that is not C{name = value}, or names no option, or sets a
        single option twice, or names another settings file, is a usage
        error with the file's name and the line's number, and never the
        line's value.
        """
        for line, fragment in [
            (f"url amqp://app:{PASSWORD}@broker/", "not a setting (name = value)"),
            (f"amqp://app:{PASSWORD}@broker/?heartbeat=30", "not a setting (name = value)"),
            (f"url: amqp://app:{PASSWORD}@broker/", "not a setting (name = value)"),
            (f"= {PASSWORD}", "not a setting (name = value)"),
            (f"password = {PASSWORD}", "no option is called 'password'"),
            ("queue_argument = x=1", "the long option's name, with dashes"),
            ("config = other.conf", "cannot name another"),
            ("queue = again", "queue is set twice (first on line 1)"),
        ]:
            path = self.write(f"queue = q\n# a comment\n\n{line}\n")
            self.assertRefused(["--config", path], f"{path}, line 4: ", fragment)

    def test_bad_values(self) -> None:
        """
        A bad value from the file is a usage error naming the file and the
        line; a bad URL never shows its password.
        """
        path = self.write(
            f"url = http://app:{PASSWORD}@broker/\nqueue = q\nhandler = tests.test_tap.record\n"
        )
        self.assertRefused(["--config", path], f"--url (from {path}, line 1): not an AMQP URI")
        path = self.write("prefetch = 1e3\nqueue = q\nhandler = tests.test_tap.record\n")
        self.assertRefused(
            ["--config", path],
            f"--prefetch must be a whole number, not '1e3' (from {path}, line 1)",
        )
        path = self.write(
            "queue-argument = x-a=1\nqueue-argument = x-a=2\n"
            "queue = q\nhandler = tests.test_tap.record\n"
        )
        self.assertRefused(["--config", path], f"x-a is given twice (from {path}, line 2)")

    def test_unreadable(self) -> None:
        """
        A missing file, or one that is not UTF-8 text, is a usage error
        naming it (and the variable that named it).
        """
        missing = self.mktemp()
        self.assertRefused(["--config", missing], f"--config {missing}: cannot read it")
        self.assertRefused(
            [],
            f"--config {missing}: cannot read it",
            "(from TXAMQP_NEXT_CONFIG)",
            environ={"TXAMQP_NEXT_CONFIG": missing},
        )
        binary = self.write(b"queue = \xff\xfe\n")
        self.assertRefused(["--config", binary], "not a UTF-8 text file")


class PrecedenceTests(TapTestCase):
    """
    The command line wins over the environment, which wins over the
    settings file, which wins over the defaults.
    """

    def test_single_values(self) -> None:
        """
        Each option comes from the first place that sets it.
        """
        path = self.write(
            "queue = from-file\nhandler = tests.test_tap.record\n"
            "prefetch = 1\nstop-timeout = 1\nconnection-name = from-file\n"
        )
        options = parse(
            "--queue=from-command-line",
            "--config",
            path,
            environ={"TXAMQP_NEXT_QUEUE": "from-env", "TXAMQP_NEXT_PREFETCH": "2"},
        )
        self.assertEqual(options["queue"], "from-command-line")
        self.assertEqual(options["prefetch"], 2)
        self.assertEqual(options["stop-timeout"], 1.0)
        self.assertEqual(options["connection-name"], "from-file")
        self.assertEqual(options["redelivery-delay"], 1.0)

    def test_flags(self) -> None:
        """
        A flag on the command line is set whatever the environment says;
        the environment's C{false} overrides the file's C{true}.
        """
        path = self.write("no-declare = true\nrequeue-on-failure = true\n")
        options = parse(
            *CONSUMER,
            "--no-declare",
            "--config",
            path,
            environ={"TXAMQP_NEXT_NO_DECLARE": "no", "TXAMQP_NEXT_REQUEUE_ON_FAILURE": "no"},
        )
        self.assertTrue(options["no-declare"])
        self.assertFalse(options["requeue-on-failure"])

    def test_lists(self) -> None:
        """
        A repeatable option given in one place replaces its values from the
        places below.
        """
        path = self.write("endpoint = tcp:file:1\nqueue-argument = x-file=1\n")
        options = parse(
            *CONSUMER,
            "--config",
            path,
            "--endpoint=tcp:cli:1",
            environ={"TXAMQP_NEXT_ENDPOINT": "tcp:env:1", "TXAMQP_NEXT_QUEUE_ARGUMENT": "x-env=1"},
        )
        self.assertEqual(options["endpoint"], ["tcp:cli:1"])
        self.assertEqual(options["queue-argument"], {"x-env": 1})

    def test_config_from_command_line(self) -> None:
        """
        C{--config} wins over C{TXAMQP_NEXT_CONFIG}.
        """
        chosen = self.write("queue = chosen\nhandler = tests.test_tap.record\n")
        other = self.write("queue = other\nhandler = tests.test_tap.record\n")
        options = parse("--config", chosen, environ={"TXAMQP_NEXT_CONFIG": other})
        self.assertEqual(options["queue"], "chosen")


class UrlFileTests(TapTestCase):
    """
    C{--url-file} (or C{TXAMQP_NEXT_URL_FILE}): the URL from a file that
    holds just it.
    """

    def test_read(self) -> None:
        """
        The file's content, stripped, is the URL; it may hold several
        URIs, one per line.
        """
        path = self.write(f"\n  amqp://app:{PASSWORD}@broker/prod\n\n")
        options = parse(*CONSUMER, "--url-file", path)
        self.assertEqual(options["url"], f"amqp://app:{PASSWORD}@broker/prod")
        self.assertEqual(options["url-file"], path)
        several = self.write("amqp://app:p@h1/\namqp://app:p@h2/\n")
        options = parse(*CONSUMER, environ={"TXAMQP_NEXT_URL_FILE": several})
        self.assertEqual(options["url"], "amqp://app:p@h1/\namqp://app:p@h2/")
        self.assertEqual(self.warnings(), [])

    def test_precedence(self) -> None:
        """
        C{--url} and C{--url-file} count as the same option: the first
        place that gives either wins; both in one place is a usage error.
        """
        path = self.write("amqp://from-file/")
        options = parse(*CONSUMER, "--url-file", path, environ={"TXAMQP_NEXT_URL": "amqp://env/"})
        self.assertEqual(options["url"], "amqp://from-file/")
        options = parse(*CONSUMER, "--url", "amqp://cli/", environ={"TXAMQP_NEXT_URL_FILE": path})
        self.assertEqual(options["url"], "amqp://cli/")
        self.assertIsNone(options["url-file"])
        config = self.write(f"url-file = {path}\n")
        options = parse(*CONSUMER, "--config", config)
        self.assertEqual(options["url"], "amqp://from-file/")
        self.assertRefused(
            [*CONSUMER, "--url", "amqp://cli/", "--url-file", path], "--url or --url-file"
        )
        self.assertRefused(
            CONSUMER,
            "not both (TXAMQP_NEXT_URL and TXAMQP_NEXT_URL_FILE)",
            environ={"TXAMQP_NEXT_URL": "amqp://env/", "TXAMQP_NEXT_URL_FILE": path},
        )

    def test_refused(self) -> None:
        """
        A missing or empty file, or one holding a bad URL, is a usage error
        that never shows the password.
        """
        missing = self.mktemp()
        self.assertRefused([*CONSUMER, "--url-file", missing], f"--url-file {missing}: cannot")
        empty = self.write(" \n")
        self.assertRefused([*CONSUMER, "--url-file", empty], f"--url-file {empty} is empty")
        bad = self.write(f"amqp://app:{PASSWORD}@broker:port/\n")
        self.assertRefused([*CONSUMER, "--url-file", bad], f"--url (from the file {bad}): bad port")


class PasswordWarningTests(TapTestCase):
    """
    A password on the command line shows in C{ps}: the plugin says so.
    """

    def test_warned(self) -> None:
        """
        C{--url} on the command line with a password logs one warning that
        names the safer ways, without the password.
        """
        for url in (
            f"amqp://app:{PASSWORD}@broker/",
            f"amqp://broker/; amqps://app:{PASSWORD}@other/",
        ):
            self.events.clear()
            parse(*CONSUMER, "--url", url)
            [warning] = self.warnings()
            self.assertNotIn(PASSWORD, warning)
            for fragment in ("ps", "TXAMQP_NEXT_URL", "--url-file", "--config"):
                self.assertIn(fragment, warning)

    def test_not_warned(self) -> None:
        """
        A URL without a password, or one given any other way, is not
        warned about.
        """
        url = f"amqp://app:{PASSWORD}@broker/"
        parse(*CONSUMER, "--url", "amqp://broker/")
        parse(*CONSUMER, "--url", "amqp://app@broker/")
        parse(*CONSUMER, "--url", "amqp://app:@broker/")
        parse(*CONSUMER, environ={"TXAMQP_NEXT_URL": url})
        parse(*CONSUMER, "--config", self.write(f"url = {url}\n"))
        parse(*CONSUMER, "--url-file", self.write(url))
        self.assertEqual(self.warnings(), [])


class HandlerResolutionTests(SynchronousTestCase):
    """
    C{--handler} names a callable by its dotted name.
    """

    def assert_refused(self, name: str, *fragments: str) -> None:
        with self.assertRaises(UsageError) as caught:
            tap.resolve_handler(name)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_resolves(self) -> None:
        """
        A dotted name resolves to the callable it names.
        """
        self.assertIs(tap.resolve_handler("tests.test_tap.record"), record)

    def test_not_dotted(self) -> None:
        """
        A name without a module, or with empty or odd parts, is refused.
        """
        for name in ("record", "", "tests..record", ".tests.record", "tests.test-tap.x"):
            self.assert_refused(name, "dotted name")

    def test_missing(self) -> None:
        """
        A missing module or attribute is named in the error.
        """
        self.assert_refused("no_such_module_txn.handler", "cannot be found")
        self.assert_refused("tests.test_tap.no_such_handler", "cannot be found")

    def test_not_callable(self) -> None:
        """
        A name that resolves to something not callable is refused.
        """
        self.assert_refused("tests.test_tap.NOT_CALLABLE", "not a callable", "int")

    def test_import_error(self) -> None:
        """
        A module that fails to import gives a usage error with the cause.
        """
        directory = Path(self.mktemp())
        directory.mkdir()
        (directory / "txn_broken_handler.py").write_text("raise RuntimeError('boom')\n")
        sys.path.insert(0, str(directory))
        self.addCleanup(sys.path.remove, str(directory))
        self.addCleanup(sys.modules.pop, "txn_broken_handler", None)
        self.assert_refused("txn_broken_handler.handle", "RuntimeError", "boom")


class _Spy(Service):
    """
    Stands for a service class: records how it was built.
    """

    built: ClassVar[list[_Spy]]
    failed: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs
        self.built.append(self)

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        return succeed(None)


def spy_class() -> type[_Spy]:
    """
    A new L{_Spy} class, with its own list of the instances built.
    """

    class Spy(_Spy):
        built: ClassVar[list[_Spy]] = []

    return Spy


class MakeServiceTests(TapTestCase):
    """
    C{makeService} builds the services the options ask for, with every
    option.
    """

    def setUp(self) -> None:
        super().setUp()
        self.reactor = MemoryReactorClock()

    def test_consumer(self) -> None:
        """
        A consumer alone is a L{ConsumerService} with the options' values.
        """
        options = parse(
            *CONSUMER,
            "--url=amqp://app:p@rabbit1,rabbit2:5673/prod",
            "-p",
            "4",
            "--queue-argument=x-queue-type=quorum",
            "--max-redeliveries=3",
            "--redelivery-delay=0.5",
            "--requeue-on-failure",
        )
        service = tap.makeService(options, self.reactor)
        assert isinstance(service, ConsumerService)
        self.assertEqual((service.queue, service.prefetch), ("q", 4))
        self.assertEqual(service.queue_arguments, {"x-queue-type": "quorum"})
        self.assertEqual((service.max_redeliveries, service.redelivery_delay), (3, 0.5))
        self.assertTrue(service.requeue_on_failure)
        self.assertEqual(
            [(b.params.host, b.params.port, b.params.vhost) for b in service.brokers],
            [("rabbit1", 5672, "prod"), ("rabbit2", 5673, "prod")],
        )
        self.assertFalse(service.running)

    def test_global_reactor(self) -> None:
        """
        Without a reactor, C{makeService} uses the global one (without
        starting anything).
        """
        from twisted.internet import reactor

        service = tap.makeService(parse(*CONSUMER))
        assert isinstance(service, ConsumerService)
        self.assertIs(service._reactor, reactor)
        self.assertFalse(service.running)

    def test_thrift(self) -> None:
        """
        A Thrift server alone is a L{ThriftServerService} with the options'
        values.
        """
        options = parse(
            "--thrift-service=calc",
            "--thrift-processor=tests.thrift.support.make_processor",
            "--thrift-exchange=services",
            "--thrift-responses-exchange=responses",
            "--thrift-queue=pool",
            "--thrift-prefetch=7",
            "--thrift-transient-queue",
        )
        service = tap.makeService(options, self.reactor)
        assert isinstance(service, ThriftServerService)
        self.assertEqual(
            (service.service_name, service.exchange, service.responses_exchange),
            ("calc", "services", "responses"),
        )
        self.assertEqual((service.queue, service.prefetch, service.durable), ("pool", 7, False))
        self.assertTrue(callable(service.processor.process))
        self.assertEqual(len(service.brokers), 1)

    def test_both(self) -> None:
        """
        A consumer and a Thrift server together make a L{MultiService} of
        both.
        """
        service = tap.makeService(parse(*command_line(SETTINGS)), self.reactor)
        assert isinstance(service, MultiService)
        consumer, thrift = list(service)
        assert isinstance(consumer, ConsumerService)
        assert isinstance(thrift, ThriftServerService)
        self.assertEqual((consumer.queue, thrift.service_name), ("jobs", "calc"))
        self.assertTrue(thrift.durable is False)

    def test_endpoints(self) -> None:
        """
        C{--endpoint}s are the brokers, in order, with the URL's user,
        password, vhost and parameters (its hosts are not used); the
        connection name applies to each.
        """
        service = tap.makeService(parse(*command_line(SETTINGS)), self.reactor)
        assert isinstance(service, MultiService)
        for built in service:
            assert isinstance(built, ConsumerService | ThriftServerService)
            self.assertEqual(
                [broker.name for broker in built.brokers],
                ["tcp:rabbit1:5672", "unix:/run/rabbitmq.sock"],
            )
            for broker in built.brokers:
                params = broker.params
                assert params.credentials is not None
                self.assertEqual(
                    (params.credentials.username, params.credentials.password),
                    ("app", PASSWORD),
                )
                self.assertEqual((params.vhost, params.heartbeat), ("prod", 30))
                self.assertEqual(params.connection_name, "worker-1")

    def test_every_option_passed(self) -> None:
        """
        Every option reaches the services' constructors.
        """
        spies = [spy_class(), spy_class()]
        self.patch(tap, "ConsumerService", spies[0])
        self.patch(txamqp_next.thrift, "ThriftServerService", spies[1])
        options = parse(*command_line(SETTINGS))
        tap.makeService(options, self.reactor)
        [consumer] = spies[0].built
        [thrift] = spies[1].built
        endpoints = SETTINGS["endpoint"]
        self.assertEqual(consumer.args, (self.reactor, endpoints, "jobs", record))
        params = consumer.kwargs.pop("params")
        self.assertEqual((params.host, params.port, params.vhost), ("rabbit1", 5672, "prod"))
        self.assertEqual(
            consumer.kwargs,
            {
                "prefetch": 4,
                "declare": False,
                "queue_arguments": EXPECTED["queue-argument"],
                "max_redeliveries": 5,
                "redelivery_delay": 2.5,
                "requeue_on_failure": True,
                "stop_timeout": 7.0,
                "connection_name": "worker-1",
            },
        )
        self.assertEqual(thrift.args[:3], (self.reactor, endpoints, "calc"))
        self.assertTrue(callable(thrift.args[3].process))
        self.assertIs(thrift.kwargs.pop("params"), params)
        factory = thrift.kwargs.pop("protocol_factory")
        self.assertEqual(type(factory).__name__, "TCompactProtocolFactory")
        self.assertEqual(
            thrift.kwargs,
            {
                "exchange": "services",
                "responses_exchange": "responses",
                "queue": "pool",
                "durable": False,
                "queue_arguments": EXPECTED["thrift-queue-argument"],
                "prefetch": 7,
                "stop_timeout": 7.0,
                "connection_name": "worker-1",
            },
        )

    def test_url_without_endpoints(self) -> None:
        """
        Without C{--endpoint}, the services get the URL itself and no
        parameters.
        """
        spy = spy_class()
        self.patch(tap, "ConsumerService", spy)
        tap.makeService(parse(*CONSUMER, "--url", "amqp://h1,h2/"), self.reactor)
        [consumer] = spy.built
        self.assertEqual(consumer.args[1], "amqp://h1,h2/")
        self.assertIsNone(consumer.kwargs["params"])


class FakeService(Service):
    """
    A service that stops itself for good as the real ones do: it sets
    C{failed}, then calls its own C{stopService}.
    """

    failed: BaseException | None = None

    def __init__(self) -> None:
        self.stopping: Deferred[None] | None = None

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        self.stopping = Deferred()
        return self.stopping

    def give_up(self) -> Deferred[None]:
        self.failed = AuthenticationError(403, "ACCESS_REFUSED")
        return self.stopService()


class ExitTests(TapTestCase):
    """
    Once every service has stopped for good, the reactor is stopped, so
    that twistd exits.
    """

    def setUp(self) -> None:
        super().setUp()
        self.reactor = MemoryReactorClock()
        self.reactor.running = True
        # older Twisted's memory reactor starts out as stopped
        self.reactor.hasStopped = False

    def watch(self, count: int) -> list[FakeService]:
        services = [FakeService() for _ in range(count)]
        for service in services:
            service.startService()
        tap._ExitWhenFailed(self.reactor, services)
        return services

    def test_all_failed(self) -> None:
        """
        The reactor is stopped once the last service has failed and
        finished stopping, not before; once only.
        """
        first, second = self.watch(2)
        first.give_up()
        assert first.stopping is not None
        first.stopping.callback(None)
        self.assertFalse(self.reactor.hasStopped)
        stopped = second.give_up()
        self.assertFalse(self.reactor.hasStopped)
        assert second.stopping is not None
        second.stopping.callback(None)
        self.assertIsNone(self.successResultOf(stopped))
        self.assertTrue(self.reactor.hasStopped)
        [warning] = self.warnings()
        self.assertIn("2 service(s) stopped for good", warning)
        # twistd shutting down stops them again
        self.reactor.hasStopped = False
        for service in (first, second):
            service.stopService()
            assert service.stopping is not None
            service.stopping.callback(None)
        self.assertFalse(self.reactor.hasStopped)

    def test_shutdown(self) -> None:
        """
        Services stopped because the reactor shuts down stop nothing, even
        when one of them had failed before.
        """
        first, second = self.watch(2)
        first.give_up()
        assert first.stopping is not None
        first.stopping.callback(None)
        for service in (second, first):
            service.stopService()
            assert service.stopping is not None
            service.stopping.callback(None)
        self.assertFalse(self.reactor.hasStopped)

    def test_before_running(self) -> None:
        """
        A service that failed before the reactor ran stops it as soon as it
        runs.
        """
        self.reactor.running = False
        [service] = self.watch(1)
        service.give_up()
        assert service.stopping is not None
        service.stopping.callback(None)
        self.assertFalse(self.reactor.hasStopped)
        self.assertEqual(self.reactor.whenRunningHooks, [(self.reactor.stop, (), {})])

    def test_already_stopping(self) -> None:
        """
        A reactor that is stopping already is left to it.
        """

        def stop() -> None:
            raise ReactorNotRunning()

        self.patch(self.reactor, "stop", stop)
        [service] = self.watch(1)
        service.give_up()
        assert service.stopping is not None
        service.stopping.callback(None)
        self.assertEqual(len(self.warnings()), 1)

    def test_make_service(self) -> None:
        """
        C{makeService} watches the services it builds: the reactor it was
        given stops once they stop themselves for good.
        """
        service = tap.makeService(parse(*CONSUMER), self.reactor)
        assert isinstance(service, ConsumerService)
        service.startService()
        self.assertEqual(len(self.reactor.tcpClients), 1)
        # what the service does when it gives up
        service.failed = AuthenticationError(403, "ACCESS_REFUSED")
        self.successResultOf(service.stopService())
        self.assertTrue(self.reactor.hasStopped)

    def test_real_services(self) -> None:
        """
        With a consumer and a Thrift server on a fake broker, the reactor
        stops once both have given up: the Thrift queue exists with other
        arguments, then the consumer's queue is deleted and declared again
        with other arguments.
        """
        clock = Clock()
        broker = MemoryBroker(clock)
        broker.declare_queue("calc", arguments={"x-max-length": 1})
        brokers = [Broker(ConnectionParameters(credentials=Credentials()), broker, "fake")]
        consumer = ConsumerService(clock, brokers, "jobs", record, retry_policy=lambda n: 1.0)
        thrift = ThriftServerService(
            clock, brokers, "calc", make_processor(), retry_policy=lambda n: 1.0
        )
        tap._ExitWhenFailed(self.reactor, [consumer, thrift])
        for service in (consumer, thrift):
            service.startService()
        broker.flush()
        self.assertIsInstance(thrift.failed, PreconditionFailed)
        self.assertIsNone(consumer.failed)
        self.assertTrue(consumer.running)
        self.assertFalse(self.reactor.hasStopped)
        broker.delete_queue("jobs")
        broker.declare_queue("jobs", arguments={"x-max-length": 1})
        broker.flush()
        clock.advance(1)
        broker.flush()
        self.assertIsInstance(consumer.failed, PreconditionFailed)
        self.assertTrue(self.reactor.hasStopped)


class PluginTests(SynchronousTestCase):
    """
    twistd finds the plugin.
    """

    def test_plugin(self) -> None:
        """
        The C{txamqp_next} service maker is found and names
        L{txamqp_next.tap}.
        """
        import twisted.plugins

        makers = {m.tapname: m for m in getPlugins(IServiceMaker, twisted.plugins)}
        maker = makers["txamqp_next"]
        self.assertEqual(maker.module, "txamqp_next.tap")
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)

    def test_no_package_init(self) -> None:
        """
        The repository's C{twisted/} holds no C{__init__.py} that would
        shadow Twisted's package.
        """
        root = Path(__file__).resolve().parent.parent / "twisted"
        self.assertEqual(sorted(p.name for p in root.rglob("__init__.py")), [])
