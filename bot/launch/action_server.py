"""Starts the action server (rasa-sdk) so that only the holder of ACTION_SERVER_TOKEN runs actions.

`python -m rasa_sdk` runs any action for anyone who can reach its port: a made-up tracker carrying a
verified chat's sender id was enough to read that customer's orders. Here every route but `/health`
(the watchdog's and the gateway's check) needs `Authorization: Bearer <ACTION_SERVER_TOKEN>`, which
Rasa sends (endpoints.yml); anything else gets 401 before an action is looked at. The token comes
from Kefu's settings (the environment, `.env`, or derived from SECRET_KEY), never the command line.

`.venv/bin/python -m bot.launch.action_server --actions actions --port 5055` (the Procfile's line).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from functools import partial

from pydantic import ValidationError
from rasa_sdk import utils
from rasa_sdk.endpoint import create_app_for_serve
from rasa_sdk.executor import ActionExecutor
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sanic.worker.loader import AppLoader

from bot.service_auth import same_secret
from bot.settings import get_settings

PUBLIC_PATHS = frozenset({"/health"})


def guarded_app(executor: ActionExecutor, token: str, endpoints: str) -> Sanic:
    """rasa-sdk's app, refusing (401) every request but a health check that lacks the token.

    Module level: Sanic builds the app again in each worker process from this factory.
    """
    app = create_app_for_serve(executor, cors_origins=None, endpoints=endpoints)

    async def require_token(request: Request) -> HTTPResponse | None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if request.path in PUBLIC_PATHS or (scheme.lower() == "bearer" and same_secret(given, token)):
            return None
        return response.json({"error": "This needs Kefu's ACTION_SERVER_TOKEN."}, status=401)

    app.register_middleware(require_token, "request")
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bot.launch.action_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--actions", default="actions", help="the package of actions to serve")
    parser.add_argument("--port", type=int, default=5055)
    parser.add_argument("--endpoints", default="endpoints.yml", help="read by rasa-sdk for tracing")
    args = parser.parse_args(argv)
    try:
        token = get_settings().action_server_token  # the settings refuse an empty or placeholder one
    except ValidationError as error:
        raise SystemExit(f"refusing to start the action server: {error}") from None

    # What `python -m rasa_sdk` sets up, then serves, with the guarded app instead of the open one.
    utils.configure_colored_logging(None)
    utils.update_sanic_log_level()
    executor = ActionExecutor()
    executor.register_package(args.actions)
    loader = AppLoader(factory=partial(guarded_app, executor, token, args.endpoints))
    app = loader.load()
    app.prepare(
        host=os.environ.get("SANIC_HOST", "127.0.0.1"),
        port=args.port,
        workers=utils.number_of_sanic_workers(),
    )
    Sanic.serve(primary=app, app_loader=loader)


if __name__ == "__main__":
    main()
