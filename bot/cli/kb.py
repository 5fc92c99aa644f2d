"""`kefu kb ...`: the knowledge base from the command line (seed files, publishing, reindexing)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli.common import Commands, shown, transaction
from bot.crm.models import Agent, ArticleStatus
from bot.errors import NotFound
from bot.settings import Settings
from knowledge_base import curation, gaps, seeds, store
from knowledge_base.curation import Actor


def add_commands(commands: Commands) -> None:
    kb = commands.add_parser("kb", help="import, export, publish or reindex knowledge-base articles")
    actions = kb.add_subparsers(title="actions", metavar="ACTION", required=True)

    imp = actions.add_parser("import", help="load seed files; new or changed articles are published")
    imp.add_argument(
        "path",
        nargs="?",
        type=Path,
        default=seeds.SEED_DIR,
        help=f"a .yml file or a directory of them (default: {seeds.SEED_DIR})",
    )
    imp.add_argument(
        "--force",
        action="store_true",
        help="also overwrite articles edited in the console since their last import",
    )
    imp.set_defaults(handler=_import)

    exp = actions.add_parser("export", help="write articles in the seed-file format")
    exp.add_argument("path", nargs="?", default="-", help="output file (default: standard output)")
    exp.add_argument(
        "--all", action="store_true", help="every article's newest version, not only published ones"
    )
    exp.set_defaults(handler=_export)

    lst = actions.add_parser("list", help="list articles")
    lst.add_argument("--status", choices=[s.value for s in ArticleStatus])
    lst.set_defaults(handler=_list)

    show = actions.add_parser("show", help="print one article")
    show.add_argument("slug")
    show.add_argument("--version", type=int, help="a version number (default: the newest)")
    show.set_defaults(handler=_show)

    publish = actions.add_parser("publish", help="publish the version in review (needs a reviewing lead)")
    publish.add_argument("slug")
    publish.add_argument("--by", required=True, metavar="EMAIL", help="the reviewing lead (not the author)")
    publish.set_defaults(handler=_publish)

    archive = actions.add_parser("archive", help="stop answering with an article (history is kept)")
    archive.add_argument("slug")
    archive.add_argument("--by", metavar="EMAIL", help="the lead archiving it (default: the system)")
    archive.set_defaults(handler=_archive)

    reindex = actions.add_parser(
        "reindex", help="embed published articles again and tell every process to reload"
    )
    reindex.add_argument(
        "--all", action="store_true", help="re-embed every published version, not only stale ones"
    )
    reindex.set_defaults(handler=_reindex)

    gap_list = actions.add_parser("gaps", help="list groups of questions the assistant could not answer")
    gap_list.set_defaults(handler=_gaps)


def _lead(session: Session, email: str | None) -> Actor:
    if email is None:
        return curation.SYSTEM
    agent = session.scalar(select(Agent).where(Agent.email == email.strip().lower()))
    if agent is None or not agent.active:
        raise NotFound(f"no active console account with e-mail {email!r}")
    return Actor(agent=agent, source="kefu cli")


def _import(args: argparse.Namespace, settings: Settings) -> int:
    articles = seeds.read_seed_files(args.path)
    with transaction(settings) as session:
        report = seeds.import_articles(session, articles, force=args.force)
    print(
        f"Imported {len(articles)} articles from {args.path}: {len(report.created)} new, "
        f"{len(report.updated)} updated, {len(report.unchanged)} unchanged, {len(report.skipped)} skipped."
    )
    if report.skipped:
        print(
            "Skipped (edited in the console since their last import; --force overwrites): "
            + ", ".join(report.skipped)
        )
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        data = seeds.export_articles(session, include_unpublished=args.all)
    text = seeds.dump_yaml(data)
    if args.path == "-":
        sys.stdout.write(text)
    else:
        Path(args.path).write_text(text, encoding="utf-8")
        print(f"Wrote {len(data['articles'])} articles to {args.path}.")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    status = ArticleStatus(args.status) if args.status else None
    with transaction(settings) as session:
        articles = curation.list_articles(session, status)
        for article in articles:
            title = curation.latest(session, article).title
            slug, status = shown(article.slug), article.status.value
            print(f"{slug:<40} {status:<10} v{article.latest_version:<3} {shown(title)}")
        print(f"{len(articles)} article(s).")
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        article = curation.get_article(session, args.slug)
        version = curation.get_version(session, article, args.version or article.latest_version)
        print(
            f"{shown(article.slug)} · article {article.status.value} · "
            f"version {version.number} ({version.status.value})"
        )
        print(f"Title: {shown(version.title)}\nTags: {shown(', '.join(version.tags or []))}\n")
        print(
            f"Problem:\n{shown(version.problem, one_line=False)}\n\n"
            f"Solution:\n{shown(version.solution, one_line=False)}"
        )
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        article = curation.get_article(session, args.slug)
        version = curation.publish(session, _lead(session, args.by), args.slug, article.latest_version)
        print(f"Published {args.slug} version {version.number}; running processes pick it up within seconds.")
    return 0


def _archive(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        curation.archive(session, _lead(session, args.by), args.slug)
    print(f"Archived {args.slug}; the assistant stops answering with it within seconds.")
    return 0


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        embedded = 0
        published = store.published_versions(session)
        for _article, version in published:
            if args.all or not store.has_current_embedding(version):
                store.embed_version(version)
                embedded += 1
        store.bump_generation(session)
    print(
        f"{len(published)} published articles; embedded {embedded}; "
        "every process reloads its index within seconds."
    )
    return 0


def _gaps(args: argparse.Namespace, settings: Settings) -> int:
    with transaction(settings) as session:
        found = gaps.clusters(session)
        for cluster in found:
            view = cluster.view()
            example = shown(view["examples"][0])
            print(f"#{view['id']:<6} {view['count']:>4}x  last {view['last_seen'][:16]}  {example}")
        print(f"{len(found)} group(s) of unanswered questions.")
    return 0
