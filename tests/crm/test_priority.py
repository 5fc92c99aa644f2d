"""Service follows value: the one rule by which lifetime value brings a person in sooner."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bot.crm.models import LifecycleStage, ValueTier
from bot.crm.priority import complaint_goes_to_a_person, high_value_floor

S = LifecycleStage


def test_high_value_floor_is_the_smallest_value_in_the_top_fifth() -> None:
    values = [Decimal(v) for v in (0, 0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]
    # Ten valued customers (zeros are not valued): the top fifth is 100 and 90, so the floor is 90.
    assert high_value_floor(values) == Decimal(90)
    assert high_value_floor([Decimal(5)]) == Decimal(5)  # one customer is their own top fifth
    assert high_value_floor([Decimal(0)]) is None


@pytest.mark.parametrize(
    ("tier", "value", "at_risk", "stage", "expected"),
    [
        (ValueTier.VIP, None, False, S.MATURE, "vip_complaint"),  # VIPs always, valued or not
        (ValueTier.KEY, Decimal(95), True, S.GROWING, "valuable_at_risk"),  # top fifth, at risk
        (ValueTier.REGULAR, Decimal(90), False, S.DECLINING, "valuable_at_risk"),  # the floor counts
        (ValueTier.KEY, Decimal(95), False, S.MATURE, None),  # valuable but content: the SLA decides
        (ValueTier.KEY, Decimal(89), True, S.GROWING, None),  # at risk but below the top fifth
        (ValueTier.REGULAR, None, True, S.DECLINING, None),  # not valued yet
    ],
)
def test_who_gets_a_person_at_once(
    tier: ValueTier, value: Decimal | None, at_risk: bool, stage: LifecycleStage, expected: str | None
) -> None:
    assert complaint_goes_to_a_person(tier, value, Decimal(90), at_risk, stage) == expected
