"""What survives when DIET and the regexes both report entities (kefu_nlu/entities.py)."""

from __future__ import annotations

import re

import yaml

from bot.settings import PROJECT_ROOT
from kefu_nlu.entities import keep_entities


def formats() -> dict[str, list[re.Pattern[str]]]:
    """The regexes of data/, as Rasa hands them to the filter."""
    found: dict[str, list[re.Pattern[str]]] = {}
    for path in sorted((PROJECT_ROOT / "data").glob("*.yml")):
        for item in yaml.safe_load(path.read_text()).get("nlu", []):
            if "regex" in item:
                for line in item["examples"].splitlines():
                    if line.strip().startswith("- "):
                        pattern = line.strip()[2:]
                        found.setdefault(item["regex"], []).append(re.compile(pattern, re.IGNORECASE))
    return found


def entity(
    kind: str, text: str, message: str, extractor: str = "DIETClassifier", last: bool = False
) -> dict[str, object]:
    start = message.rindex(text) if last else message.index(text)
    return {"entity": kind, "value": text, "start": start, "end": start + len(text), "extractor": extractor}


def test_a_number_that_is_not_an_order_number_is_dropped_and_the_real_one_reported_once() -> None:
    message = "ordered 2 chairs, order 100482, only got 1"
    found = [
        entity("order_number", "2", message),
        entity("order_number", "100482", message),
        entity("order_number", "100482", message, "RegexEntityExtractor"),
        entity("order_number", "1", message, last=True),
    ]
    kept = keep_entities(found, formats())
    assert [(e["value"], e["extractor"]) for e in kept] == [("100482", "RegexEntityExtractor")]


def test_the_phone_number_wins_over_the_order_number_inside_it() -> None:
    message = "my mobile is 07911 123456"
    found = [
        entity("phone", "07911 123456", message, "RegexEntityExtractor"),
        entity("order_number", "123456", message, "RegexEntityExtractor"),
    ]
    assert [e["entity"] for e in keep_entities(found, formats())] == ["phone"]


def test_two_different_entities_side_by_side_are_both_kept_in_order() -> None:
    message = "ticket KF-000730, call me at +44 7700 900123 or ana@mail.example"
    found = [
        entity("email", "ana@mail.example", message),
        entity("ticket_reference", "KF-000730", message, "RegexEntityExtractor"),
        entity("phone", "+44 7700 900123", message, "RegexEntityExtractor"),
    ]
    kept = keep_entities(found, formats())
    assert [e["entity"] for e in kept] == ["email", "ticket_reference", "phone"]


def test_entities_without_a_format_pass_untouched() -> None:
    found = [{"entity": "complaint_category", "value": "damaged", "extractor": "DIETClassifier"}]
    assert keep_entities(found, formats()) == found
