"""Sending e-mail to customers through the configured SMTP server (smtp_* settings)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from bot.errors import KefuError
from bot.settings import Settings

logger = logging.getLogger(__name__)


class MailError(KefuError):
    """The mail server could not be reached or refused the message."""


def send(config: Settings, to: str, subject: str, body: str) -> None:
    """Send a plain-text e-mail; raises MailError when it could not be handed to the server."""
    message = EmailMessage()
    message["From"] = config.mail_from
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="kefu.local")
    message.set_content(body)
    try:
        with smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds) as smtp:
            if config.smtp_starttls:
                smtp.starttls()
            if config.smtp_username:
                smtp.login(config.smtp_username, config.smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        # The address is the customer's: the log names the server, not the recipient.
        logger.error("could not send mail through %s:%s: %s", config.smtp_host, config.smtp_port, exc)
        where = f"{config.smtp_host}:{config.smtp_port}"
        raise MailError(f"the mail server {where} did not take the mail") from exc


def send_code(config: Settings, to: str, code: str, minutes: int) -> None:
    """The one-time code mail a customer gets when the chat needs proof that it is them."""
    body = (
        f"Hello,\n\nyour Kefu code is {code}\n\n"
        f"Type it in the chat to confirm it's you. It works once, for {minutes} minutes.\n\n"
        "If you didn't ask for it, you can ignore this e-mail: nobody can see your orders without it.\n\n"
        "Kefu support\n"
    )
    send(config, to, f"Your code: {code}", body)
