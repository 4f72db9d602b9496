"""Alert e-mail over STARTTLS with a real TLS handshake: a throwaway CA and server certificates
made here (cryptography), an aiosmtpd server that requires STARTTLS, and SMTP_CA_FILE."""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from models import Delivery
from tests.alerts.conftest import _Collect
from tests.alerts.test_evaluation import _evaluate, _rule, _store
from tests.alerts.test_notify import _deliver_all
from tests.processes import free_port
from webapp.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parents[2]
BASE = {"RMQ_HOST": "localhost", "DISABLED_AUTH": "true", "ENVIRONMENT": "development"}
PASSWORD = "s3cret/pass"


# ---- a throwaway PKI ----------------------------------------------------------------------------


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(path: Path, *certs, key=None) -> Path:
    from cryptography.hazmat.primitives import serialization

    data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    if key is not None:
        data += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(data)
    return path


def _ca(common_name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _server_cert(ca_cert, ca_key, dns: list[str], ips: list[str]):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    key = _key()
    now = datetime.now(UTC)
    names = [x509.DNSName(d) for d in dns] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """Files of a throwaway CA (`ca`), a server certificate it signed for localhost/127.0.0.1
    (`server`), one it signed for another host (`other`), and non-certificate files."""
    from cryptography.hazmat.primitives import serialization

    d = tmp_path_factory.mktemp("pki")
    ca_cert, ca_key = _ca("PACER test CA")
    server_cert, server_key = _server_cert(ca_cert, ca_key, ["localhost"], ["127.0.0.1", "::1"])
    other_cert, other_key = _server_cert(ca_cert, ca_key, ["smtp.other.example.org"], ["10.9.8.7"])
    files = {
        "ca": _write(d / "ca.pem", ca_cert),
        "server": _write(d / "server.pem", server_cert, key=server_key),
        "other": _write(d / "other.pem", other_cert, key=other_key),
        "key_only": _write(d / "key-only.pem", key=ca_key),
        "garbage": d / "garbage.pem",
        "der": d / "ca.der",
        "missing": d / "missing.pem",
        "directory": d,
    }
    files["garbage"].write_text("this is not a certificate\n")
    files["der"].write_bytes(ca_cert.public_bytes(serialization.Encoding.DER))
    return files


# ---- an SMTP server that requires STARTTLS ------------------------------------------------------


class _Recording(_Collect):
    def __init__(self):
        super().__init__()
        self.lines: list[tuple[bool, str]] = []  # (inside TLS, line), as the server received them
        self.tls_sessions: list[tuple[str, str]] = []  # (TLS version, cipher) of each mail
        self.logins: list[tuple[bytes, bool]] = []  # (user, inside TLS)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        if session.ssl is not None:
            ssl_object = session.ssl["ssl_object"]
            self.tls_sessions.append((ssl_object.version(), ssl_object.cipher()[0]))
        return await super().handle_DATA(server, session, envelope)

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, session.ssl is not None))
        return AuthResult(success=auth_data.password == PASSWORD.encode())

    def commands(self, tls: bool) -> list[str]:
        """The first words (commands, and headers of a mail) received outside / inside TLS."""
        return [line.split(" ")[0].upper() for inside, line in self.lines if inside == tls and line]

    @property
    def clear_commands(self) -> list[str]:
        return self.commands(tls=False)


def _tls_controller(handler: _Recording, certfile: Path):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    class RecordingSMTP(SMTP):
        """Records every line it receives, and whether it came inside TLS (after STARTTLS the
        decrypted bytes reach this same protocol; before it, the plain ones)."""

        def data_received(self, data: bytes) -> None:
            tls = self._tls_protocol is not None
            for line in data.decode("utf-8", "replace").split("\r\n"):
                handler.lines.append((tls, line))
            super().data_received(data)

    class TLSController(Controller):
        def factory(self):
            return RecordingSMTP(self.handler, **self.SMTP_kwargs)

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certfile)
    return TLSController(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=handler.authenticate,
        auth_require_tls=True,
    )


@pytest.fixture
def tls_server(pki):
    """aiosmtpd on 127.0.0.1 (an OS-picked port) with the `server` certificate, STARTTLS
    required before any mail or login. `.start(cert)` serves another certificate instead."""
    started = []

    def start(cert: str = "server") -> _Recording:
        handler = _Recording()
        controller = _tls_controller(handler, pki[cert])
        controller.start()
        started.append(controller)
        handler.port = controller.port
        return handler

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def one_email(db, pg, settings):
    """A silence incident whose rule mails one address: one pending e-mail delivery."""
    now = datetime.now(UTC)
    _store(pg, settings, now - timedelta(minutes=30), message_type="user-sync")
    _rule(
        db,
        name="user sync alive",
        message_type="user-sync",
        threshold=10,
        emails=["ops@example.org"],
        webhook_url=None,
    )
    _evaluate(db, settings, now)
    (delivery,) = db.session.query(Delivery).all()
    return delivery


def _smtp(settings, port: int, **fields):
    """The session settings sending through 127.0.0.1:`port` with STARTTLS, then `fields`."""
    defaults = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": port,
        "SMTP_STARTTLS": True,
        "SMTP_TIMEOUT": 10,
        "ALERT_MAIL_FROM": "pacer-dashboard@example.org",
        "PUBLIC_URL": "https://dashboard.example.org",
    }
    return dataclasses.replace(settings, **{**defaults, **fields})


def _failed_with(db, delivery) -> str:
    db.session.refresh(delivery)
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    return delivery.last_error


# ---- (a) SMTP_CA_FILE trusted: delivered over TLS, login inside it ------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivered_over_verified_tls_with_login(db, settings, pki, tls_server, one_email, host):
    server = tls_server()
    config = _smtp(
        settings,
        server.port,
        SMTP_HOST=host,
        SMTP_CA_FILE=str(pki["ca"]),
        SMTP_USER="alerts",
        SMTP_PASSWORD=PASSWORD,
    )
    assert _deliver_all(db, config) == ["sent"]
    (mail,) = server.mails
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"].startswith("[PACER ALERT] user sync alive")
    ((version, _cipher),) = server.tls_sessions  # the mail came inside a TLS session
    assert version in ("TLSv1.2", "TLSv1.3")
    assert server.logins == [(b"alerts", True)]  # the login too
    assert server.clear_commands == ["EHLO", "STARTTLS"]  # nothing else in the clear
    assert {"AUTH", "MAIL", "RCPT", "DATA", "QUIT"} <= set(server.commands(tls=True))
    db.session.refresh(one_email)
    assert (one_email.status, one_email.last_error) == ("sent", None)


# ---- (b) the system's store does not know the CA: verification fails ----------------------------


def test_unknown_ca_fails_verification_and_sends_nothing(db, settings, tls_server, one_email):
    server = tls_server()
    config = _smtp(settings, server.port, SMTP_USER="alerts", SMTP_PASSWORD=PASSWORD)
    assert config.SMTP_CA_FILE == ""  # the system's trust store
    assert _deliver_all(db, config) == ["failed"]
    error = _failed_with(db, one_email)
    assert error.startswith(f"SMTP 127.0.0.1:{server.port}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in error and "unable to get local issuer" in error
    assert server.mails == [] and server.logins == [] and server.tls_sessions == []
    assert server.clear_commands == ["EHLO", "STARTTLS"]  # no password, no mail in the clear
    assert not any(tls for tls, _ in server.lines)


def test_another_ca_file_does_not_trust_the_server(
    db, settings, pki, tmp_path, tls_server, one_email
):
    """SMTP_CA_FILE replaces the system's store: a file holding another CA fails the same way."""
    other_ca, _ = _ca("Some other CA")
    server = tls_server()
    config = _smtp(settings, server.port, SMTP_CA_FILE=str(_write(tmp_path / "o.pem", other_ca)))
    assert _deliver_all(db, config) == ["failed"]
    assert "CERTIFICATE_VERIFY_FAILED" in _failed_with(db, one_email)
    assert server.mails == [] and server.clear_commands == ["EHLO", "STARTTLS"]


# ---- (c) a trusted certificate for another host: the host name is checked ------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "Hostname mismatch, certificate is not valid for 'localhost'"),
        ("127.0.0.1", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
    ],
)
def test_certificate_for_another_host_fails(db, settings, pki, tls_server, one_email, host, reason):
    server = tls_server("other")
    config = _smtp(settings, server.port, SMTP_HOST=host, SMTP_CA_FILE=str(pki["ca"]))
    assert _deliver_all(db, config) == ["failed"]
    error = _failed_with(db, one_email)
    assert "CERTIFICATE_VERIFY_FAILED" in error and reason in error
    assert server.mails == [] and server.clear_commands == ["EHLO", "STARTTLS"]


# ---- (d) STARTTLS switched off against a server that requires it ----------------------------------


@pytest.mark.parametrize(
    ("login", "reason"),
    [
        ({}, "Must issue a STARTTLS command first"),
        ({"SMTP_USER": "alerts", "SMTP_PASSWORD": PASSWORD}, "SMTP AUTH extension not supported"),
    ],
)
def test_starttls_off_against_a_server_requiring_it_fails_cleanly(
    db, settings, pki, tls_server, one_email, login, reason
):
    server = tls_server()
    config = _smtp(settings, server.port, SMTP_STARTTLS=False, SMTP_CA_FILE=str(pki["ca"]), **login)
    assert _deliver_all(db, config) == ["failed"]
    assert reason in _failed_with(db, one_email)
    assert server.mails == [] and server.logins == []
    assert "AUTH" not in server.clear_commands  # the password never went out


# ---- (e) a bad SMTP_CA_FILE stops start-up, naming the variable ---------------------------------


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        ("missing", "cannot be read (No such file or directory)"),
        ("directory", "cannot be read (Is a directory)"),
        ("garbage", "holds no PEM certificate"),
        ("key_only", "holds no PEM certificate"),
        ("der", "holds no PEM certificate"),
    ],
)
def test_bad_ca_file_is_a_config_error(pki, file, reason):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ={**BASE, "SMTP_CA_FILE": str(pki[file])})
    message = str(raised.value)
    assert message.startswith(f"SMTP_CA_FILE: {str(pki[file])!r} ")
    assert reason in message and "expected a PEM file of CA certificates" in message


#: A file even root may not read (sysctl files check their mode bits for root too).
ROOT_UNREADABLE = "/proc/sys/vm/drop_caches"


def test_unreadable_ca_file_is_a_config_error(pki, tmp_path):
    unreadable = tmp_path / "ca.pem"
    unreadable.write_bytes(pki["ca"].read_bytes())
    unreadable.chmod(0)
    if os.geteuid() == 0:
        # Root reads a mode-0 file: take one root cannot read.
        unreadable = ROOT_UNREADABLE
        with pytest.raises(PermissionError):
            open(unreadable).close()  # noqa: PTH123, SIM115 - the premise of the test
    with pytest.raises(ConfigError, match=r"SMTP_CA_FILE: .* cannot be read \(Permission denied\)"):
        Settings.from_env(environ={**BASE, "SMTP_CA_FILE": str(unreadable)})


def test_ca_file_without_starttls_is_a_config_error(pki):
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(
            environ={**BASE, "SMTP_CA_FILE": str(pki["ca"]), "SMTP_STARTTLS": "false"}
        )
    assert str(raised.value).startswith("SMTP_CA_FILE: set, but SMTP_STARTTLS is false")


def test_ca_file_default_and_good_value(pki):
    assert Settings.from_env(environ=BASE).SMTP_CA_FILE == ""
    good = Settings.from_env(environ={**BASE, "SMTP_CA_FILE": str(pki["ca"])})
    assert good.SMTP_CA_FILE == str(pki["ca"])


def test_bad_ca_file_stops_the_processes_with_one_line(pki):
    env = {**os.environ, **BASE, "SMTP_CA_FILE": str(pki["garbage"])}
    proc = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "import wsgi"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("pacer-dashboard: configuration error: SMTP_CA_FILE: "), proc.stderr
    assert "Traceback" not in proc.stderr
