"""`bridge`: the operator's command line. `bridge --help` lists every command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiohttp import web

from bridge.config import ConfigError, Settings
from bridge.db import migrate
from bridge.db.embedded import EmbeddedPostgresError
from bridge.db.engine import libpq_url
from bridge.runtime import provisioned_database
from bridge.web.app import create_app

log = logging.getLogger("bridge")


def _migrate(settings: Settings, url: str) -> None:
    applied = asyncio.run(migrate.migrate(libpq_url(url), settings.migrations_dir))
    if applied:
        log.info("applied %d migration(s): %s", len(applied), ", ".join(applied))
    else:
        log.info("database schema is current")


def _serve(settings: Settings, url: str) -> None:
    log.info("serving on http://%s:%s", settings.http_host, settings.http_port)
    web.run_app(create_app(settings, url), host=settings.http_host, port=settings.http_port,
                print=None, access_log=None)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        _serve(settings, url)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        waiting = asyncio.run(migrate.pending(libpq_url(url), settings.migrations_dir))
        if waiting:
            log.error("the database needs migrations first (bridge migrate): %s", ", ".join(waiting))
            return 1
        _serve(settings, url)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="OneCMS Flow Bridge: Flowable case workflows with a PostgreSQL mirror. "
                    "Settings come from the environment (see README).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, handler, help_text in [
        ("up", cmd_up, "start everything on the embedded default (PostgreSQL), migrate, and serve"),
        ("serve", cmd_serve, "serve HTTP against a database that is already migrated"),
        ("migrate", cmd_migrate, "apply pending migrations and exit"),
    ]:
        commands.add_parser(name, help=help_text, description=help_text).set_defaults(handler=handler)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        return args.handler(settings, args)
    except (ConfigError, migrate.MigrationError, EmbeddedPostgresError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
