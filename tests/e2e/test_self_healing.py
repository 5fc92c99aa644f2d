"""Self-healing, as `make run` starts the stack: each part killed with SIGKILL while customers chat.

The same measurement as `make bench-faults`, shorter (3 customers). The bounds here are twice the
targets, for a busy CI machine; the benchmark reports against the targets themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.faults import KILLS, measure, target_of
from tests.support.stack import Stack, running_stack, stack_settings, stop

pytestmark = pytest.mark.rasa


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("self-healing")
    settings = stack_settings(workdir).model_copy(update={"web_rate_per_address_per_minute": 100_000})
    with running_stack(workdir, settings=settings) as running:
        yield running


def test_every_killed_part_comes_back_and_no_customer_message_is_lost(stack: Stack) -> None:
    results = measure(stack, customers=3, settle_seconds=5.0)
    for row in results["kills"]:
        limit = 2 * target_of(row["killed"])
        assert row["healthy_seconds"] is not None, f"not healthy again after killing {row['killed']}"
        assert row["healthy_seconds"] <= limit, row
        assert row["next_reply_seconds"] is not None and row["next_reply_seconds"] <= limit, row
    assert [row["killed"] for row in results["kills"]] == list(KILLS)
    assert results["lost"] == 0, results["lost_because"]
    assert results["answered_twice"] == 0
    status = stack.control("status")
    for name in ("rasa", "actions", "gateway", "watchdog"):
        assert f"{name} " in status and "RUNNING" in status.split(f"{name} ", 1)[1].splitlines()[0], status


def test_the_watchdog_restarted_the_action_server_that_lost_its_worker(stack: Stack) -> None:
    log = (stack.log_dir / "watchdog.log").read_text()
    assert "actions: running but failed" in log and "restarting it" in log


def test_ctrl_c_stops_every_process(stack: Stack) -> None:
    pids = [int(stack.control("pid", name).strip()) for name in ("rasa", "actions", "gateway", "watchdog")]
    stop(stack.process)  # what the fixture would do at the end: Ctrl-C, as a user would
    assert stack.process.returncode is not None, "supervisord still runs"
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == [], "a process outlived Ctrl-C"
