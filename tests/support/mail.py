"""A real SMTP server on loopback for tests: Kefu's own mail sink (bot/mailsink.py) on a free port."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from bot.mailsink import KeepInFolder
from tests.support.stack import free_port


@dataclass
class MailSink:
    host: str
    port: int
    folder: Path

    def mails(self, to: str | None = None) -> list[EmailMessage]:
        kept = [
            message_from_bytes(path.read_bytes(), policy=default_policy)
            for path in sorted(self.folder.glob("*.eml"))
        ]
        mails = [mail for mail in kept if isinstance(mail, EmailMessage)]
        return [mail for mail in mails if to is None or str(mail["To"]).lower() == to.lower()]

    def latest_code(self, to: str | None = None, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while True:
            codes = [
                match.group(1)
                for mail in self.mails(to)
                if (match := re.search(r"Your code: (\d{6})", str(mail["Subject"])))
            ]
            if codes:
                return codes[-1]
            if time.monotonic() > deadline:
                raise AssertionError(f"no code mail to {to or 'anyone'}")
            time.sleep(0.05)


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    folder = tmp_path / "mail"
    port = free_port()
    controller = Controller(KeepInFolder(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield MailSink("127.0.0.1", port, folder)
    finally:
        controller.stop()
