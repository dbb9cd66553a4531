# -*- test-case-name: tests.test_tls -*-
"""
Tests for L{txamqp_next._tls}: client options from the C{amqps://}
parameters, checked by real TLS handshakes in memory (no sockets), and the
mapping of OpenSSL's failures to L{errors.TLSError}s.
"""

from __future__ import annotations

import shutil
import tempfile
from inspect import signature
from pathlib import Path
from typing import Any

from OpenSSL import SSL
from service_identity import VerificationError
from service_identity.cryptography import verify_certificate_hostname
from twisted.internet import ssl
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from tests.certs import CertificateAuthority, Issued
from txamqp_next import errors
from txamqp_next._connection import Credentials
from txamqp_next._tls import client_tls_options, tls_error_for
from txamqp_next.connection import AMQPConnection

AUTHORITY = CertificateAuthority("unit test CA")
STRANGER = CertificateAuthority("unknown CA")
SERVER = AUTHORITY.issue("localhost", ["localhost", "127.0.0.1"])
EXPIRED = AUTHORITY.issue("localhost", ["localhost"], expired=True)


class Recorder(Protocol):
    """
    Records what it receives and why its connection ended.
    """

    def __init__(self) -> None:
        self.received = b""
        self.reason: Failure | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure | None = None) -> None:
        self.reason = reason


class Files:
    """
    PEM files in a scratch directory.
    """

    def __init__(self, case: SynchronousTestCase) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="txamqp-next-tls-"))
        case.addCleanup(shutil.rmtree, self.directory, True)

    def write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)


def handshake(
    creator: Any, server: Issued = SERVER
) -> tuple[Recorder, Recorder, list[bytes | None]]:
    """
    Run a TLS handshake in memory between C{creator}'s client and a server
    with C{server}'s certificate, and send a few bytes each way.

    @return: the client's and the server's application protocols, and the
        SNI names the server saw.
    """
    server_options = ssl.CertificateOptions(privateKey=_pkey(server), certificate=_x509(server))
    seen: list[bytes | None] = []
    server_options.getContext().set_tlsext_servername_callback(
        lambda connection: seen.append(connection.get_servername())
    )
    client_app, server_app = Recorder(), Recorder()
    # the TLS transports gather small writes until the clock turns
    clock = Clock()
    # older Twisted (22.10) writes at once and takes no clock
    timing = {"clock": clock} if "clock" in signature(TLSMemoryBIOFactory).parameters else {}
    client_tls = TLSMemoryBIOFactory(
        creator, True, Factory.forProtocol(lambda: client_app), **timing
    )
    server_tls = TLSMemoryBIOFactory(
        server_options, False, Factory.forProtocol(lambda: server_app), **timing
    )
    client, _, pump = connectedServerAndClient(
        lambda: server_tls.buildProtocol(None), lambda: client_tls.buildProtocol(None)
    )
    client.write(b"ping")
    clock.advance(0)
    pump.flush()
    if server_app.transport is not None and server_app.reason is None:
        server_app.transport.write(b"pong")
        clock.advance(0)
        pump.flush()
    return client_app, server_app, seen


def _pkey(issued: Issued) -> Any:
    from OpenSSL import crypto

    return crypto.PKey.from_cryptography_key(issued.key)


def _x509(issued: Issued) -> Any:
    from OpenSSL import crypto

    return crypto.X509.from_cryptography(issued.certificate)


class HandshakeTests(SynchronousTestCase):
    """
    The options L{client_tls_options} builds, in real handshakes.
    """

    def setUp(self) -> None:
        self.files = Files(self)
        self.ca = self.files.write("ca.pem", AUTHORITY.certificate_pem)
        self.other_ca = self.files.write("other.pem", STRANGER.certificate_pem)

    def assertConnected(self, client: Recorder, server: Recorder) -> None:
        self.assertIsNone(client.reason)
        self.assertEqual(server.received, b"ping")
        self.assertEqual(client.received, b"pong")

    def assertFailed(self, client: Recorder, server: Recorder) -> errors.TLSError:
        self.assertIsNotNone(client.reason)
        assert client.reason is not None
        error = tls_error_for(client.reason.value)
        self.assertIsNotNone(error, client.reason)
        assert error is not None
        self.assertEqual(server.received, b"")
        return error

    def test_verified_with_sni(self) -> None:
        """
        A certificate signed by cacertfile's CA for the host name is
        accepted, and the host name goes out as SNI.
        """
        client, server, seen = handshake(client_tls_options("localhost", {"cacertfile": self.ca}))
        self.assertConnected(client, server)
        self.assertEqual(seen, [b"localhost"])

    def test_ip_address(self) -> None:
        """
        An IP address is checked against the certificate's IP addresses and
        never sent as SNI (RFC 6066 forbids it).
        """
        client, server, seen = handshake(client_tls_options("127.0.0.1", {"cacertfile": self.ca}))
        self.assertConnected(client, server)
        self.assertEqual(seen, [None])

    def test_server_name_indication(self) -> None:
        """
        server_name_indication replaces the host both in SNI and in the
        check.
        """
        options = {"cacertfile": self.ca, "server_name_indication": "localhost"}
        client, server, seen = handshake(client_tls_options("127.0.0.1", options))
        self.assertConnected(client, server)
        self.assertEqual(seen, [b"localhost"])

    def test_disable_sends_no_sni(self) -> None:
        """
        server_name_indication=disable sends no SNI, and the certificate is
        still checked against the host.
        """
        options = {"cacertfile": self.ca, "server_name_indication": "disable"}
        client, server, seen = handshake(client_tls_options("localhost", options))
        self.assertConnected(client, server)
        self.assertEqual(seen, [None])
        client, server, seen = handshake(client_tls_options("broker.example", options))
        error = self.assertFailed(client, server)
        self.assertIsInstance(error, errors.CertificateVerifyError)
        self.assertIn("not valid for broker.example", str(error))

    def test_host_name_mismatch(self) -> None:
        """
        A certificate without the host name fails with
        CertificateVerifyError naming the host and the certificate's names.
        """
        client, server, _ = handshake(client_tls_options("broker.example", {"cacertfile": self.ca}))
        error = self.assertFailed(client, server)
        self.assertIsInstance(error, errors.CertificateVerifyError)
        self.assertEqual(
            error.reply_text,
            "the broker's certificate is not valid for broker.example (it names localhost, "
            "127.0.0.1); connect with a name it carries, or set server_name_indication",
        )

    def test_untrusted(self) -> None:
        """
        A certificate from a CA not in cacertfile fails with
        CertificateVerifyError saying it is not signed by a trusted CA.
        """
        client, server, _ = handshake(
            client_tls_options("localhost", {"cacertfile": self.other_ca})
        )
        error = self.assertFailed(client, server)
        self.assertIsInstance(error, errors.CertificateVerifyError)
        self.assertIn("is not trusted: it is not signed by a trusted CA", str(error))

    def test_expired(self) -> None:
        """
        An expired certificate fails with CertificateVerifyError saying so.
        """
        client, server, _ = handshake(
            client_tls_options("localhost", {"cacertfile": self.ca}), server=EXPIRED
        )
        error = self.assertFailed(client, server)
        self.assertIsInstance(error, errors.CertificateVerifyError)
        self.assertIn("it has expired", str(error))

    def test_verify_none(self) -> None:
        """
        verify=verify_none accepts any certificate, still sending SNI.
        """
        options = {"verify": "verify_none", "cacertfile": self.other_ca}
        client, server, seen = handshake(client_tls_options("broker.example", options))
        self.assertConnected(client, server)
        self.assertEqual(seen, [b"broker.example"])


class OptionErrorTests(SynchronousTestCase):
    """
    Bad TLS parameters are a L{ValueError} naming the parameter and file.
    """

    def setUp(self) -> None:
        self.files = Files(self)
        self.cert = self.files.write("client.pem", SERVER.certificate_pem)
        self.key = self.files.write("client.key", SERVER.key_pem)

    def error(self, **options: str) -> str:
        exc = self.assertRaises(ValueError, client_tls_options, "localhost", options)
        return str(exc)

    def test_bad_verify(self) -> None:
        """
        verify takes verify_peer or verify_none only.
        """
        self.assertIn("verify_peer or verify_none", self.error(verify="yes"))

    def test_missing_file(self) -> None:
        """
        A file that cannot be read is named with the reason.
        """
        missing = str(self.files.directory / "nope.pem")
        self.assertEqual(
            self.error(cacertfile=missing),
            f"cannot read cacertfile {missing}: No such file or directory",
        )

    def test_not_pem(self) -> None:
        """
        A file without a PEM certificate is named.
        """
        junk = self.files.write("junk.pem", b"not a certificate")
        self.assertIn(f"cacertfile {junk} holds no PEM certificate", self.error(cacertfile=junk))
        self.assertIn(f"keyfile {junk} holds no", self.error(certfile=self.cert, keyfile=junk))

    def test_encrypted_key(self) -> None:
        """
        An encrypted key is refused at once, never by prompting for a
        passphrase.
        """
        from cryptography.hazmat.primitives import serialization

        encrypted = self.files.write(
            "encrypted.key",
            SERVER.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"passphrase"),
            ),
        )
        self.assertIn(
            f"keyfile {encrypted} holds an encrypted private key",
            self.error(certfile=self.cert, keyfile=encrypted),
        )

    def test_key_without_certificate(self) -> None:
        """
        keyfile alone is refused.
        """
        self.assertIn("keyfile needs a certfile", self.error(keyfile=self.key))

    def test_key_of_another_certificate(self) -> None:
        """
        A key that does not belong to the certificate is refused before
        connecting.
        """
        other_key = self.files.write("other.key", EXPIRED.key_pem)
        self.assertIn("does not match", self.error(certfile=self.cert, keyfile=other_key))

    def test_key_in_certfile(self) -> None:
        """
        certfile may hold the key as well (and intermediate certificates
        after the first).
        """
        both = self.files.write(
            "both.pem", SERVER.certificate_pem + AUTHORITY.certificate_pem + SERVER.key_pem
        )
        creator = client_tls_options("localhost", {"certfile": both})
        self.assertIsNotNone(creator)


class ErrorMappingTests(SynchronousTestCase):
    """
    L{tls_error_for} turns what the TLS layer reports into typed errors.
    """

    def mapped(self, reason: str) -> errors.TLSError:
        original = SSL.Error([("SSL routines", "", reason)])
        error = tls_error_for(original)
        assert error is not None
        self.assertIs(error.__cause__, original)
        self.assertIsInstance(error, errors.ConnectionClosed)
        return error

    def test_openssl_reasons(self) -> None:
        """
        The alerts a broker sends and the errors of a non-TLS peer each get
        their own explanation.
        """
        cases = {
            "tlsv13 alert certificate required": "requires a client certificate",
            "tlsv1 alert unknown ca": "does not trust our client certificate",
            "sslv3 alert bad certificate": "refused our client certificate",
            "sslv3 alert handshake failure": "refused the TLS handshake",
            "wrong version number": "does not speak TLS on this port",
            "packet length too long": "does not speak TLS on this port",
            "something new": "TLS failed: something new",
        }
        for reason, expected in cases.items():
            error = self.mapped(reason)
            self.assertIs(type(error), errors.TLSError, reason)
            self.assertIn(expected, error.reply_text, reason)

    def test_verify_failed(self) -> None:
        """
        OpenSSL's own verification failure (Twisted's tls: endpoints) is a
        CertificateVerifyError.
        """
        self.assertIsInstance(
            self.mapped("certificate verify failed"), errors.CertificateVerifyError
        )

    def test_service_identity(self) -> None:
        """
        service_identity's host name mismatch (Twisted's tls: endpoints) is
        a CertificateVerifyError.
        """
        server = CertificateAuthority("test CA").issue("localhost", ["localhost"])
        mismatch = self.assertRaises(
            VerificationError, verify_certificate_hostname, server.certificate, "broker.example"
        )
        error = tls_error_for(mismatch)
        self.assertIsInstance(error, errors.CertificateVerifyError)

    def test_others(self) -> None:
        """
        Our own TLSError passes through; anything else is not a TLS error.
        """
        ours = errors.TLSError(reply_text="x")
        self.assertIs(tls_error_for(ours), ours)
        self.assertIsNone(tls_error_for(ConnectionResetError()))

    def test_client_reports_it(self) -> None:
        """
        A client whose TLS transport fails fails its handshake waiters with
        the TLSError.
        """
        client = AMQPConnection(clock=Clock(), credentials=Credentials())
        client.makeConnection(StringTransport())
        d = client.when_open()
        client.connectionLost(Failure(SSL.Error([("SSL routines", "", "wrong version number")])))
        error = self.failureResultOf(d, errors.TLSError).value
        self.assertIn("does not speak TLS", str(error))
        self.assertIs(client.closed, error)

    def test_tls_answer_to_plain_client(self) -> None:
        """
        A TLS alert where connection.start should be (amqp:// to a TLS port)
        fails the handshake with a RemoteProtocolError that says so.
        """
        client = AMQPConnection(clock=Clock(), credentials=Credentials())
        transport = StringTransport()
        client.makeConnection(transport)
        d = client.when_open()
        client.dataReceived(b"\x15\x03\x01\x00\x02\x02\x28")
        error = self.failureResultOf(d, errors.RemoteProtocolError).value
        self.assertIn("the server answered with TLS, not AMQP", str(error))
        self.assertTrue(transport.disconnecting)
