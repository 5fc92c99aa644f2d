"""Fixtures for the action tests: a seeded CRM the actions use as their process-wide database."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.crm import db
from bot.crm.seed import seed_demo_data
from bot.settings import Settings


@pytest.fixture
def crm(settings: Settings, db_sessionmaker: sessionmaker[Session]) -> sessionmaker[Session]:
    """A seeded CRM that the actions use as their process-wide database."""
    with db_sessionmaker.begin() as session:
        seed_demo_data(session, date(2026, 11, 20))
    return db.configure(settings)
