"""What every `kefu` command group shares: its error, its handler type, and one way to the database."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker
from bot.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Commands = argparse._SubParsersAction  # the `commands` each group's add_commands() adds to


class CliError(Exception):
    """A failure the user can fix, reported as one line without a traceback."""


@contextmanager
def database(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """A session factory for one command; its engine is closed when the command ends."""
    engine = make_engine(settings)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """One command's unit of work: committed when the block ends, rolled back on an error."""
    with database(settings) as sessions, sessions.begin() as session:
        yield session
