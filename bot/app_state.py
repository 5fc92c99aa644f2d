"""The gateway's shared state as FastAPI dependencies, for every route: console, widget and Telegram.

`create_app` puts one session factory, settings object, Rasa client and live hub on `app.state`;
these read them back per request. They sit below both `bot.web` and `bot.channels`, so a channel's
routes need nothing from the web package; `bot.web.deps` adds the console's login checks on top.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from bot.live import LiveHub
from bot.rasa_client import RasaClient
from bot.settings import Settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; routes open their own short transactions with `session.begin()`."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    with factory() as session:
        yield session


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_rasa_client(request: Request) -> RasaClient:
    rasa: RasaClient = request.app.state.rasa
    return rasa


def get_live_hub(request: Request) -> LiveHub:
    hub: LiveHub = request.app.state.live
    return hub


def client_address(request: Request) -> str | None:
    """The address the request came from, as recorded in the audit log and used by rate limits."""
    return request.client.host if request.client else None


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
RasaDep = Annotated[RasaClient, Depends(get_rasa_client)]
LiveDep = Annotated[LiveHub, Depends(get_live_hub)]
