"""Restarts a process that is alive but not serving: supervisord only sees processes that exit.

Run by supervisord beside the Procfile's processes (`bot.supervise`). Every few seconds it asks each
one the question its clients depend on: Rasa, whether it has a model (`/status`); the action server,
whether it answers `/health` (its manager can outlive the worker that serves); the gateway, whether
its event loop answers `/healthz` at all (503 "degraded" still means it is serving). After
`FAILURES_BEFORE_RESTART` failed checks in a row it restarts that process through supervisord. A
process is not judged during its first seconds (Rasa loads its model for ~30 s), and one that
supervisord gave up on (FATAL) is started again after a growing pause.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import xmlrpc.client
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from supervisor.xmlrpc import SupervisorTransport

from bot.rasa_client import RasaClient
from bot.settings import Settings, get_settings

logger = logging.getLogger("kefu.watchdog")

CHECK_SECONDS = 1.0
# Failed checks in a row before a restart, and how long a check waits. An action server's health
# answer takes milliseconds, so it is judged fast; a Rasa restart costs a model load (~30 s), so
# Rasa gets more patience; the gateway only has to answer at all.
FAILURES_BEFORE_RESTART = {"rasa": 5, "actions": 2, "gateway": 3}
CHECK_TIMEOUT_SECONDS = {"rasa": 5.0, "actions": 1.5, "gateway": 10.0}
# Not judged this long after a start: time to load and listen.
GRACE_SECONDS = {"rasa": 180.0, "actions": 45.0, "gateway": 45.0}
# A process supervisord gave up on is started again after these pauses, the last one repeating.
FATAL_PAUSES = (5.0, 15.0, 30.0, 60.0, 120.0)

Check = Callable[[], Awaitable[bool]]


@dataclass
class Watched:
    name: str
    kind: str
    check: Check
    failures: int = 0
    fatal_restarts: int = 0
    fatal_since: float | None = None
    restarts: list[float] = field(default_factory=list)


def split_name(name: str) -> tuple[str, int]:
    """`rasa` -> ("rasa", 0); `actions2` -> ("actions", 1): the kind and the replica's index."""
    kind = name.rstrip("0123456789")
    number = name[len(kind) :]
    return kind, int(number) - 1 if number else 0


def checks_for(
    settings: Settings, rasa: RasaClient, http: httpx.AsyncClient
) -> dict[str, Callable[[int], Check]]:
    """For each kind of process, the health check of its replica number `index`."""

    def rasa_check(index: int) -> Check:
        async def check() -> bool:
            status = await rasa.replica_status(settings.rasa_urls[index], CHECK_TIMEOUT_SECONDS["rasa"])
            return bool(status["ok"])

        return check

    def actions_check(index: int) -> Check:
        async def check() -> bool:
            url = settings.action_server_urls[index]
            return await rasa.action_server_answers(url, CHECK_TIMEOUT_SECONDS["actions"])

        return check

    host = "127.0.0.1" if settings.gateway_host in ("0.0.0.0", "::", "") else settings.gateway_host

    def gateway_check(index: int) -> Check:
        url = f"http://{host}:{settings.gateway_port + index}/healthz"

        async def check() -> bool:
            try:
                await http.get(url, timeout=CHECK_TIMEOUT_SECONDS["gateway"])
            except httpx.HTTPError:
                return False
            return True

        return check

    return {"rasa": rasa_check, "actions": actions_check, "gateway": gateway_check}


class Watchdog:
    """Health checks of the supervised processes, and restarts through supervisord's XML-RPC."""

    def __init__(self, control_url: str, settings: Settings) -> None:
        self.supervisor = xmlrpc.client.ServerProxy(
            "http://127.0.0.1", transport=SupervisorTransport(None, None, control_url)
        ).supervisor
        self.settings = settings
        self.rasa = RasaClient(settings)
        self.http = httpx.AsyncClient()
        self.watched: dict[str, Watched] = {}

    async def aclose(self) -> None:
        await self.rasa.aclose()
        await self.http.aclose()

    def _processes(self) -> list[dict[str, Any]]:
        return list(self.supervisor.getAllProcessInfo())

    def _restart(self, name: str) -> None:
        if self.supervisor.getProcessInfo(name)["statename"] in ("RUNNING", "STARTING", "BACKOFF"):
            self.supervisor.stopProcess(name, True)
        self.supervisor.startProcess(name, False)

    async def round(self) -> None:
        """One round of checks over every supervised process."""
        infos = await asyncio.to_thread(self._processes)
        kinds = checks_for(self.settings, self.rasa, self.http)
        for info in infos:
            name = str(info["name"])
            kind, index = split_name(name)
            if kind not in kinds:
                continue  # the watchdog itself
            watched = self.watched.get(name)
            if watched is None:
                watched = self.watched[name] = Watched(name, kind, kinds[kind](index))
            await self._judge(watched, info)

    async def _judge(self, watched: Watched, info: dict[str, Any]) -> None:
        state = info["statename"]
        now = time.time()
        if state == "FATAL":
            watched.fatal_since = watched.fatal_since or now
            pause = FATAL_PAUSES[min(watched.fatal_restarts, len(FATAL_PAUSES) - 1)]
            if now - watched.fatal_since >= pause:
                logger.warning("%s: supervisord gave up on it; starting it again", watched.name)
                watched.fatal_restarts += 1
                watched.fatal_since = None
                await asyncio.to_thread(self.supervisor.startProcess, watched.name, False)
            return
        if state != "RUNNING" or now - float(info["start"]) < GRACE_SECONDS[watched.kind]:
            watched.failures = 0
            return
        watched.fatal_restarts = 0
        if await watched.check():
            watched.failures = 0
            return
        watched.failures += 1
        if watched.failures < FAILURES_BEFORE_RESTART[watched.kind]:
            return
        logger.warning(
            "%s: running but failed %d health checks in a row; restarting it", watched.name, watched.failures
        )
        watched.failures = 0
        watched.restarts.append(now)
        await asyncio.to_thread(self._restart, watched.name)

    async def run(self) -> None:
        while True:
            try:
                await self.round()
            except (OSError, xmlrpc.client.Fault) as error:
                # supervisord is starting or stopping: nothing to do this round.
                logger.info("supervisord not reachable: %s", error)
            await asyncio.sleep(CHECK_SECONDS)


async def _main(control_url: str) -> None:
    watchdog = Watchdog(control_url, get_settings())
    try:
        await watchdog.run()
    finally:
        await watchdog.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bot.watchdog", description=__doc__.splitlines()[0])
    parser.add_argument("--control", required=True, help="supervisord's control socket, unix:///...")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per check would bury the restarts
    asyncio.run(_main(args.control))


if __name__ == "__main__":
    main()
