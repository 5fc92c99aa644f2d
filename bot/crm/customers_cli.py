"""`kefu customers ...`: customer-base upkeep from the command line."""

from __future__ import annotations

import argparse

from bot.crm import scoring
from bot.crm.db import make_engine, make_sessionmaker
from bot.settings import Settings


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("customers", help="customer value scores and life-cycle stages")
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    rescore = actions.add_parser(
        "rescore", help="recompute RFM, value tier, life-cycle stage and churn risk for every customer"
    )
    rescore.set_defaults(handler=_rescore)


def _rescore(args: argparse.Namespace, settings: Settings) -> int:
    with make_sessionmaker(make_engine(settings)).begin() as session:
        summary = scoring.rescore_all(session)
    print(summary.describe())
    return 0
