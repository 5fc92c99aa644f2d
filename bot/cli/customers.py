"""`kefu customers ...`: customer-base upkeep from the command line, and GDPR export and erasure."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.cli.common import Commands, database, transaction
from bot.crm import privacy, scoring
from bot.crm.audit import audit
from bot.crm.value import ValueConfig
from bot.errors import BadRequest
from bot.settings import Settings


def add_commands(commands: Commands) -> None:
    group = commands.add_parser(
        "customers", help="customer value scores and life-cycle stages; GDPR export and erasure"
    )
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)
    rescore = actions.add_parser(
        "rescore", help="recompute RFM, value tier, life-cycle stage and churn risk for every customer"
    )
    rescore.set_defaults(handler=_rescore)

    export = actions.add_parser(
        "export",
        help="everything Kefu holds about one customer (CRM rows and Rasa trackers), as one JSON document",
    )
    export.add_argument("customer_id", type=int, metavar="ID", help="the customer's id in the CRM")
    export.add_argument(
        "--out", type=Path, metavar="FILE", help="write to FILE (readable by you only) instead of stdout"
    )
    export.set_defaults(handler=_export)

    erase = actions.add_parser(
        "erase",
        help="erase one customer's personal data everywhere (CRM and Rasa trackers); "
        "orders and service statistics stay, anonymised",
    )
    erase.add_argument("customer_id", type=int, metavar="ID", help="the customer's id in the CRM")
    erase.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    erase.set_defaults(handler=_erase)


def _rescore(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        summary = scoring.rescore_all(session, value=ValueConfig.from_settings(settings))
    print(summary.describe())
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    trackers = privacy.TrackerStore(settings.tracker_store_url)
    try:
        with transaction(settings) as session:
            document = privacy.export_customer(session, args.customer_id, trackers)
            # Handing out personal data is audited, like the dashboard's exports.
            audit(session, "cli", "customer_exported", "customer", args.customer_id, {})
    finally:
        trackers.close()
    text = privacy.to_json(document)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    _write_private(args.out, text)
    messages = sum(len(c["messages"]) for c in document["conversations"])
    events = sum(len(t["events"]) for t in document["rasa_trackers"])
    print(
        f"Wrote customer {args.customer_id}'s data to {args.out}: {len(document['orders'])} order(s), "
        f"{len(document['conversations'])} conversation(s) with {messages} message(s), "
        f"{len(document['tickets'])} ticket(s), {events} Rasa tracker event(s)."
    )
    return 0


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read: it holds a person's data."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as error:
        raise BadRequest(f"cannot write {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def _erase(args: argparse.Namespace, settings: Settings) -> int:
    trackers = privacy.TrackerStore(settings.tracker_store_url)
    try:
        with database(settings) as sessions:
            if not args.yes:
                with sessions.begin() as session:
                    customer = privacy.find_customer(session, args.customer_id)
                    if privacy.is_erased(customer):
                        print(privacy.Erasure(customer.id, already_erased=True).describe())
                        return 0
                    who = f"customer {customer.id}, {customer.name} <{customer.email}>"
                if not _confirmed(who):
                    # A piped answer is not echoed: end the prompt's line first.
                    print("" if sys.stdin.isatty() else "\n", end="", file=sys.stderr)
                    print("Nothing erased.", file=sys.stderr)
                    return 1
            with sessions.begin() as session:
                erasure = privacy.erase_customer(session, args.customer_id, trackers)
    finally:
        trackers.close()
    print(erasure.describe())
    return 0


def _confirmed(who: str) -> bool:
    """Ask on stderr (stdout stays for results) and read the answer from stdin."""
    print(
        f"This erases the personal data of {who} from the CRM and Rasa's trackers, for good.", file=sys.stderr
    )
    print("Type yes to go on (or run again with --yes): ", end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        return False
    return answer.strip().lower() in ("yes", "y")
