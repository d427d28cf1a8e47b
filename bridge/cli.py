"""`bridge`: the operator's command line. `bridge --help` lists every command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading

from aiohttp import web

from bridge.config import ConfigError, Settings
from bridge.db import migrate
from bridge.db.embedded import EmbeddedPostgresError
from bridge.db.engine import libpq_url
from bridge.flowable.client import EngineEndpoint
from bridge.flowable.local_engine import EngineError, build_engine_jar
from bridge.runtime import provisioned_database, provisioned_engine
from bridge.web.app import create_app

log = logging.getLogger("bridge")


def _migrate(settings: Settings, url: str) -> None:
    applied = asyncio.run(migrate.migrate(libpq_url(url), settings.migrations_dir))
    if applied:
        log.info("applied %d migration(s): %s", len(applied), ", ".join(applied))
    else:
        log.info("database schema is current")


def _serve(settings: Settings, url: str, engine: EngineEndpoint) -> None:
    log.info("serving on http://%s:%s (engine %s)", settings.http_host, settings.http_port, engine.base_url)
    web.run_app(create_app(settings, url, engine), host=settings.http_host, port=settings.http_port,
                print=None, access_log=None)


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url) as engine:
            _serve(settings, url, engine)
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        waiting = asyncio.run(migrate.pending(libpq_url(url), settings.migrations_dir))
        if waiting:
            log.error("the database needs migrations first (bridge migrate): %s", ", ".join(waiting))
            return 1
        with provisioned_engine(settings, url) as engine:
            _serve(settings, url, engine)
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
    return 0


def cmd_engine_build(settings: Settings, args: argparse.Namespace) -> int:
    print(build_engine_jar(force=args.force))
    return 0


def cmd_engine_start(settings: Settings, args: argparse.Namespace) -> int:
    """The engine alone, in the foreground, on the bridge's database, until Ctrl-C."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url) as engine:
            print(f"Flowable REST API: {engine.base_url}  (user {engine.user}); Ctrl-C stops it", flush=True)
            stop.wait()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bridge",
        description="OneCMS Flow Bridge: Flowable case workflows with a PostgreSQL mirror. "
                    "Settings come from the environment (see README).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler, help_text: str, parent=commands) -> argparse.ArgumentParser:
        sub = parent.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    command("up", cmd_up, "start everything on the embedded default (PostgreSQL, Flowable), migrate, and serve")
    command("serve", cmd_serve, "serve HTTP against a database that is already migrated")
    command("migrate", cmd_migrate, "apply pending migrations and exit")
    engine = commands.add_parser("engine", help="the Flowable engine under engine/",
                                 description="the Flowable engine under engine/")
    engine_commands = engine.add_subparsers(dest="engine_command", required=True, metavar="ACTION")
    build = command("build", cmd_engine_build, "build the engine jar with Maven unless the cached one is current",
                    engine_commands)
    build.add_argument("--force", action="store_true", help="build even if the cached jar is current")
    command("start", cmd_engine_start, "run the engine alone on the bridge's database until Ctrl-C", engine_commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        return args.handler(settings, args)
    except (ConfigError, migrate.MigrationError, EmbeddedPostgresError, EngineError) as err:
        log.error("%s", err)
        return 2


if __name__ == "__main__":
    sys.exit(main())
