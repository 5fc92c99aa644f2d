"""Kefu's custom Rasa actions (run by `python -m rasa_sdk --actions actions`); one module per area.

Importing the package scrubs the action server's logs of Kefu's secrets (bot/logsafe.py), before
any action runs or logs.
"""

from actions.common import settings as _settings
from bot.logsafe import install as _redact_secrets_in_logs

_redact_secrets_in_logs(_settings())
