"""Starts Rasa's server so that only holders of RASA_TOKEN reach it, without the token in its argv.

`rasa run --auth-token X` shows X to every local user in `ps`. This launcher takes RASA_TOKEN from
its environment instead (refusing an empty or placeholder one before Rasa loads anything), checks
that ACTION_SERVER_TOKEN is there for endpoints.yml to send to the action server, and starts the
server through Rasa's own `rasa.api.run` with the token as `auth_token`, as `rasa run --enable-api`
would. Rasa's API then needs `?token=`, but its REST channel (`/webhooks/rest/webhook`) would stay
open to anyone; so every route except `/` and `/version` is guarded here too, the webhook included:
customers reach Rasa only through the gateway.

Run with Rasa's Python, from the project root (the Procfile's `rasa` line):
`.venv-rasa/bin/python -m bot.launch.rasa_server --port 5005 --model models --endpoints endpoints.yml`.
Standard library and Rasa only; Kefu's settings live in the other Python.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from functools import partial
from typing import Any

from bot.service_auth import required_secret, same_secret

# Answer without the token: they tell nothing about conversations.
PUBLIC_PATHS = frozenset({"/", "/version"})


def parse_arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bot.launch.rasa_server", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--interface", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5005)
    parser.add_argument("--model", default="models", help="a model file, or a directory: its newest model")
    parser.add_argument("--endpoints", default="endpoints.yml")
    parser.add_argument("--credentials", default="credentials.yml")
    return parser.parse_args(argv)


async def guard_every_route(token: str, app: Any, _loop: Any) -> None:
    """Refuse (401) any request but the public ones unless it carries `?token=` (Sanic listener)."""
    from sanic.response import json

    async def require_token(request: Any) -> Any:
        if request.path in PUBLIC_PATHS or same_secret(request.args.get("token"), token):
            return None
        return json(
            {"status": "failure", "reason": "NotAuthenticated", "message": "This needs Kefu's RASA_TOKEN."},
            status=401,
        )

    app.register_middleware(require_token, "request")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_arguments(argv)
    token = required_secret("RASA_TOKEN", os.environ)
    required_secret("ACTION_SERVER_TOKEN", os.environ)  # endpoints.yml sends it to the action server

    # What `rasa run` sets up before it serves: logging, warnings, TensorFlow's environment.
    import rasa.api
    import rasa.utils.io
    import rasa.utils.tensorflow.environment as tensorflow_environment
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(None, None, warn_only_once=True, filter_repeated_logs=True)
    tensorflow_environment.setup_tf_environment()
    rasa.utils.io.configure_colored_logging(None)
    configure_structlog(None)
    rasa.api.run(
        model=args.model,
        endpoints=args.endpoints,
        credentials=args.credentials,
        enable_api=True,
        auth_token=token,
        interface=args.interface,
        port=args.port,
        server_listeners=[(partial(guard_every_route, token), "before_server_start")],
    )


if __name__ == "__main__":
    main()
