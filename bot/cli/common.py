"""What every `kefu` command group shares: its error, its handler type, and one way to the database."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session, sessionmaker

from bot.crm.db import make_engine, make_sessionmaker
from bot.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]
Commands = argparse._SubParsersAction  # the `commands` each group's add_commands() adds to


# What a terminal may act on rather than show: C0 and C1 control characters (ESC starts the sequences
# that move the cursor, recolour, retitle the window or rewrite the screen; 0x9B is a one-byte CSI),
# DEL, Unicode's line and paragraph separators and the bidirectional overrides that reorder a line.
_TERMINAL_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\n\t]")


def shown(text: str | None, one_line: bool = True) -> str:
    """Text that customers or agents wrote, safe to print: each control character is shown as an
    escape (ESC as \\x1b), so it can neither drive the terminal nor fake a line of output.
    `one_line=False` keeps line breaks and tabs, for multi-line fields."""
    if text is None:
        return ""
    escaped = _TERMINAL_CONTROLS.sub(_escape, text)
    return _LINE_BREAKS.sub(_escape, escaped) if one_line else escaped


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


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
