"""The `kefu` command line (entry point: `bot.cli.main:main`); one module per group of subcommands."""
