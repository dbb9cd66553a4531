"""
Private RabbitMQ nodes for fault and TLS tests.

A L{PrivateNode} is a RabbitMQ node of a test's own: its own node name, spare
loopback ports for AMQP (and optionally TLS) and Erlang distribution, and a
temporary directory owned by the C{rabbitmq} user for its database, logs,
pid file and configuration.  A test starts it, does to it what it likes
(stop it, kill it, raise an alarm) and stops it; nothing touches the shared
broker on 127.0.0.1:5672.

    node = PrivateNode()
    yield node.start_in_thread()
    self.addCleanup(node.stop_in_thread)
    client = yield txamqp_next.connect(reactor, node.url)

Starting a node takes about three to six seconds.  Only root (which runs the
server as the C{rabbitmq} user, as Debian's wrapper scripts do) or the
C{rabbitmq} user can start one.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path

from twisted.internet import defer, threads

START_TIMEOUT = 60


class NodeError(Exception):
    """
    A private node did not start or would not answer; the message carries
    the end of its log.
    """


def spare_ports(count: int) -> list[int]:
    """
    Ports on 127.0.0.1 that nothing listens on right now.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/lib/rabbitmq/bin")
    if found is None:
        raise NodeError(f"{name} not found: install Debian's rabbitmq-server package")
    return found


class PrivateNode:
    """
    A RabbitMQ node on spare loopback ports, in a temporary directory.

    @ivar name: the Erlang node name, C{txamqp-next-<hex>@localhost}.
    @ivar port: its AMQP port on 127.0.0.1.
    @ivar tls_port: its AMQPS port, or L{None} without C{tls}.
    @ivar directory: the node's own directory.
    """

    def __init__(self, config: Iterable[str] = (), tls: bool = False) -> None:
        """
        @param config: extra lines for the node's C{rabbitmq.conf}; with
            C{tls}, the text C{{tls_port}} in them is replaced by the TLS port.
        @param tls: also open a TLS listener (the lines in C{config} must
            name the certificates).
        """
        self.name = f"txamqp-next-{uuid.uuid4().hex[:10]}@localhost"
        ports = spare_ports(3 if tls else 2)
        self.port, self.dist_port = ports[0], ports[1]
        self.tls_port = ports[2] if tls else None
        self.directory = Path(tempfile.mkdtemp(prefix="txamqp-next-node-"))
        lines = [
            f"listeners.tcp.local = 127.0.0.1:{self.port}",
            "loopback_users = none",
            "log.console = false",
            "log.file.level = info",
        ]
        if self.tls_port is not None:
            lines.append(f"listeners.ssl.default = 127.0.0.1:{self.tls_port}")
        lines += [line.replace("{tls_port}", str(self.tls_port)) for line in config]
        (self.directory / "rabbitmq.conf").write_text("\n".join(lines) + "\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        self._own_by_rabbitmq()
        self.started = False

    @property
    def url(self) -> str:
        """
        The node's AMQP URI (guest/guest, default vhost).
        """
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def pid_file(self) -> Path:
        return self.directory / "pid"

    def _own_by_rabbitmq(self) -> None:
        try:
            rabbitmq = pwd.getpwnam("rabbitmq")
        except KeyError as e:
            raise NodeError("there is no rabbitmq user: install rabbitmq-server") from e
        if os.getuid() not in (0, rabbitmq.pw_uid):
            raise NodeError("private RabbitMQ nodes need root or the rabbitmq user")
        for path in [self.directory, *self.directory.rglob("*")]:
            os.chown(path, rabbitmq.pw_uid, rabbitmq.pw_gid)
        self.directory.chmod(0o755)

    def environment(self) -> dict[str, str]:
        """
        The environment that points RabbitMQ's scripts at this node.
        """
        env = dict(os.environ)
        env.update(
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.directory / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.directory / "log"),
            RABBITMQ_PID_FILE=str(self.pid_file),
            RABBITMQ_CONFIG_FILE=str(self.directory / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.directory / "enabled_plugins"),
        )
        return env

    def ctl(self, *args: str, timeout: float = 30) -> str:
        """
        Run C{rabbitmqctl -n NODE ARGS} and return its output.

        @raise NodeError: if it fails.
        """
        result = subprocess.run(
            [_tool("rabbitmqctl"), "-n", self.name, *args],
            env=self.environment(),
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise NodeError(
                f"rabbitmqctl {' '.join(args)} failed ({result.returncode}): "
                f"{result.stdout}{result.stderr}{self.log_tail()}"
            )
        return result.stdout

    def start(self) -> None:
        """
        Start the node and wait until it accepts AMQP.

        @raise NodeError: if it does not come up within a minute.
        """
        subprocess.run(
            [_tool("rabbitmq-server"), "-detached"],
            env=self.environment(),
            cwd=self.directory,
            check=True,
            capture_output=True,
            timeout=START_TIMEOUT,
        )
        self.started = True
        try:
            self.ctl("wait", str(self.pid_file), "--timeout", str(START_TIMEOUT), timeout=90)
        except (NodeError, subprocess.TimeoutExpired) as e:
            self.kill()
            raise NodeError(f"node {self.name} did not start: {e}") from e

    def pid(self) -> int | None:
        """
        The node's OS process id, if its pid file is there.
        """
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """
        Stop the node if it runs (kill it if it will not stop) and remove its
        directory.  Safe to call twice.
        """
        self.shutdown()
        shutil.rmtree(self.directory, ignore_errors=True)

    def shutdown(self) -> None:
        """
        Stop the node cleanly, keeping its data, so that L{start} brings it
        back with its durable queues and messages (a broker restart).
        """
        if self.started:
            self.started = False
            try:
                self.ctl("stop", str(self.pid_file), timeout=60)
            except (NodeError, subprocess.TimeoutExpired):
                self.kill()

    def kill(self) -> None:
        """
        Kill the node's Erlang VM at once (a crashed node, for fault tests);
        L{start} brings it back with what it had written to disk.
        """
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            # a stale pid file would make the next start's wait fail
            with contextlib.suppress(OSError):
                self.pid_file.unlink()
        self.started = False

    def log_tail(self, lines: int = 30) -> str:
        """
        The last lines of the node's log, for error messages.
        """
        logs = sorted((self.directory / "log").glob("*.log"))
        text = []
        for log in logs:
            try:
                text += log.read_text(errors="replace").splitlines()[-lines:]
            except OSError:
                continue
        return "\n" + "\n".join(text) if text else ""

    def start_in_thread(self) -> defer.Deferred[None]:
        """
        L{start} in a thread, so the reactor goes on meanwhile.
        """
        return threads.deferToThread(self.start)

    def shutdown_in_thread(self) -> defer.Deferred[None]:
        """
        L{shutdown} in a thread, so the reactor goes on meanwhile.
        """
        return threads.deferToThread(self.shutdown)

    def stop_in_thread(self) -> defer.Deferred[None]:
        """
        L{stop} in a thread, so the reactor goes on meanwhile.
        """
        return threads.deferToThread(self.stop)

    def ctl_in_thread(self, *args: str) -> defer.Deferred[str]:
        """
        L{ctl} in a thread.
        """
        return threads.deferToThread(self.ctl, *args)
