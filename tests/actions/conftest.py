"""Fixtures for the action tests: a seeded CRM the actions use as their process-wide database."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

import actions.common
from bot.crm.models import utcnow
from bot.demo.seed import seed_demo_data
from bot.settings import Settings


@pytest.fixture
def crm(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    """A seeded CRM that the actions use as their process-wide database.

    Seeded for today, as `make run` does: the actions compare the demo's dates (a promised delivery,
    a delivery inside the returns window) with the real clock."""
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, utcnow().date())
    return actions.common.configure(settings)
