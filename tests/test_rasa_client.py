"""The gateway's Rasa client: what resuming a conversation after a person had it clears."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.rasa_client import DIALOGUE_SLOTS

DOMAIN = yaml.safe_load((Path(__file__).parents[1] / "domain.yml").read_text())


def test_resuming_clears_every_form_question_and_only_real_slots() -> None:
    form_slots = {slot for form in DOMAIN["forms"].values() for slot in form["required_slots"]}
    assert form_slots <= set(DIALOGUE_SLOTS)
    assert set(DIALOGUE_SLOTS) - {"requested_slot"} <= set(DOMAIN["slots"])
