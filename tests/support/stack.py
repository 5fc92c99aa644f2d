"""Starts Kefu's real processes from the Procfile under supervisord, as `make run` does, on free ports."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import uvicorn
from starlette.types import ASGIApp

from bot.processes import process_env
from bot.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from tests.support.mail import MailSink

MODEL = PROJECT_ROOT / "models" / "kefu.tar.gz"
START_TIMEOUT_SECONDS = 240


def _ephemeral_floor() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports for the stack's servers come from below the kernel's ephemeral range: a port the kernel hands
# out for bind(0) or for an outgoing connection (the many client sockets a load test opens) could be
# taken between choosing it and the server binding it, which is what failed a replicated gateway once.
_PORT_FLOOR, _PORT_CEILING = 20000, _ephemeral_floor()
_handed_out: set[int] = set()
_choose = random.SystemRandom()


def free_port() -> int:
    return free_ports_in_a_row(1)


def free_ports_in_a_row(count: int) -> int:
    """A port such that it and the `count - 1` after it are free (replicated gateways take
    consecutive ports); never one this process handed out before."""
    for _ in range(500):
        start = _choose.randrange(_PORT_FLOOR, _PORT_CEILING - count)
        ports = range(start, start + count)
        if not _handed_out.intersection(ports) and all(_bindable(port) for port in ports):
            _handed_out.update(ports)
            return start
    raise RuntimeError(f"no {count} consecutive free ports on loopback")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Stack:
    settings: Settings
    gateway_url: str
    log_path: Path  # supervisord's own output; each process logs to log_dir/<name>.log
    process: subprocess.Popen[bytes]
    log_dir: Path
    run_dir: Path

    def mail_sink(self) -> MailSink:
        """The stack's local mail sink (bot/mailsink.py), to read the mails it kept."""
        from tests.support.mail import MailSink  # noqa: PLC0415 (tests.support.mail uses free_port)

        return MailSink(self.settings.smtp_host, self.settings.smtp_port, Path(self.settings.mail_sink_dir))

    def latest_code(self, to: str | None = None, timeout: float = 10) -> str:
        """The one-time code in the newest code mail (to `to`), waiting a little for it to arrive."""
        return self.mail_sink().latest_code(to, timeout)

    def log(self) -> str:
        """What supervisord and every process it runs printed, each line after its process's name."""
        parts = [self.log_path.read_text(errors="replace")]
        for path in sorted(self.log_dir.glob("*.log")):
            lines = path.read_text(errors="replace").splitlines()
            parts.append("\n".join(f"{path.stem} | {line}" for line in lines))
        return "\n".join(parts)

    def control(self, *args: str) -> str:
        """`supervisorctl ARGS` against this stack (status, restart NAME, pid NAME ...)."""
        result = subprocess.run(
            [
                str(PROJECT_ROOT / ".venv" / "bin" / "supervisorctl"),
                "-c",
                str(self.run_dir / "supervisord.conf"),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout


def stack_settings(workdir: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{workdir / 'kefu.db'}",
        tracker_store_url=f"sqlite:///{workdir / 'tracker.db'}",
        gateway_port=free_port(),
        rasa_url=f"http://127.0.0.1:{free_port()}",
        action_server_url=f"http://127.0.0.1:{free_port()}",
        rasa_token="e2e-test-token",
        smtp_port=free_port(),
        mail_sink_dir=str(workdir / "mail"),
        # Every conversation of a suite shares the demo customers: the per-hour cap is tested alone.
        one_time_codes_per_hour=1000,
    )


def settings_env(settings: Settings) -> dict[str, str]:
    """Environment that makes every Kefu process read these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "PYTEST_", "TELEGRAM_"))}
    env.update(
        DATABASE_URL=settings.database_url,
        TRACKER_STORE_URL=settings.tracker_store_url,
        RASA_URL=settings.rasa_url,
        SECRET_KEY=settings.secret_key,
        RASA_TOKEN=settings.rasa_token,
        ACTION_SERVER_URL=settings.action_server_url,
        GATEWAY_PORT=str(settings.gateway_port),
        SCHEDULER_INTERVAL_SECONDS=str(settings.scheduler_interval_seconds),
        SURVEY_QUIET_SECONDS=str(settings.survey_quiet_seconds),
        TELEGRAM_BOT_TOKEN=settings.telegram_bot_token,
        TELEGRAM_MODE=settings.telegram_mode,
        TELEGRAM_WEBHOOK_URL=settings.telegram_webhook_url,
        TELEGRAM_WEBHOOK_SECRET=settings.telegram_webhook_secret,
        TELEGRAM_API_URL=settings.telegram_api_url,
        REDIS_URL=settings.redis_url,
        REDIS_NAMESPACE=settings.redis_namespace,
        GATEWAY_REPLICAS=str(settings.gateway_replicas),
        WEB_RATE_PER_MINUTE=str(settings.web_rate_per_minute),
        WEB_RATE_PER_ADDRESS_PER_MINUTE=str(settings.web_rate_per_address_per_minute),
        SMTP_HOST=settings.smtp_host,
        SMTP_PORT=str(settings.smtp_port),
        MAIL_SINK_DIR=settings.mail_sink_dir,
        ONE_TIME_CODES_PER_HOUR=str(settings.one_time_codes_per_hour),
        VERIFICATION_MAX_FAILURES_PER_ADDRESS=str(settings.verification_max_failures_per_address),
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="2",
    )
    env.update(process_env(settings))
    return env


def prepare_database(settings: Settings) -> None:
    env = settings_env(settings)
    kefu = str(PROJECT_ROOT / ".venv" / "bin" / "kefu")
    for args in (["db", "upgrade"], ["db", "seed"], ["kb", "import"]):
        subprocess.run([kefu, *args], env=env, cwd=PROJECT_ROOT, check=True, capture_output=True)


@contextmanager
def running_stack(
    workdir: Path, *processes: str, settings: Settings | None = None, procfile: Path | None = None
) -> Iterator[Stack]:
    """Run the Procfile (or some of its processes) under supervisord until the gateway answers /healthz."""
    if not MODEL.exists():
        raise RuntimeError(f"{MODEL} is missing: train it first with `make test` (or `make train`)")
    settings = settings or stack_settings(workdir)
    prepare_database(settings)
    log_path = workdir / f"supervisord-{settings.gateway_port}.out"
    log_dir, run_dir = workdir / f"log-{settings.gateway_port}", workdir / f"run-{settings.gateway_port}"
    command = [
        str(PROJECT_ROOT / ".venv" / "bin" / "python"), "-m", "bot.supervise",
        "--procfile", str(procfile or PROJECT_ROOT / "Procfile"),
        "--log-dir", str(log_dir), "--run-dir", str(run_dir), *processes,
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(settings, f"http://127.0.0.1:{settings.gateway_port}", log_path, process, log_dir, run_dir)
    try:
        wait_until_up(stack, need_all=not processes)
        yield stack
    finally:
        stop(process)


def wait_until_up(stack: Stack, need_all: bool) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    last = "no answer yet"
    while time.monotonic() < deadline:
        if stack.process.poll() is not None:
            raise RuntimeError(f"the processes exited early:\n{stack.log()[-4000:]}")
        try:
            response = httpx.get(f"{stack.gateway_url}/healthz", timeout=5)
            body = response.json()
            last = str(body)
            if response.status_code == 200 or (
                not need_all and body.get("rasa", {}).get("model_loaded") and body["database"]["ok"]
            ):
                return
        except httpx.HTTPError as error:
            last = repr(error)
        time.sleep(1)
    raise RuntimeError(f"not healthy after {START_TIMEOUT_SECONDS}s ({last}):\n{stack.log()[-4000:]}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user would; supervisord then stops every process it started."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextmanager
def console(stack: Stack, email: str, password: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the stack's consoles as `email`, with the CSRF header set."""
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        login = client.post("/api/auth/login", json={"email": email, "password": password})
        assert login.status_code == 200, login.text
        client.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        yield client


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run the ASGI `app` with uvicorn on a free loopback port in a thread of this process; its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the app did not start on loopback")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
