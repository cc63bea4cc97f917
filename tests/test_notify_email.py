"""Email notifications: the SMTP backend against a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from fakes.smtp_server import FakeSmtp

from dpc_core.notify import DeliveryError
from dpc_core.types import Notification
from dpc_notify_email.backend import SmtpBackend, run_thread_id

SENDER = "dpc@example.com"
FAILED = Notification(
    kind="PIPELINE_FINISHED", pipeline="pipeline-x", account="333333333333",
    logical_date="2024-05-01", run_id="run-42", status="FAILED", duration_s=4.5, step="load",
    error="disk <full>",
    parents=({"pipeline": "listings", "account": "111111111111", "status": "SUCCEEDED",
              "executionArn": "arn:aws:states:eu-west-1:111111111111:execution:listings:r1"},),
)


@pytest.fixture
def smtp() -> Iterator[FakeSmtp]:
    with FakeSmtp() as server:
        yield server


def env_for(server: FakeSmtp, **extra: str) -> dict[str, str]:
    return {"DPC_SMTP_HOST": server.host, "DPC_SMTP_PORT": str(server.port),
            "DPC_SMTP_FROM": SENDER, **extra}


def test_the_email_has_sender_recipients_and_the_summary_as_subject(smtp: FakeSmtp) -> None:
    SmtpBackend.from_env(env_for(smtp)).send(FAILED, ["a@example.com", "b@example.com"])

    [got] = smtp.received
    assert got.rcpt_tos == ["a@example.com", "b@example.com"]
    assert got.message["From"] == SENDER
    assert got.message["To"] == "a@example.com, b@example.com"
    assert got.message["Subject"] == FAILED.summary()


def test_the_email_has_a_plain_text_and_an_html_part(smtp: FakeSmtp) -> None:
    SmtpBackend.from_env(env_for(smtp)).send(FAILED, ["a@example.com"])

    message = smtp.received[0].message
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    text, markup = plain.get_content(), rich.get_content()
    for expected in ("pipeline-x", "333333333333", "2024-05-01", "run-42", "Failed step: load",
                     "4.5s", "disk <full>", "listings (111111111111) SUCCEEDED"):
        assert expected in text
    assert "disk &lt;full&gt;" in markup and "<table>" in markup


def test_emails_of_one_run_refer_to_the_run_start(smtp: FakeSmtp) -> None:
    backend = SmtpBackend.from_env(env_for(smtp))
    start = Notification(kind="PIPELINE_STARTED", pipeline="pipeline-x", account="333333333333",
                         logical_date="2024-05-01", run_id="run-42", status="RUNNING")
    backend.send(start, ["a@example.com"])
    backend.send(FAILED, ["a@example.com"])

    first, second = (r.message for r in smtp.received)
    assert first["Message-ID"] == run_thread_id(start)
    assert second["In-Reply-To"] == first["Message-ID"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_credentials_from_the_environment_log_in() -> None:
    with FakeSmtp(credentials=("dpc", "s3cret-password")) as server:
        SmtpBackend.from_env(env_for(server, DPC_SMTP_USER="dpc",
                                     DPC_SMTP_PASSWORD="s3cret-password")).send(
            FAILED, ["a@example.com"])

        assert server.received[0].authenticated_as == "dpc"


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_credentials_are_an_error_without_the_password() -> None:
    with FakeSmtp(credentials=("dpc", "s3cret-password")) as server:
        backend = SmtpBackend.from_env(env_for(server, DPC_SMTP_USER="dpc",
                                               DPC_SMTP_PASSWORD="wrong-password"))
        with pytest.raises(Exception) as raised:
            backend.send(FAILED, ["a@example.com"])

        assert "wrong-password" not in str(raised.value)
        assert "wrong-password" not in repr(backend.settings)
        assert server.received == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return str(cert), str(key)


def test_starttls_upgrades_the_connection_before_logging_in(
    certificate: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The client verifies the server: trust the test certificate the standard OpenSSL way.
    monkeypatch.setenv("SSL_CERT_FILE", certificate[0])
    with FakeSmtp(credentials=("dpc", "s3cret-password"), tls=certificate) as server:
        SmtpBackend.from_env(env_for(server, DPC_SMTP_STARTTLS="1", DPC_SMTP_USER="dpc",
                                     DPC_SMTP_PASSWORD="s3cret-password")).send(
            FAILED, ["a@example.com"])

        assert server.received[0].authenticated_as == "dpc"


def test_without_starttls_a_server_that_requires_it_refuses_the_email(
    certificate: tuple[str, str],
) -> None:
    with FakeSmtp(tls=certificate) as server:
        with pytest.raises(Exception, match="STARTTLS"):
            SmtpBackend.from_env(env_for(server)).send(FAILED, ["a@example.com"])
        assert server.received == []


def test_an_unreachable_server_is_an_error(smtp: FakeSmtp) -> None:
    backend = SmtpBackend.from_env(env_for(smtp, DPC_SMTP_PORT="1"))
    with pytest.raises(OSError):
        backend.send(FAILED, ["a@example.com"])


def test_a_bad_port_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ValueError, match="DPC_SMTP_PORT"):
        SmtpBackend.from_env({"DPC_SMTP_PORT": "smtp"})


def test_delivery_error_names_the_refused_addresses() -> None:
    error = DeliveryError("EMAIL", {"x@example.com": "refused: 550 no such user"})
    assert "x@example.com" in str(error)


def test_without_a_server_configured_the_channel_says_what_to_set() -> None:
    with pytest.raises(ValueError, match="DPC_SMTP_HOST"):
        SmtpBackend.from_env({})


def test_a_notification_sent_again_has_the_same_message_id(smtp: FakeSmtp) -> None:
    backend = SmtpBackend.from_env(env_for(smtp))
    backend.send(replace(FAILED, key="k1"), ["a@example.com"])
    backend.send(replace(FAILED, key="k1", retry=True), ["a@example.com"])
    backend.send(replace(FAILED, key="k2"), ["a@example.com"])
    ids = [m.message["Message-ID"] for m in smtp.received]
    assert ids[0] == ids[1] != ids[2]
