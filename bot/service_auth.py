"""How Kefu's own processes trust each other: the rules for their shared secrets, and the installation key.

The gateway calls Rasa with RASA_TOKEN, Rasa calls the action server with ACTION_SERVER_TOKEN. Both
are derived from SECRET_KEY unless set, so one secret configures every machine of an installation.
In development SECRET_KEY itself, when unset, is a random key kept in `var/secret_key` (owner-only),
made on first use.

Standard library only: Rasa's launcher (`bot.launch.rasa_server`) imports it in Rasa's own Python.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

PLACEHOLDER_SECRET = "change-me"
# Values copied from examples and tutorials; none of them protects anything.
PLACEHOLDERS = frozenset({PLACEHOLDER_SECRET, "changeme", "change_me", "secret", "password", "token"})
# Production secrets are at least this long (`openssl rand -hex 32` gives 64 characters).
MIN_PRODUCTION_CHARS = 32


def secret_problem(name: str, value: str, production: bool) -> str | None:
    """Why `value` cannot be the secret `name` (an environment variable's name), or None if it can."""
    if not value.strip():
        return f"{name} is empty"
    if value.strip().lower() in PLACEHOLDERS:
        return f"{name} is the placeholder {value!r}"
    if production and len(value) < MIN_PRODUCTION_CHARS:
        return f"{name} has {len(value)} characters; production needs at least {MIN_PRODUCTION_CHARS}"
    return None


def derive(key: str, purpose: str) -> str:
    """A token for one purpose, derived from the installation key: knowing one tells nothing of the key."""
    return hmac.new(key.encode(), f"kefu {purpose}".encode(), hashlib.sha256).hexdigest()


def installation_key(path: Path) -> str:
    """The key kept in `path`, made (random, owner-only) if there is none yet.

    Several processes may start at once: the key is written to a private temporary file and linked
    into place, so each one either creates the only key or reads the one another created.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_hex(32) + "\n")
    try:
        os.link(draft, path)
    except FileExistsError:
        pass  # another process was first; its key is the one
    finally:
        draft.unlink()
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ValueError(f"{path} is empty; delete it to have a new key made")
    return key


def required_secret(name: str, environ: Mapping[str, str]) -> str:
    """The secret `name` from a process's environment, for a launcher; exits with the reason if unusable."""
    value = environ.get(name, "")
    problem = secret_problem(name, value, production=environ.get("KEFU_ENV") == "production")
    if problem:
        raise SystemExit(
            f"{problem}: refusing to start. `make run` sets it (from SECRET_KEY, or var/secret_key in "
            "development); when starting a process yourself, export what `python -m bot.processes` prints."
        )
    return value


def same_secret(given: str | None, expected: str) -> bool:
    """Whether a caller's secret is the expected one, in time that does not depend on where they differ."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
