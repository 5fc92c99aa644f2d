"""Mail through a real SMTP server on loopback: the mail sink `make run` starts, and its files."""

from __future__ import annotations

import stat

import pytest

from bot import mail
from bot.settings import Settings
from tests.support.mail import MailSink
from tests.support.stack import free_port


def test_a_code_mail_reaches_the_sink_and_is_kept_for_its_owner_only(mail_sink: MailSink) -> None:
    config = Settings(smtp_host=mail_sink.host, smtp_port=mail_sink.port)
    mail.send_code(config, "ana.souza@example.com", "123456", 10)
    (kept,) = mail_sink.mails("ana.souza@example.com")
    assert str(kept["Subject"]) == "Your code: 123456"
    assert str(kept["From"]) == config.mail_from
    body = kept.get_content()
    assert "123456" in body and "10 minutes" in body and "ignore this e-mail" in body
    assert mail_sink.latest_code() == "123456"
    (path,) = mail_sink.folder.glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(mail_sink.folder.stat().st_mode) == 0o700


def test_no_mail_server_is_a_clear_error_without_the_address(caplog: pytest.LogCaptureFixture) -> None:
    config = Settings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_timeout_seconds=2)
    with pytest.raises(mail.MailError, match="did not take the mail"):
        mail.send_code(config, "ana.souza@example.com", "123456", 10)
    assert "ana.souza" not in caplog.text
