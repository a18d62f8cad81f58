"""Sends verification mails over SMTP, or writes them to the log when no SMTP host is configured
(development: the code is then read from the log)."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

log = logging.getLogger(__name__)


class Mailer:
    def __init__(self, host: str, port: int, sender: str) -> None:
        self.host = host
        self.port = port
        self.sender = sender

    async def send_code(self, to: str, code: str, ttl_seconds: int) -> None:
        """Raises OSError/SMTPException when the mail could not be handed over."""
        if not self.host:
            log.warning("SMTP not configured: verification code for %s is %s", to, code)
            return
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = "Your Labelhive verification code"
        message.set_content(
            f"Your verification code is {code}. It expires in {ttl_seconds // 60} minutes.\n"
            "If you did not ask for it, ignore this mail."
        )
        await aiosmtplib.send(message, hostname=self.host, port=self.port, timeout=10)
