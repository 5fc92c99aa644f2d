"""The watchdog: restarts a process that is alive but not serving, and one supervisord gave up on."""

from __future__ import annotations

import time
from typing import Any

from bot.settings import Settings
from bot.watchdog import FAILURES_BEFORE_RESTART, GRACE_SECONDS, Watchdog, Watched, split_name


class FakeSupervisor:
    """supervisord's XML-RPC methods the watchdog uses, recording what it was asked to do."""

    def __init__(self, infos: list[dict[str, Any]]) -> None:
        self.infos = {info["name"]: info for info in infos}
        self.calls: list[tuple[str, str]] = []

    def getAllProcessInfo(self) -> list[dict[str, Any]]:  # noqa: N802 (supervisord's name)
        return list(self.infos.values())

    def getProcessInfo(self, name: str) -> dict[str, Any]:  # noqa: N802
        return self.infos[name]

    def stopProcess(self, name: str, wait: bool) -> bool:  # noqa: N802
        self.calls.append(("stop", name))
        return True

    def startProcess(self, name: str, wait: bool) -> bool:  # noqa: N802
        self.calls.append(("start", name))
        return True


def watchdog(infos: list[dict[str, Any]], healthy: dict[str, bool]) -> tuple[Watchdog, FakeSupervisor]:
    dog = Watchdog("unix:///nonexistent.sock", Settings(_env_file=None))  # type: ignore[call-arg]
    fake = FakeSupervisor(infos)
    dog.supervisor = fake  # type: ignore[assignment]

    def check_for(name: str):  # type: ignore[no-untyped-def]
        async def check() -> bool:
            return healthy[name]

        return check

    for info in infos:
        kind, _ = split_name(info["name"])
        dog.watched[info["name"]] = Watched(info["name"], kind, check_for(info["name"]))
    return dog, fake


def running(name: str, started: float) -> dict[str, Any]:
    return {"name": name, "statename": "RUNNING", "start": started}


async def test_an_action_server_failing_its_checks_is_restarted_and_a_healthy_rasa_is_not() -> None:
    long_ago = time.time() - 600
    dog, fake = watchdog(
        [running("actions", long_ago), running("rasa", long_ago)], {"actions": False, "rasa": True}
    )
    try:
        for _ in range(FAILURES_BEFORE_RESTART["actions"] - 1):
            await dog.round()
        assert fake.calls == []  # one bad check is not enough
        await dog.round()
        assert fake.calls == [("stop", "actions"), ("start", "actions")]
    finally:
        await dog.aclose()


async def test_rasa_loading_its_model_is_left_alone() -> None:
    dog, fake = watchdog([running("rasa", time.time() - GRACE_SECONDS["rasa"] / 2)], {"rasa": False})
    try:
        for _ in range(FAILURES_BEFORE_RESTART["rasa"] + 2):
            await dog.round()
        assert fake.calls == []
    finally:
        await dog.aclose()


async def test_a_process_supervisord_gave_up_on_is_started_again_after_a_pause() -> None:
    dog, fake = watchdog([{"name": "gateway2", "statename": "FATAL", "start": 0}], {"gateway2": False})
    try:
        await dog.round()
        assert fake.calls == []  # not at once: whatever failed its starts may need a moment
        dog.watched["gateway2"].fatal_since = time.time() - 60
        await dog.round()
        assert fake.calls == [("start", "gateway2")]
    finally:
        await dog.aclose()


def test_replica_names_map_to_their_kind_and_index() -> None:
    assert split_name("rasa") == ("rasa", 0)
    assert split_name("actions2") == ("actions", 1)
