"""The load benchmark's own arithmetic and report, on made-up turn records: no cluster is started."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks import load
from benchmarks.latency import percentile
from benchmarks.load import CpuSnapshot, Turn, TurnRecord
from tests.support.stack import serve


def record(kind: str, ended: float, latency: float, outcome: str = load.OK) -> TurnRecord:
    return TurnRecord(
        kind, ended - latency, ended, outcome, gateway=0, detail="why" if outcome != load.OK else ""
    )


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == pytest.approx(50.5)
    assert percentile(values, 0.95) == pytest.approx(95.05)
    assert percentile(values, 0.99) == pytest.approx(99.01)
    assert percentile([7.0], 0.95) == 7.0


def test_window_counts_only_turns_that_ended_inside_it() -> None:
    records = [
        record("greeting", ended=9.9, latency=0.1),  # warm-up: before the window
        *[record("question", ended=10 + i * 0.5, latency=0.2) for i in range(40)],  # 10.0 .. 29.5
        record("contact", ended=30.0, latency=0.3),  # the window is [10, 30): just outside
    ]
    stats = load.window_stats(records, 10.0, 30.0)
    assert stats["replies"] == 40
    assert stats["replies_per_s"] == 2.0
    assert stats["latency"]["count"] == 40
    assert stats["latency"]["p95_ms"] == pytest.approx(200.0)
    assert list(stats["by_turn"]) == ["question"]
    assert stats["replies_per_s_by_bucket"] == [2.0, 2.0]
    assert stats["errors"] == 0 and stats["issue_samples"] == []


def test_errors_are_not_replies_but_their_waiting_counts_in_the_latencies() -> None:
    records = [
        record("greeting", 1.0, 0.1),
        record("question", 2.0, 0.1, load.UNEXPECTED),
        record("contact", 3.0, 9.0, "fallback"),
        record("goodbye", 4.0, 30.0, "timeout"),
        record("goodbye", 5.0, 0.1),
    ]
    stats = load.window_stats(records, 0.0, 10.0)
    assert stats["replies"] == 3  # an unexpected answer is still the bot answering
    assert stats["unexpected_answers"] == 1
    assert stats["errors"] == 2
    assert stats["errors_by_kind"] == {"timeout": 1, "fallback": 1}
    assert stats["conversations_completed"] == 1
    assert stats["latency"]["max_ms"] == pytest.approx(30000.0)
    assert len(stats["issue_samples"]) == 3
    # Turn kinds in the order a conversation has them.
    assert list(stats["by_turn"]) == ["greeting", "question", "contact", "goodbye"]


def body(*messages: dict[str, Any], mode: str = "bot") -> dict[str, Any]:
    return {"mode": mode, "messages": list(messages)}


def test_answers_are_judged_as_a_customer_would() -> None:
    question = Turn("question", "where is my order 100001", expect_text="e-mail")
    asked = {"text": "What's the e-mail or phone number you ordered with?", "metadata": {}}
    assert load.judge(question, body(asked)) == (load.OK, "")
    assert load.judge(question, body({"text": "Hi!", "metadata": {}}))[0] == load.UNEXPECTED
    assert load.judge(question, body())[0] == load.UNEXPECTED
    assert load.judge(question, body(asked, mode="pending_agent"))[0] == load.UNEXPECTED
    fallback = {"text": "Sorry, I can't answer right now", "metadata": {"notice": "bot_unavailable"}}
    assert load.judge(question, body(fallback))[0] == "fallback"

    kb = Turn("kb_question", load.KB_QUESTION, expect_article=load.KB_ARTICLE)
    answer = {"text": "We deliver to ...", "metadata": {"kb_article": load.KB_ARTICLE}}
    assert load.judge(kb, body(answer, {"text": "Did this solve it?", "metadata": {}}))[0] == load.OK
    assert load.judge(kb, body({"text": "We deliver to ...", "metadata": {}}))[0] == load.UNEXPECTED


def test_a_conversation_tracks_a_showcase_order_with_its_own_e_mail() -> None:
    turns = load.conversation_turns(3)
    assert [t.kind for t in turns] == ["greeting", "question", "contact", "kb_question", "goodbye"]
    number, email = load.SHOWCASE_ORDERS[3]
    assert number in turns[1].text and turns[2].text == email and turns[2].expect_text == f"#{number}"


def test_cpu_usage_is_per_window_per_core_and_per_reply() -> None:
    before = CpuSnapshot(
        at=100.0, per_group={"rasa1": 50.0, "gateway1": 10.0}, machine_busy=1000, machine_idle=500
    )
    after = CpuSnapshot(
        at=160.0, per_group={"rasa1": 110.0, "gateway1": 16.0}, machine_busy=1090, machine_idle=530
    )
    usage = load.cpu_usage(before, after, replies=1200)
    assert usage["processes"]["rasa1"] == {
        "cpu_seconds": 60.0,
        "percent_of_one_core": 100.0,
        "cpu_ms_per_reply": 50.0,
    }
    assert usage["processes"]["gateway1"]["percent_of_one_core"] == 10.0
    assert usage["machine_busy_percent"] == 75.0
    assert usage["other_work_cpu_seconds"] == 24.0  # 90 busy seconds, 66 of them ours
    assert load.cpu_usage(before, after, replies=0)["processes"]["rasa1"]["cpu_ms_per_reply"] is None


def level(replies_per_s: float, p95: float, errors: int = 0) -> dict[str, Any]:
    return {"replies_per_s": replies_per_s, "latency": {"p95_ms": p95}, "errors": errors}


def test_targets_at_fifty_customers_and_two_replicas_against_one() -> None:
    configs = {
        "sqlite": {"skipped": "needs nothing, just an example"},
        "postgres": {
            "levels": {"10": level(16.0, 900.0), "50": level(17.0, 3000.0)},
            "paced_levels": {"50": level(17.0, 2500.0)},
        },
        "replicas": {
            "levels": {"10": level(18.0, 800.0), "50": level(31.0, 1600.0)},
            "paced_levels": {"50": level(31.2, 390.0, errors=1)},
        },
    }
    targets = {t["name"]: t["pass"] for t in load.evaluate_targets(configs)}
    assert targets["1 replica, SQLite, 50 customers paced"] is False
    assert targets["1 replica, PostgreSQL, 50 customers paced: replies/s"] is False
    assert targets["1 replica, PostgreSQL, 50 customers closed: replies/s"] is False
    assert targets["2 replicas, PostgreSQL + Redis, 50 customers paced: replies/s"] is True
    assert targets["2 replicas, PostgreSQL + Redis, 50 customers paced: p95"] is True
    assert targets["2 replicas, PostgreSQL + Redis, 50 customers paced: errors"] is False
    # Back to back, p95 follows from the number of customers and the rate: only rate and errors count.
    assert targets["2 replicas, PostgreSQL + Redis, 50 customers closed: replies/s"] is True
    assert targets["2 replicas, PostgreSQL + Redis, 50 customers closed: errors"] is True
    assert "2 replicas, PostgreSQL + Redis, 50 customers closed: p95" not in targets
    assert targets["2 replicas >= 1 (PostgreSQL), 10 customers closed: replies/s and p95"] is True
    assert targets["2 replicas >= 1 (PostgreSQL), 50 customers closed: replies/s and p95"] is True
    one_error_more = targets["2 replicas >= 1 (PostgreSQL), 50 customers paced: replies/s and p95"]
    assert one_error_more is False
    # A mode that was not run is a target not met, not one left out.
    only_closed = {"postgres": {"levels": {"50": level(31.0, 1600.0)}}}
    assert {t["name"]: t["pass"] for t in load.evaluate_targets(only_closed)} == {
        "1 replica, PostgreSQL, 50 customers paced": False,
        "1 replica, PostgreSQL, 50 customers closed: replies/s": True,
        "1 replica, PostgreSQL, 50 customers closed: errors": True,
    }


async def answer_after_50_ms(request: Request) -> JSONResponse:
    await asyncio.sleep(0.05)
    return JSONResponse({"mode": "bot", "messages": [{"text": "ok", "metadata": {}}]})


def slow_gateway() -> Starlette:
    """A stand-in gateway that answers every web message after 50 ms."""
    return Starlette(routes=[Route("/api/web/messages", answer_after_50_ms, methods=["POST"])])


async def test_paced_customers_send_at_their_pace_and_closed_ones_back_to_back() -> None:
    with serve(slow_gateway()) as url:
        closed, start, end = await load.run_customers([url], 4, 0.3, 2.0, "test")
        paced, p_start, p_end = await load.run_customers([url], 4, 0.3, 2.0, "test", pace_seconds=0.5)
    closed_stats = load.window_stats(closed, start, end)
    paced_stats = load.window_stats(paced, p_start, p_end)
    # 4 customers and 50 ms a reply: back to back about 80 a second less the overheads; at one
    # message every 0.5 s each, 8 a second, each answered in about 50 ms.
    assert 30 <= closed_stats["replies_per_s"] <= 80
    assert 6 <= paced_stats["replies_per_s"] <= 10
    assert closed_stats["errors"] == paced_stats["errors"] == 0
    assert paced_stats["latency"]["p95_ms"] < 200


def test_report_and_json_hold_every_configuration_and_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [record(t.kind, 1.0 + i, 0.12) for i, t in enumerate(load.conversation_turns(0))]
    stats = load.window_stats(records, 0.0, 10.0)
    snapshot = CpuSnapshot(at=0.0, per_group={"rasa1": 0.0}, machine_busy=0, machine_idle=0)
    later = CpuSnapshot(at=10.0, per_group={"rasa1": 5.0}, machine_busy=8, machine_idle=12)
    measured = {
        "customers": 10,
        **stats,
        "cpu": load.cpu_usage(snapshot, later, stats["replies"]),
        "memory": {"rasa1": {"rss_mb": 1100.0, "peak_rss_mb": 1150.0, "processes": 1}},
        "load_average_before": (1.0, 1.0, 1.0),
        "load_average_after": (2.0, 1.5, 1.0),
    }
    configs = {"sqlite": {"levels": {"10": measured}}, "postgres": {"skipped": "needs PostgreSQL"}}
    results = {
        "machine": {
            "timestamp": "2026-12-01T00:00:00+00:00",
            "nproc": 2,
            "cpu_model": "test",
            "memory_total_mb": 4096,
            "load_average_at_start": (1.0, 1.0, 1.0),
        },
        "settings": {"quick": True, "warmup_seconds": 5.0, "window_seconds": 10.0},
        "configs": configs,
        "targets": load.evaluate_targets(configs),
        "load_average_at_end": (2.0, 1.5, 1.0),
    }
    load.print_report(results)
    out = capsys.readouterr().out
    assert "1 replica, SQLite" in out and "needs PostgreSQL" in out and "rasa1" in out
    assert "50.0%" in out  # 5 CPU seconds in 10 s

    path = tmp_path / "load.json"
    path.write_text(json.dumps(results))
    level_json = json.loads(path.read_text())["configs"]["sqlite"]["levels"]["10"]
    assert level_json["replies"] == 5 and level_json["replies_per_s"] == 0.5
    assert {"p50_ms", "p95_ms", "p99_ms"} <= set(level_json["latency"])
    assert level_json["cpu"]["processes"]["rasa1"]["cpu_seconds"] == 5.0
    assert level_json["memory"]["rasa1"]["peak_rss_mb"] == 1150.0
