"""Kefu's production shape on loopback: N gateways, N Rasa servers and N action servers, on SQLite or
PostgreSQL, with or without Redis, each process started on its own so that a test can stop one.

The commands are the lines of the Procfile that `make run` writes for replicas (bot/processes.py);
each runs in its own process group with its own log. PostgreSQL and Redis are the ones this machine
runs (tests/support/services.py says how to point the tests elsewhere); a test that stops Redis starts a
private redis-server first.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bot.processes import replicas_procfile
from bot.settings import PROJECT_ROOT, Settings
from tests.support.services import postgres_database, redis_namespace
from tests.support.stack import MODEL, free_port, free_ports_in_a_row, prepare_database, settings_env

START_TIMEOUT_SECONDS = 300


@dataclass
class Process:
    """One line of the Procfile, started alone with /bin/sh, so that a test can stop and start it."""

    name: str
    command: str
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if not self.running:
            return
        assert self.popen is not None
        os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()

    def kill(self) -> None:
        """Without warning, as a crash or the OOM killer would."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Cluster:
    settings: Settings
    workdir: Path
    processes: dict[str, Process] = field(default_factory=dict)

    @property
    def gateway_urls(self) -> list[str]:
        return [
            f"http://127.0.0.1:{self.settings.gateway_port + index}"
            for index in range(self.settings.gateway_replicas)
        ]

    def group(self, kind: str) -> list[Process]:
        """The processes of one kind: "rasa", "actions" or "gateway"."""
        return [p for name, p in self.processes.items() if name.rstrip("0123456789") == kind]

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {name}\n{p.log()[-tail:]}" for name, p in self.processes.items())

    def health(self, gateway: int = 0) -> dict:
        try:
            return httpx.get(f"{self.gateway_urls[gateway]}/healthz", timeout=5).json()
        except (httpx.HTTPError, ValueError) as error:
            return {"status": "no answer", "error": repr(error)}

    def wait_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        states: list[dict] = []
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.popen is not None and not process.running:
                    raise RuntimeError(f"{name} exited early:\n{process.log()[-4000:]}")
            states = [self.health(index) for index in range(len(self.gateway_urls))]
            if all(state.get("status") == "ok" for state in states):
                return
            time.sleep(1)
        raise RuntimeError(f"not healthy after {timeout:.0f}s: {states}\n{self.logs()}")

    def stop_all(self) -> None:
        # Gateways first, so that nothing is sent to a Rasa that is already gone.
        for kind in ("gateway", "rasa", "actions"):
            for process in self.group(kind):
                process.stop(signal.SIGINT)


def cluster_settings(
    workdir: Path,
    *,
    replicas: int,
    database_url: str,
    tracker_store_url: str,
    redis_url: str = "",
    namespace: str = "kefu",
    **overrides: object,
) -> Settings:
    return Settings(
        database_url=database_url,
        tracker_store_url=tracker_store_url,
        redis_url=redis_url,
        redis_namespace=namespace,
        gateway_port=free_ports_in_a_row(replicas),
        gateway_replicas=replicas,
        rasa_url=",".join(f"http://127.0.0.1:{free_port()}" for _ in range(replicas)),
        action_server_url=",".join(f"http://127.0.0.1:{free_port()}" for _ in range(replicas)),
        rasa_token="cluster-test-token",
        _env_file=None,  # type: ignore[call-arg]
        **overrides,  # type: ignore[arg-type]
    )


def start_cluster(settings: Settings, workdir: Path, extra_env: dict[str, str] | None = None) -> Cluster:
    """Migrate and seed the database, then start every process of the replicas' Procfile."""
    if not MODEL.exists():
        raise RuntimeError(f"{MODEL} is missing: train it first with `make test` (or `make train`)")
    prepare_database(settings)
    env = {
        **settings_env(settings),
        "KB_WARM_UP": "false",
        # Every simulated customer comes from 127.0.0.1: the per-address limit would count them as one.
        "WEB_RATE_PER_ADDRESS_PER_MINUTE": "1000000",
        **(extra_env or {}),
    }
    cluster = Cluster(settings, workdir)
    for line in replicas_procfile(settings).splitlines():
        name, _, command = line.partition(":")
        process = Process(name, command.strip(), env, workdir / f"{name}.log")
        cluster.processes[name] = process
    # Rasa loads its model for a while; start it first so the gateways find it sooner.
    for kind in ("rasa", "actions", "gateway"):
        for process in cluster.group(kind):
            process.start()
    return cluster


@contextmanager
def running_cluster(
    workdir: Path,
    *,
    replicas: int = 2,
    postgres: bool = True,
    redis_url: str | None = None,
    extra_env: dict[str, str] | None = None,
    **overrides: object,
) -> Iterator[Cluster]:
    """A healthy cluster for the length of the block; its databases are dropped afterwards.

    `redis_url=None` uses the machine's Redis (tests/support/services.py) with a namespace of its own;
    "" runs without Redis.
    """
    with ExitStack() as stack:
        if postgres:
            database_url = stack.enter_context(postgres_database("crm"))
            tracker_store_url = stack.enter_context(postgres_database("tracker"))
        else:
            database_url = f"sqlite:///{workdir / 'kefu.db'}"
            tracker_store_url = f"sqlite:///{workdir / 'tracker.db'}"
        if redis_url is None:
            from tests.support.services import REDIS_URL, require_redis

            require_redis(REDIS_URL)
            redis_url = REDIS_URL
        settings = cluster_settings(
            workdir,
            replicas=replicas,
            database_url=database_url,
            tracker_store_url=tracker_store_url,
            redis_url=redis_url,
            namespace=redis_namespace(),
            **overrides,
        )
        cluster = start_cluster(settings, workdir, extra_env)
        stack.callback(cluster.stop_all)
        cluster.wait_healthy()
        yield cluster
