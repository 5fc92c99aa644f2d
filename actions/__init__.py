"""Kefu's custom Rasa actions (run by `python -m rasa_sdk --actions actions`); one module per area.

Importing the package scrubs the action server's logs of Kefu's secrets (bot/logsafe.py), before
any action runs or logs.
"""

from bot.logsafe import install as _redact_secrets_in_logs
from bot.settings import get_settings

_redact_secrets_in_logs(get_settings())
