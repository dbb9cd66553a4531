"""
Throwaway X.509 certificates for the TLS tests, made with C{cryptography}.

    ca = CertificateAuthority("test CA")
    server = ca.issue("localhost", ["localhost", "127.0.0.1"])
    paths = server.write(directory, "server")   # server.pem, server.key

Every authority and key is new on each run and lives only in the test's
directory.  Keys are 2048-bit RSA, which RabbitMQ's Erlang TLS and OpenSSL
accept with their default security levels.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "txamqp_next tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _validity(builder: x509.CertificateBuilder, expired: bool = False) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        return builder.not_valid_before(now - datetime.timedelta(days=3)).not_valid_after(
            now - datetime.timedelta(days=1)
        )
    return builder.not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(
        now + datetime.timedelta(days=2)
    )


@dataclass
class Issued:
    """
    A certificate and its private key.
    """

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """
        Write C{stem.pem} and C{stem.key} into C{directory}, readable by
        everyone (the broker runs as another user; these keys protect
        nothing).

        @return: the certificate's and the key's paths.
        """
        cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_path.write_bytes(self.certificate_pem)
        key_path.write_bytes(self.key_pem)
        for path in (cert_path, key_path):
            path.chmod(0o644)
        return cert_path, key_path


class CertificateAuthority(Issued):
    """
    A self-signed CA that issues server and client certificates.
    """

    def __init__(self, common_name: str) -> None:
        key = _key()
        name = _name(common_name)
        certificate = (
            _validity(x509.CertificateBuilder())
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        super().__init__(certificate, key)

    def issue(
        self,
        common_name: str,
        names: Iterable[str] = (),
        client: bool = False,
        expired: bool = False,
    ) -> Issued:
        """
        Issue a certificate.

        @param names: subject alternative names; dotted quads become IP
            addresses, the rest DNS names.
        @param client: a client certificate (extended key usage clientAuth)
            rather than a server one (serverAuth).
        @param expired: make one that expired yesterday.
        """
        key = _key()
        alternatives: list[x509.GeneralName] = []
        for name in names:
            try:
                alternatives.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alternatives.append(x509.DNSName(name))
        builder = (
            _validity(x509.CertificateBuilder(), expired)
            .subject_name(_name(common_name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if alternatives:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternatives), critical=False
            )
        return Issued(builder.sign(self.key, hashes.SHA256()), key)
