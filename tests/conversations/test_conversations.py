"""The conversation suite: every conversation in tests/conversations/*.yml, played through the real
gateway, Rasa, action server and database (one stack for the module, a fresh chat for each).

The conversations are written the way shoppers type (typos, two things at once, changing their mind)
and check facts in the replies (references, order numbers, an apology, a person offered), plus the
tickets each conversation opened in the CRM. See tests/support/conversations.py for the format.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.conversations import load_conversations, play
from tests.support.stack import Stack, running_stack, stack_settings

pytestmark = pytest.mark.rasa

CONVERSATIONS = load_conversations()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("conversations")
    # Surveys and waiting notices are checked every second; the widget's per-address limit is raised
    # because every conversation comes from this one address.
    settings = stack_settings(workdir).model_copy(
        update={"scheduler_interval_seconds": 1.0, "web_rate_per_address_per_minute": 10_000}
    )
    with running_stack(workdir, settings=settings) as running:
        yield running


@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=[c["name"] for c in CONVERSATIONS])
def test_conversation(stack: Stack, conversation: dict[str, Any]) -> None:
    name = re.sub(r"[^A-Za-z0-9_-]", "-", conversation["name"])[:80]
    play(stack, conversation, f"conv-{name}-{uuid.uuid4().hex[:8]}")
