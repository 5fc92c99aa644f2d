#!/usr/bin/env bash
# `make run`: set up if needed, migrate, seed demo data (not with KEFU_ENV=production), train if needed,
# start all processes under supervisord (the Procfile, or var/Procfile.replicas for replicas).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/bootstrap.sh
eval "$(.venv/bin/python -m bot.processes)"
.venv/bin/kefu db upgrade
if [ "$KEFU_DEMO_DATA" = 1 ]; then
    .venv/bin/kefu db seed  # demo customers and orders; never with KEFU_ENV=production
fi
.venv/bin/kefu kb import
bash scripts/train.sh
cat <<MSG

  Kefu is starting (Ctrl-C stops everything):
    demo chat        http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/
    agent console    http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/console
    lead console     http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/console/lead
    widget demo      http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/widget/demo.html
    health           http://$KEFU_GATEWAY_HOST:$KEFU_GATEWAY_PORT/healthz
    Telegram         $KEFU_TELEGRAM_STATUS
    Rasa (loopback)  http://$KEFU_RASA_HOST:$KEFU_RASA_PORT   action server: port $KEFU_ACTIONS_PORT
    processes        $KEFU_REPLICAS_STATUS
                     supervised: restarted when they die or stop answering; logs in var/log/
                     status: .venv/bin/supervisorctl -c var/run/supervisord.conf status (or restart NAME)
$(if [ "$KEFU_DEMO_DATA" = 1 ]; then
    echo "  Demo logins (agent and lead consoles):"
    .venv/bin/kefu demo-logins | sed 's/^/    /'
    echo "  Demo customers to try: see \"Try it\" in README.md (e.g. order 100001 with ana.souza@example.com)"
else
    echo "  Production: no demo data; create console accounts with \`kefu agents create\`."
fi)

MSG
exec .venv/bin/python -m bot.supervise --procfile "$KEFU_PROCFILE"
