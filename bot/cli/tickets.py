"""`kefu tickets ...` and `kefu sla check`: tickets from the command line, and the SLA job on demand."""

from __future__ import annotations

import argparse
import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.common import Commands, shown, transaction
from bot.crm import sla, tickets
from bot.crm.models import Ticket, TicketStatus, utcnow
from bot.crm.priority import PRIORITY_ORDER
from bot.errors import NotFound
from bot.settings import Settings
from bot.web.schemas import ticket_detail


def add_commands(commands: Commands) -> None:
    group = commands.add_parser("tickets", help="list, show or move tickets")
    actions = group.add_subparsers(title="actions", metavar="ACTION", required=True)

    lst = actions.add_parser("list", help="active tickets, most urgent first")
    lst.add_argument("--status", choices=[s.value for s in TicketStatus], action="append")
    lst.add_argument("--limit", type=int, default=50)
    lst.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one ticket with its history, as JSON")
    show.add_argument("reference")
    show.set_defaults(handler=_show)

    status = actions.add_parser("status", help="move a ticket to another status")
    status.add_argument("reference")
    status.add_argument("status", choices=[s.value for s in TicketStatus])
    status.add_argument("--resolution", help="what was done (required to resolve)")
    status.add_argument("--note")
    status.set_defaults(handler=_status)

    group_sla = commands.add_parser("sla", help="service-level checks")
    sla_actions = group_sla.add_subparsers(title="actions", metavar="ACTION", required=True)
    check = sla_actions.add_parser(
        "check", help="mark overdue tickets now (the scheduler does it every 30 s)"
    )
    check.set_defaults(handler=_sla_check)


def _find(session: Session, reference: str) -> Ticket:
    ticket = tickets.find_by_reference(session, reference.upper())
    if ticket is None:
        raise NotFound(f"there is no ticket {reference}")
    return ticket


def _list(args: argparse.Namespace, settings: Settings) -> int:
    wanted = [TicketStatus(s) for s in args.status] if args.status else list(tickets.ACTIVE)
    with transaction(settings) as session:
        found = session.scalars(
            select(Ticket).where(Ticket.status.in_(wanted)).order_by(Ticket.created_at).limit(args.limit)
        ).all()
        rank = {p: i for i, p in enumerate(reversed(PRIORITY_ORDER))}
        for t in sorted(found, key=lambda t: (rank[t.priority], t.created_at)):
            due = f"{t.sla_resolution_due:%Y-%m-%d %H:%M}" if t.sla_resolution_due else "-"
            print(
                f"{t.reference}  {t.priority.value:<7} {t.status.value:<16} due {due} UTC  {shown(t.subject)}"
            )
        if not found:
            print("no tickets")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        # JSON escapes C0 controls but not C1 ones (0x9B is a terminal's CSI), nor bidi overrides.
        detail = json.dumps(ticket_detail(_find(session, args.reference)), indent=2, ensure_ascii=False)
        print(shown(detail, one_line=False))
    return 0


def _status(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        ticket = _find(session, args.reference)
        tickets.change_status(
            session,
            ticket,
            TicketStatus(args.status),
            "admin:cli",
            resolution=args.resolution,
            note=args.note,
        )
        print(f"{ticket.reference} is now {ticket.status.value}")
    return 0


def _sla_check(args: argparse.Namespace, settings: Settings) -> int:
    policy = sla.load_policy(settings.sla_policy_file)
    with transaction(settings) as session:
        breaches = sla.check_breaches(session, policy, utcnow())
    for breach in breaches:
        print(breach)
    print(f"{len(breaches)} new SLA breach(es)")
    return 0
