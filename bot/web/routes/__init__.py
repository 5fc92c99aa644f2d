"""The gateway's HTTP routes, one module per area; each imports its dependencies from `bot.web.deps`."""
