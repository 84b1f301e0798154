"""A local certificate authority, a loopback server certificate and the JWT signing key pair.

Generated once per state directory and reused, so a client that trusts the CA bundle keeps trusting
it across restarts. Nothing here disables verification: clients verify against ``ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Credentials:
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    jwt_private_key: Path  # handed to clients: the connected app's certificate below verifies it
    jwt_certificate: Path


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(key: rsa.RSAPrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Local Salesforce emulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def ensure_credentials(directory: Path, hosts: list[str]) -> Credentials:
    """Create (or reuse) the CA, a server certificate valid for ``hosts``, and the JWT key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    creds = Credentials(
        ca_bundle=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server.key",
        jwt_private_key=directory / "jwt-private-key.pem",
        jwt_certificate=directory / "jwt-certificate.pem",
    )
    hosts_file = directory / "server.hosts"
    wanted = ",".join(sorted(set(hosts)))
    if (creds.ca_bundle.exists() and creds.server_cert.exists() and creds.jwt_private_key.exists()
            and hosts_file.exists() and hosts_file.read_text() == wanted):
        return creds

    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Local Salesforce emulator CA"))
        .issuer_name(_name("Local Salesforce emulator CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    alt_names: list[x509.GeneralName] = []
    for host in sorted(set(hosts)):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    server_key = _key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca_cert.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    jwt_key = _key()
    jwt_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Connected app JWT certificate"))
        .issuer_name(_name("Connected app JWT certificate"))
        .public_key(jwt_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(jwt_key, hashes.SHA256())
    )

    creds.ca_bundle.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    creds.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, creds.server_key)
    _write_key(jwt_key, creds.jwt_private_key)
    creds.jwt_certificate.write_bytes(jwt_cert.public_bytes(serialization.Encoding.PEM))
    hosts_file.write_text(wanted)
    return creds
