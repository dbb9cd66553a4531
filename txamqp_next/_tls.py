# -*- test-case-name: tests.test_tls -*-
"""
TLS for C{amqps://} URIs: client options built from RabbitMQ's URI
parameters, and OpenSSL's failures turned into L{TLSError}s that name the
cause.

The parameters are those of RabbitMQ's Erlang client:

  - C{cacertfile}: PEM file of the CA certificates to trust (one or more);
    the system's trust store when omitted.
  - C{certfile}, C{keyfile}: our client certificate (PEM, optionally followed
    by intermediate certificates) and its private key (PEM, unencrypted; it
    may also sit in C{certfile}).
  - C{verify}: C{verify_peer} (the default) checks the broker's certificate
    chain and that it names the host; C{verify_none} checks nothing.
  - C{server_name_indication}: the host name to send in SNI and to check the
    certificate against, instead of the URI's host; C{disable} sends no SNI
    (the certificate is still checked against the URI's host).

Needs pyOpenSSL, service_identity and cryptography (the C{tls} extra).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.python.failure import Failure
from zope.interface import implementer

from txamqp_next.errors import CertificateVerifyError, TLSError

if TYPE_CHECKING:
    from OpenSSL.crypto import X509
    from OpenSSL.SSL import Connection

__all__ = ["client_tls_options", "tls_error_for"]

# X509_V_ERR_* codes OpenSSL gives the verify callback, in our words.
_VERIFY_ERRORS = {
    2: "its issuer's certificate is missing (unable to get issuer certificate)",
    7: "a signature in its chain is invalid",
    9: "it is not valid yet",
    10: "it has expired",
    18: "it is self-signed and not in cacertfile",
    19: "its chain ends in a self-signed CA that is not trusted",
    20: "it is not signed by a trusted CA (unable to get local issuer certificate)",
    21: "it is not signed by a trusted CA (unable to verify the first certificate)",
    23: "it has been revoked",
    24: "a certificate in its chain is not a valid CA",
    26: "it is not meant for a TLS server (wrong key usage)",
}

# Pieces of OpenSSL's error reasons, and what they mean for us.
_REMOTE_REASONS = (
    (
        "alert certificate required",
        "the broker requires a client certificate: give certfile and keyfile",
    ),
    (
        "alert unknown ca",
        "the broker does not trust our client certificate (unknown CA)",
    ),
    ("alert bad certificate", "the broker refused our client certificate (bad certificate)"),
    (
        "alert certificate unknown",
        "the broker refused our client certificate (certificate unknown)",
    ),
    ("alert certificate expired", "the broker refused our client certificate: it has expired"),
    (
        "alert handshake failure",
        "the broker refused the TLS handshake (handshake failure): it may require a client "
        "certificate, or no TLS version or cipher suits both sides",
    ),
    (
        "alert protocol version",
        "the broker accepts none of the TLS versions we offer (protocol version)",
    ),
    (
        "wrong version number",
        "the server does not speak TLS on this port (wrong version number); is it the plain "
        "AMQP port? use amqp://",
    ),
    (
        "packet length too long",
        "the server does not speak TLS on this port (packet length too long); is it the plain "
        "AMQP port? use amqp://",
    ),
    (
        "record layer failure",
        "the server does not speak TLS on this port (record layer failure); is it the plain "
        "AMQP port? use amqp://",
    ),
)

_VERIFY_FAILED = (
    "the broker's certificate could not be verified (certificate verify failed): it is not "
    "signed by a CA in cacertfile or the system's trust store, has expired, or is self-signed"
)


def _require_tls_packages() -> None:
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"amqps:// needs pyOpenSSL and service_identity ({e}); "
            "install them with: pip install 'txamqp-next[tls]'"
        ) from e


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read {what} {path}: {e.strerror or e}") from None


def _certificates(path: str, what: str) -> list[X509]:
    from cryptography.x509 import load_pem_x509_certificates
    from OpenSSL.crypto import X509

    data = _read(path, what)
    try:
        found = load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(f"{what} {path} holds no PEM certificate") from None
    return [X509.from_cryptography(cert) for cert in found]


def _private_key(path: str, what: str) -> Any:
    # cryptography, not OpenSSL's loader: with no passphrase OpenSSL would
    # prompt for one on the terminal
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from OpenSSL import crypto

    data = _read(path, what)
    try:
        key = load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError(
            f"{what} {path} holds an encrypted private key; give an unencrypted one"
        ) from None
    except ValueError:
        raise ValueError(f"{what} {path} holds no PEM private key") from None
    return crypto.PKey.from_cryptography_key(key)  # type: ignore[arg-type]


def client_tls_options(host: str, options: Mapping[str, str]) -> IOpenSSLClientConnectionCreator:
    """
    TLS client options for the URI parameters C{options} (see the module's
    docstring), for a connection to C{host}.

    @raise ValueError: an unknown C{verify} value, a C{keyfile} without a
        C{certfile}, a file that cannot be read or holds no PEM certificate
        or key, or a key that does not belong to the certificate.  The
        message names the parameter and the file.
    @raise ImportError: pyOpenSSL or service_identity is missing.
    """
    _require_tls_packages()
    from OpenSSL import SSL
    from twisted.internet import ssl

    verify = options.get("verify", "verify_peer")
    if verify not in ("verify_peer", "verify_none"):
        raise ValueError(f"verify must be verify_peer or verify_none, not {verify!r}")
    sni = options.get("server_name_indication", "")
    if sni == "disable":
        name, send_sni = host, False
    else:
        name = sni or host
        send_sni = not _is_ip_address(name)
    if "keyfile" in options and "certfile" not in options:
        raise ValueError("keyfile needs a certfile (the client certificate) too")
    key: Any = None
    chain: list[X509] = []
    if "certfile" in options:
        chain = _certificates(options["certfile"], "certfile")
        key = _private_key(options.get("keyfile", options["certfile"]), "keyfile")
    trust: Any = None
    if verify == "verify_peer":
        if "cacertfile" in options:
            authorities = _certificates(options["cacertfile"], "cacertfile")
            trust = ssl.trustRootFromCertificates(  # type: ignore[no-untyped-call]
                [ssl.Certificate(c) for c in authorities]  # type: ignore[no-untyped-call]
            )
        else:
            trust = ssl.platformTrust()  # type: ignore[no-untyped-call]
    certificate_options = ssl.CertificateOptions(
        privateKey=key,
        certificate=chain[0] if chain else None,
        extraCertChain=chain[1:] or None,
        trustRoot=trust,
    )
    try:
        # builds the context now, so that a bad key fails here and not
        # later inside the reactor
        certificate_options.getContext()
    except SSL.Error as e:
        raise ValueError(
            f"keyfile {options.get('keyfile', options.get('certfile'))} does not match "
            f"certfile {options.get('certfile')} ({_reasons(e) or e})"
        ) from None
    return _ClientTLS(
        certificate_options,
        name if verify == "verify_peer" else None,
        name.encode("idna") if send_sni else None,
    )


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


@implementer(IOpenSSLClientConnectionCreator)
class _ClientTLS:
    """
    Makes client TLS connections: sends SNI when asked, and checks the
    broker's certificate chain and host name, failing the connection with a
    L{CertificateVerifyError} that says what was wrong.

    @ivar hostname: the name the broker's certificate must carry, or
        C{None} to check nothing.
    @ivar server_name: the SNI host name, or C{None} to send none.
    """

    def __init__(self, options: Any, hostname: str | None, server_name: bytes | None) -> None:
        self.options = options
        self.hostname = hostname
        self.server_name = server_name

    def clientConnectionForTLS(self, tlsProtocol: Any) -> Connection:
        from OpenSSL import SSL

        connection = SSL.Connection(self.options.getContext(), None)
        connection.set_app_data(tlsProtocol)
        if self.server_name is not None:
            connection.set_tlsext_host_name(self.server_name)
        if self.hostname is not None:
            connection.set_verify(
                SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._verifier(tlsProtocol)
            )
        return connection

    def _verifier(self, protocol: Any) -> Callable[[Connection, X509, int, int, int], bool]:
        hostname = self.hostname
        assert hostname is not None
        failed = False

        def fail(error: CertificateVerifyError) -> bool:
            nonlocal failed
            if not failed:
                failed = True
                protocol.failVerification(Failure(error))  # type: ignore[no-untyped-call]
            return False

        def verify(connection: Connection, cert: X509, errno: int, depth: int, ok: int) -> bool:
            # OpenSSL may go on calling after a failure; report the first
            if failed:
                return False
            if not ok:
                cause = _VERIFY_ERRORS.get(errno, f"OpenSSL verify error {errno}")
                where = f" (at depth {depth} of its chain)" if depth else ""
                return fail(
                    CertificateVerifyError(
                        reply_text=f"the broker's certificate is not trusted: {cause}{where}"
                    )
                )
            if depth == 0:
                problem = _hostname_problem(cert, hostname)
                if problem:
                    return fail(CertificateVerifyError(reply_text=problem))
            return True

        return verify


def _hostname_problem(cert: X509, hostname: str) -> str | None:
    """
    Why C{cert} is not valid for C{hostname}, or C{None} if it is.
    """
    from service_identity import CertificateError, VerificationError
    from service_identity.cryptography import (
        verify_certificate_hostname,
        verify_certificate_ip_address,
    )

    certificate = cert.to_cryptography()
    try:
        if _is_ip_address(hostname):
            verify_certificate_ip_address(certificate, hostname)
        else:
            verify_certificate_hostname(certificate, hostname)
    except (VerificationError, CertificateError):
        return (
            f"the broker's certificate is not valid for {hostname} (it names "
            f"{_names(certificate)}); connect with a name it carries, or set "
            "server_name_indication"
        )
    return None


def _names(certificate: Any) -> str:
    from cryptography import x509

    try:
        alternatives = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        return "no subject alternative names"
    names = [str(n) for n in alternatives.get_values_for_type(x509.DNSName)]
    names += [str(n) for n in alternatives.get_values_for_type(x509.IPAddress)]
    return ", ".join(names) or "no host names"


def _reasons(error: BaseException) -> str:
    """
    The reason texts of an C{OpenSSL.SSL.Error}, joined.
    """
    parts = error.args[0] if error.args and isinstance(error.args[0], list) else []
    return "; ".join(str(p[2]) for p in parts if isinstance(p, tuple) and len(p) == 3)


def tls_error_for(reason: BaseException) -> TLSError | None:
    """
    The L{TLSError} for why a TLS connection ended, or C{None} if it ended
    for some other reason.

    @param reason: what the TLS layer gave C{connectionLost}: our own
        L{TLSError}, an C{OpenSSL.SSL.Error}, or service_identity's
        C{VerificationError} (from Twisted's own C{tls:} endpoints).
    """
    if isinstance(reason, TLSError):
        return reason
    kind = type(reason)
    module, name = kind.__module__, kind.__name__
    if module.startswith("service_identity") and name in ("VerificationError", "CertificateError"):
        error: TLSError = CertificateVerifyError(
            reply_text=f"the broker's certificate does not carry the host name we connected to "
            f"({reason})"
        )
    elif module.startswith("OpenSSL") and name == "Error":
        text = _reasons(reason) or str(reason)
        lowered = text.lower()
        if "certificate verify failed" in lowered:
            error = CertificateVerifyError(reply_text=_VERIFY_FAILED)
        else:
            for piece, meaning in _REMOTE_REASONS:
                if piece in lowered:
                    error = TLSError(reply_text=meaning)
                    break
            else:
                error = TLSError(reply_text=f"TLS failed: {text}")
    else:
        return None
    error.__cause__ = reason
    return error
