"""A local mail sink for development and tests: an SMTP server that keeps every mail it receives as a
file in a folder, instead of delivering it.

    .venv/bin/python -m bot.mailsink [--host 127.0.0.1] [--port 8025] [--dir var/mail]

`make run` starts it (smtp_host/smtp_port point at it by default); read the mails in var/mail/, newest
last. In production, point smtp_* at your real mail server instead and don't run this.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from bot.settings import get_settings

logger = logging.getLogger("kefu.mailsink")


class KeepInFolder:
    """aiosmtpd handler: each accepted mail becomes one .eml file, readable by its owner only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{next(self._numbers):04d}.eml"
        path = self.folder / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(envelope.content)
        logger.info("kept a mail in %s", path)
        return "250 Message accepted"


def serve(host: str, port: int, folder: Path) -> None:
    controller = Controller(KeepInFolder(folder), hostname=host, port=port)
    controller.start()
    logger.info("mail sink on %s:%s, keeping mails in %s", host, port, folder)
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    config = get_settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=config.smtp_host)
    parser.add_argument("--port", type=int, default=config.smtp_port)
    parser.add_argument("--dir", default=config.mail_sink_dir)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if config.kefu_env == "production":
        # Production mails go to the real server in SMTP_HOST; `make run` still starts this process,
        # which then only waits to be stopped.
        logger.info("production: no local mail sink, mails go to %s:%s", config.smtp_host, config.smtp_port)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        return
    serve(args.host, args.port, Path(args.dir))


if __name__ == "__main__":
    main()
