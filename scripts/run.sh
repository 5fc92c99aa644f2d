#!/usr/bin/env bash
# `make run`: set up if needed, migrate, seed demo data, train if needed, start all processes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
.venv/bin/kefu db upgrade
.venv/bin/kefu db seed
.venv/bin/kefu kb import
bash scripts/train.sh

eval "$(.venv/bin/python -m bot.runtime)"
cat <<MSG

  Kefu is starting (Ctrl-C stops everything):
    demo chat        http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/
    agent console    http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/console
    lead console     http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/console/lead
    widget demo      http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/widget/demo.html
    health           http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/healthz
    Telegram         $KEFU_TELEGRAM_STATUS
    Rasa (loopback)  http://$KEFU_RASA_HOST:$KEFU_RASA_PORT   action server: port $KEFU_ACTIONS_PORT
  Demo logins (agent and lead consoles):
$(.venv/bin/kefu demo-logins | sed 's/^/    /')
  Demo customers to try: see "Try it" in README.md (e.g. order 100001 with ana.souza@example.com)

MSG
exec .venv/bin/honcho start -f Procfile
