"""`bridge`: the operator's command line. `bridge --help` lists every command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy.exc

from bridge import archive, auth, case_import, db_health, entitlements, logs, migration, retention, status
from bridge.bpmn import lint
from bridge.bpmn.model import BpmnError
from bridge.config import Settings
from bridge.db import migrate
from bridge.db.connections import libpq_url, open_database
from bridge.demo import DemoOutcome, DemoSeeder
from bridge.deploy import DeployError, OwnershipError, deploy_bpmn
from bridge.errors import BridgeError
from bridge.flowable import engine_record
from bridge.flowable.client import EngineUnavailable, FlowableClient, FlowableEndpoint
from bridge.flowable.local_engine import build_engine_jar
from bridge.mirror.drift import find_drift
from bridge.mirror.engine_state import EngineReader
from bridge.mirror.reconcile import PassReport, Reconciler, ReconcilerSettings
from bridge.progress import Bars
from bridge.runtime import provisioned_database, provisioned_engine
from bridge.web import server, serving_records
from bridge.work import queues
from bridge.work.escalation import EscalationRound, escalate_once

log = logging.getLogger("bridge")


def _migrate(settings: Settings, url: str) -> None:
    applied = asyncio.run(migrate.migrate(libpq_url(url), settings.migrations_dir))
    if applied:
        log.info("applied %d migration(s): %s", len(applied), ", ".join(applied))
    else:
        log.info("database schema is current")


def _serve(settings: Settings, url: str, endpoint: FlowableEndpoint) -> None:
    log.info("serving on http://%s:%s (engine %s)", settings.http_host, settings.http_port, endpoint.base_url)
    server.serve(settings, url, endpoint)


async def _deploy(url: str, endpoint: FlowableEndpoint, files: list[Path], *, deployed_by: str,
                  allowed_delegates: tuple[str, ...], dry_run: bool = False, business_app: str | None = None,
                  adopt: tuple[str, ...] = ()) -> int:
    """Deploy each file, printing what happened; returns how many failed."""
    db = open_database(url, pool_size=2)
    failed = 0
    try:
        async with FlowableClient.of(endpoint) as flowable:
            for path in files:
                try:
                    outcome = await deploy_bpmn(path.read_bytes(), path.name, db=db, flowable=flowable,
                                                deployed_by=deployed_by, business_app=business_app,
                                                dry_run=dry_run, allowed_delegates=allowed_delegates, adopt=adopt)
                    print(outcome.summary(), flush=True)
                except BpmnError as err:
                    failed += 1
                    print(f"{path.name}: not deployed, the file has errors:\n{err}", file=sys.stderr)
                except OwnershipError as err:
                    failed += 1
                    print(f"{path.name}: not deployed, it would change what other workflows own:\n"
                          + "\n".join(f"  {p}" for p in err.problems), file=sys.stderr)
                except (DeployError, EngineUnavailable, OSError) as err:
                    failed += 1
                    print(f"{path.name}: not deployed: {err}", file=sys.stderr)
    finally:
        await db.dispose()
    return failed


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    serving_records.check(settings.data_dir, settings.http_port)  # before starting anything
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            failed = asyncio.run(_deploy(url, endpoint, list(settings.deploy_on_start), deployed_by="bridge",
                                         allowed_delegates=settings.deploy_allowed_delegates)) \
                if settings.deploy_on_start else 0
            if failed:
                log.error("a workflow could not be deployed on start (see above); not serving")
                return 1
            _serve(settings, url, endpoint)
    return 0


def cmd_deploy(settings: Settings, args: argparse.Namespace) -> int:
    # The files are checked offline first: a broken one is reported before PostgreSQL or the engine starts.
    checked = [lint.lint_file(path, allowed_delegates=settings.deploy_allowed_delegates) for path in args.files]
    for result in checked:
        if not result.ok:
            print(f"{result.path.name}: not deployed, the file has errors:\n"
                  + "\n".join(str(issue) for issue in result.metadata.errors), file=sys.stderr)
    deployable = [result.path for result in checked if result.ok]
    if not deployable:
        return 1
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            failed = asyncio.run(_deploy(url, endpoint, deployable, deployed_by=args.by, dry_run=args.dry_run,
                                         allowed_delegates=settings.deploy_allowed_delegates,
                                         business_app=args.business_app, adopt=tuple(args.adopt)))
    return 1 if failed or len(deployable) < len(checked) else 0


def cmd_lint(settings: Settings, args: argparse.Namespace) -> int:
    results = [lint.lint_file(path, allowed_delegates=settings.deploy_allowed_delegates) for path in args.files]
    print(lint.report(results, as_json=args.format == "json"))
    return 0 if all(result.ok for result in results) else 1


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    serving_records.check(settings.data_dir, settings.http_port)
    with provisioned_database(settings) as url:
        waiting = asyncio.run(migrate.pending(libpq_url(url), settings.migrations_dir))
        if waiting:
            log.error("the database needs migrations first (bridge migrate): %s", ", ".join(waiting))
            return 1
        with provisioned_engine(settings, url, args.command) as endpoint:
            _serve(settings, url, endpoint)
    return 0


async def _drift(url: str, endpoint: FlowableEndpoint) -> int:
    db = open_database(url, pool_size=1)
    try:
        async with FlowableClient.of(endpoint) as flowable, db.connect() as conn:
            differences, state = await find_drift(conn, EngineReader(flowable))
    finally:
        await db.dispose()
    for difference in differences:
        print(difference)
    if differences:
        print(f"{len(differences)} difference(s) between the mirror and the engine", file=sys.stderr)
        return 1
    print(f"no differences: the mirror matches the engine ({len(state.processes)} instances, "
          f"{len(state.tasks)} tasks)", file=sys.stderr)
    return 0


def cmd_drift(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url, provisioned_engine(settings, url, args.command) as endpoint:
        try:
            return asyncio.run(_drift(url, endpoint))
        except EngineUnavailable as err:
            log.error("%s", err)
            return 2


async def _reconcile(url: str, endpoint: FlowableEndpoint, settings: Settings, sweep: bool) -> PassReport:
    db = open_database(url, pool_size=1)
    try:
        async with FlowableClient.of(endpoint) as flowable:
            with Bars() as bars:  # a backfill reads everything: show how far it got
                return await Reconciler(db, flowable, ReconcilerSettings.of(settings),
                                        progress=bars).run_once(sweep=sweep)
    finally:
        await db.dispose()


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            try:
                report = asyncio.run(_reconcile(url, endpoint, settings, args.sweep))
            except EngineUnavailable as err:
                log.error("%s", err)
                return 2
    for difference in report.differences:
        print(difference)
    print(report.summary(), file=sys.stderr)
    return 0


async def _escalate(url: str, endpoint: FlowableEndpoint) -> EscalationRound:
    db = open_database(url, pool_size=2)
    try:
        async with FlowableClient.of(endpoint) as flowable:
            return await escalate_once(db, flowable)
    finally:
        await db.dispose()


def cmd_escalate(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url, provisioned_engine(settings, url, args.command) as endpoint:
        outcome = asyncio.run(_escalate(url, endpoint))
    for task in outcome.escalated:
        moved = f", moved to {task['moved_to']}" if task.get("moved_to") else ""
        print(f"{task['task_id']} ({task['queue_name']}, {task['status']}): level {task['escalation_level']}, "
              f"priority {task['priority']}{moved}")
    print(outcome.summary(), file=sys.stderr)
    return 1 if outcome.engine_failures else 0


async def _demo_seed(url: str, endpoint: FlowableEndpoint, cases: int, seed: int | None,
                     concurrency: int) -> DemoOutcome:
    db = open_database(url, pool_size=concurrency + 1)
    try:
        async with FlowableClient.of(endpoint) as flowable:
            seeder = DemoSeeder(db, flowable, seed=seed, concurrency=concurrency)
            await seeder.prepare()
            with Bars({"cases": cases}) as bars:
                return await seeder.seed(cases, on_case_done=lambda: bars("cases"))
    finally:
        await db.dispose()


def cmd_demo_seed(settings: Settings, args: argparse.Namespace) -> int:
    if args.cases < 1:
        log.error("--cases: at least 1")
        return 2
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            outcome = asyncio.run(_demo_seed(url, endpoint, args.cases, args.seed, args.concurrency))
    print(outcome.summary())
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Reports what runs, and starts nothing but the embedded PostgreSQL when none runs (to read the mirror)."""
    bridges = serving_records.live_bridges(settings.data_dir)
    with provisioned_database(settings) as url:
        endpoint, engine_note = _running_engine(settings, url)
        healthy, lines = asyncio.run(status.report(url, settings.migrations_dir, endpoint, bridges=bridges,
                                                   engine_note=engine_note))
    print("\n".join(lines))
    return 0 if healthy else 1


def _running_engine(settings: Settings, url: str) -> tuple[FlowableEndpoint | None, str | None]:
    """(the engine to ask, or None; why there is none): FLOWABLE_URL, else the engine recorded in the data
    folder; else who runs one on this database from elsewhere, if anyone does."""
    user, password = settings.flowable_user, settings.flowable_password
    if settings.flowable_url:
        return FlowableEndpoint(settings.flowable_url, user, password), None
    recorded = engine_record.read(settings.data_dir, url)
    if recorded is not None:
        return FlowableEndpoint(recorded.base_url, user, password), None
    elsewhere = engine_record.holder(url)
    if elsewhere:
        return None, (f"from this data folder ({settings.data_dir}), but one runs on this database, "
                      f"started by {elsewhere}; set FLOWABLE_URL to reach it")
    return None, None


def cmd_maintenance(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        for line in asyncio.run(db_health.maintain(url)):
            print(line)
        db = open_database(url, pool_size=1)

        async def review() -> db_health.Health:
            try:
                async with db.connect() as conn:
                    return await db_health.read(conn, slow_limit=10)
            finally:
                await db.dispose()

        health = asyncio.run(review())
    print("\n".join(db_health.lines(health)))
    for index in health.unused_indexes:
        print(f"unused index {index['index_name']} on {index['table_name']} ({index['bytes']} bytes)")
    for index in health.index_bloat[:10]:
        print(f"index bloat  {index['index_name']}: ~{index['bloat_pages']} of {index['pages']} pages")
    for statement in health.slow_statements or []:
        print(f"slow         {statement['mean_ms']:.1f} ms mean x {statement['calls']}: {statement['query']}")
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
    return 0


async def _with_db(url: str, work) -> None:
    db = open_database(url, pool_size=1)
    try:
        async with db.begin() as conn:
            await work(conn)
    finally:
        await db.dispose()


def cmd_users_add(settings: Settings, args: argparse.Namespace) -> int:
    async def work(conn) -> None:
        await auth.add_user(conn, args.user, roles=args.role, granted_by=getpass.getuser(), email=args.email,
                            first_name=args.first_name, last_name=args.last_name)

    with provisioned_database(settings) as url:
        _migrate(settings, url)
        asyncio.run(_with_db(url, work))
    print(f"user {args.user}" + (f" with {', '.join(args.role)}" if args.role else ""))
    return 0


def cmd_users_import(settings: Settings, args: argparse.Namespace) -> int:
    text = args.file.read_text(encoding="utf-8")
    kind = "csv" if args.file.suffix.lower() == ".csv" else "yaml"
    try:
        wanted = entitlements.read(text, kind)  # refuses only a file it cannot read at all
    except entitlements.EntitlementsError as err:
        print(f"{args.file}: nothing imported:\n" + "\n".join(f"  {p}" for p in err.problems), file=sys.stderr)
        return 1

    async def work(conn) -> None:  # apply answers the file's problems and the database's together
        with Bars({"users": len(wanted.users)}) as bars:
            await entitlements.apply(conn, wanted, by=args.by, progress=bars)

    with provisioned_database(settings) as url:
        try:
            asyncio.run(_with_db(url, work))
        except entitlements.EntitlementsError as err:
            print(f"{args.file}: nothing imported:\n" + "\n".join(f"  {p}" for p in err.problems), file=sys.stderr)
            return 1
    print(f"{args.file}: {len(wanted.departments)} department(s), {len(wanted.users)} user(s), "
          f"{wanted.grants} grant(s) imported")
    return 0


def cmd_token_create(settings: Settings, args: argparse.Namespace) -> int:
    issued: list[auth.IssuedToken] = []
    # build_parser refuses --days below 1 and --days with --no-expiry (exit code 2)
    valid_for = None if args.no_expiry else timedelta(
        days=auth.DEFAULT_TOKEN_DAYS if args.days is None else args.days)

    async def work(conn) -> None:
        issued.append(await auth.issue_token(conn, args.user, label=args.label, valid_for=valid_for))

    with provisioned_database(settings) as url:
        _migrate(settings, url)
        asyncio.run(_with_db(url, work))
    token = issued[0]
    expiry = ("never expires (--no-expiry)" if token.expires_at is None
              else f"expires {_token_time(token.expires_at)}")
    print(f"token {token.token_id} for {args.user}" + (f" ({args.label})" if args.label else "")
          + f" {expiry}; shown only now, only its hash is stored", file=sys.stderr)
    print(token.token)  # alone on stdout, for TOKEN=$(bridge token create USER)
    return 0


def _token_time(value) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def cmd_token_list(settings: Settings, args: argparse.Namespace) -> int:
    rows: list[dict] = []

    async def work(conn) -> None:
        rows.extend(await auth.list_tokens(conn, args.user))

    with provisioned_database(settings) as url:
        asyncio.run(_with_db(url, work))
    if args.json:
        print(json.dumps([{key: value.isoformat() if hasattr(value, "isoformat") else value
                           for key, value in row.items()} for row in rows], indent=2))
        return 0
    if not rows:
        print("no tokens" + (f" for {args.user}" if args.user else ""), file=sys.stderr)
        return 0
    table = [("ID", "USER", "LABEL", "CREATED", "EXPIRES", "LAST USED", "STATE")]
    for row in rows:
        state = row["state"] + (f" {_token_time(row['revoked_at'])}" if row["revoked_at"] else "")
        table.append((str(row["token_id"]), row["user_id"], row["label"] or "-", _token_time(row["created_at"]),
                      "never" if row["expires_at"] is None else _token_time(row["expires_at"]),
                      "never" if row["last_used_at"] is None else _token_time(row["last_used_at"]), state))
    widths = [max(len(line[column]) for line in table) for column in range(len(table[0]))]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())
    return 0


def cmd_token_revoke(settings: Settings, args: argparse.Namespace) -> int:
    revoked: list[auth.RevokedToken] = []

    async def work(conn) -> None:
        revoked.append(await auth.revoke_token(conn, token_id=args.token_id, label=args.label, user_id=args.user))

    with provisioned_database(settings) as url:
        try:
            asyncio.run(_with_db(url, work))
        except (auth.UnknownToken, auth.AmbiguousToken) as err:
            log.error("%s", err)
            return 2
    token = revoked[0]
    named = f"token {token.token_id} of {token.user_id}" + (f" ({token.label})" if token.label else "")
    if token.already:
        print(f"{named} was already revoked at {_token_time(token.revoked_at)}")
    else:
        print(f"revoked {named}: the API refuses it from now on")
    return 0


def cmd_queues_show(settings: Settings, args: argparse.Namespace) -> int:
    shown: list[dict] = []

    async def work(conn) -> None:
        names = [args.queue] if args.queue else await queues.queue_names(conn)
        for name in names:
            queue = await queues.read_queue(conn, name, changes=10 if args.queue else 0)
            if queue is not None:
                shown.append(queue)

    with provisioned_database(settings) as url:
        asyncio.run(_with_db(url, work))
    if args.queue and not shown:
        print(f"no queue {args.queue}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(shown if not args.queue else shown[0], indent=2, default=str))
        return 0
    for queue in shown:
        print(_queue_text(queue))
    return 0


def _queue_text(queue: dict) -> str:
    lines = [f"{queue['name']} ({queue['type']}, {queue['department'] or 'no department'}"
             f"{'' if queue['active'] else ', inactive'})"]
    lines += [f"  {name}: {json.dumps(value)}" for name, value in queue["settings"].items()]
    if queue["roles"]:
        lines.append("  roles: " + ", ".join(r["role"] for r in queue["roles"]))
    for change in queue["changes"]:
        lines.append(f"  changed {change['at']} by {change['by']} ({change['source']}): "
                     + ", ".join(f"{k} {json.dumps(change['before'][k])} -> {json.dumps(v)}"
                                 for k, v in change["after"].items()))
    return "\n".join(lines)


def _settings_from_args(pairs: list[str]) -> dict:
    """SETTING=VALUE (escalation.KEY=VALUE for one key of escalation, which is then replaced whole); a value
    is read as JSON when it is JSON (10, true, null, {}), else as text (LEAST_LOADED)."""
    wanted: dict = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"{pair}: SETTING=VALUE")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if name.startswith("escalation."):
            wanted.setdefault("escalation", {})[name.removeprefix("escalation.")] = value
        else:
            wanted[name] = value
    return wanted


def cmd_queues_set(settings: Settings, args: argparse.Namespace) -> int:
    try:
        wanted = _settings_from_args(args.settings)
    except argparse.ArgumentTypeError as err:
        print(err, file=sys.stderr)
        return 2
    changed: list[dict] = []

    async def work(conn) -> None:
        changed.append(await queues.change_queue(conn, args.queue, wanted, by=args.by, source="cli"))

    with provisioned_database(settings) as url:
        try:
            asyncio.run(_with_db(url, work))
        except queues.QueueSettingsError as err:
            print(f"{args.queue}: nothing changed:\n" + "\n".join(f"  {p}" for p in err.problems), file=sys.stderr)
            return 1
    print(_queue_text(changed[0]))
    return 0


def cmd_retention(settings: Settings, args: argparse.Namespace) -> int:
    shown: list[dict] = []

    async def work(conn) -> None:
        shown.extend(await retention.policies(conn, default_days=settings.retention_days))

    with provisioned_database(settings) as url:
        asyncio.run(_with_db(url, work))
    if args.json:
        print(json.dumps({"defaultDays": settings.retention_days, "processes": shown}, indent=2, default=str))
        return 0
    print(f"default: {settings.retention_days} days after completion (BRIDGE_RETENTION_DAYS)")
    print(f"{'PROCESS KEY':<32} {'DAYS':>6}  {'FROM':<8} {'COMPLETED':>9} {'PAST RETENTION':>14}  SET BY")
    for p in shown:
        by = f"{p['setBy']} {p['setAt']:%Y-%m-%d}" if p["setBy"] else ""
        print(f"{p['processKey']:<32} {p['days']:>6}  {p['source']:<8} {p['completed']:>9} "
              f"{p['pastRetention']:>14}  {by}")
    return 0


def cmd_retention_set(settings: Settings, args: argparse.Namespace) -> int:
    if args.days == "default":
        days = None
    elif args.days.isascii() and args.days.isdigit():
        days = int(args.days)
    else:
        print(f"DAYS: a whole number of days (1 to {retention.MAX_DAYS}) or 'default', not {args.days!r}",
              file=sys.stderr)
        return 2

    async def work(conn) -> None:
        await retention.set_policy(conn, args.process_key, days, by=args.by)

    with provisioned_database(settings) as url:
        try:
            asyncio.run(_with_db(url, work))
        except retention.RetentionError as err:
            print(f"nothing changed: {err}", file=sys.stderr)
            return 1
    print(f"{args.process_key}: " + (f"{days} days after completion" if days is not None else
                                      f"the default, {settings.retention_days} days after completion"))
    return 0


async def _archive(url: str, endpoint: FlowableEndpoint | None, settings: Settings,
                   args: argparse.Namespace) -> archive.ArchiveReport:
    db = open_database(url, pool_size=2)
    try:
        async with contextlib.AsyncExitStack() as stack:
            flowable = await stack.enter_async_context(FlowableClient.of(endpoint)) if endpoint else None
            return await archive.run(db, flowable, retention_days=settings.retention_days,
                                     inbox_days=settings.inbox_retention_days, as_of=args.as_of,
                                     dry_run=args.dry_run, by=args.by, max_instances=args.limit)
    finally:
        await db.dispose()


def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        if args.dry_run:
            report = asyncio.run(_archive(url, None, settings, args))
        else:
            with provisioned_engine(settings, url, args.command) as endpoint:
                report = asyncio.run(_archive(url, endpoint, settings, args))
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
        return 0
    print(("would archive" if args.dry_run else "due when the run began") + f" (as of {report.as_of:%Y-%m-%d %H:%M}):")
    for due in report.due:
        print(f"  {due['processKey']:<32} {due['instances']:>8} instance(s), the oldest ended {due['oldestEnd']}")
    if not report.due:
        print("  nothing")
    if args.dry_run:
        print(f"engine histories still to delete: {report.engine_histories_pending}; "
              f"inbox batches to prune: {report.inbox_batches_pruned}")
        return 0
    rows = ", ".join(f"{table} {count}" for table, count in report.rows.items())
    print(f"archived {report.instances} instance(s) in {report.batches} transaction(s): {rows}")
    print(f"history months moved whole: {', '.join(report.months_moved) or 'none'}; "
          f"months created ahead: {report.partitions_created}")
    print(f"engine histories deleted: {report.engine_histories_deleted}, still to delete: "
          f"{report.engine_histories_pending}" + (f" (engine: {report.engine_error})" if report.engine_error else ""))
    print(f"inbox: {report.inbox_batches_pruned} batch(es), {report.inbox_events_pruned} event(s) pruned; "
          f"{report.seconds:.1f}s")
    return 1 if report.engine_error else 0


def _mappings(pairs: list[str]) -> dict[str, str]:
    mappings = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise migration.MigrationError(400, f"--map takes OLD=NEW activity ids, not {pair!r}")
        mappings[old.strip()] = new.strip()
    return mappings


async def _instances_migrate(url: str, endpoint: FlowableEndpoint, args: argparse.Namespace
                             ) -> migration.MigrationReport:
    db = open_database(url, pool_size=migration.DEFAULT_CONCURRENCY + 1)
    try:
        async with FlowableClient.of(endpoint) as flowable:
            if args.resume is not None:
                request = await migration.stored_request(db, args.resume, requested_by=args.by)
            else:
                request = migration.MigrationRequest(
                    process_key=args.process, from_version=args.from_version, to_version=args.to_version,
                    activities=tuple(args.activity), business_keys=tuple(args.business_key),
                    mappings=_mappings(args.map), dry_run=args.dry_run, requested_by=args.by)
            with Bars() as bars:
                return await migration.run(db, flowable, request, resume=args.resume, progress=bars,
                                           client_info={"via": "cli"})
    finally:
        await db.dispose()


def cmd_instances_migrate(settings: Settings, args: argparse.Namespace) -> int:
    if args.resume is None and (args.process is None or args.from_version is None or args.to_version is None):
        print("--process, --from-version and --to-version are required (or --resume ID)", file=sys.stderr)
        return 2
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            try:
                report = asyncio.run(_instances_migrate(url, endpoint, args))
            except migration.MigrationError as err:
                print(f"nothing migrated: {err.message}", file=sys.stderr)
                return 2
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        r = report.request
        print(f"migration {report.migration_id}: {r.process_key} v{r.from_version} -> v{r.to_version}"
              + (" (dry run: nothing changed)" if r.dry_run else ""))
        for result in report.results:
            where = ",".join(result.activities) or "-"
            why = f"  {'; '.join(result.messages)}" if result.messages else ""
            print(f"  {result.process_instance_id:<40} {result.business_key or '-':<20} {where:<24} "
                  f"{result.outcome}{why}")
        counts = ", ".join(f"{n} {outcome.lower()}" for outcome, n in report.counts.items()) or "no instances chosen"
        print(f"{counts}; {report.seconds:.1f}s")
        if report.engine_error:
            print(f"stopped early: {report.engine_error}; `bridge instances migrate --resume "
                  f"{report.migration_id}` carries on", file=sys.stderr)
    if report.engine_error:
        return 1
    return 1 if any(x.outcome == "FAILED" for x in report.results) else 0


async def _cases_import(url: str, endpoint: FlowableEndpoint, cases: list[case_import.LegacyCase],
                        args: argparse.Namespace) -> case_import.ImportReport:
    db = open_database(url, pool_size=case_import.CONCURRENCY + 1)
    try:
        async with FlowableClient.of(endpoint) as flowable:
            with Bars({"imported": len(cases)}) as bars:
                return await case_import.run(db, flowable, cases, source=args.file.name, by=args.by,
                                             dry_run=args.dry_run, progress=bars)
    finally:
        await db.dispose()


def cmd_cases_import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        cases = case_import.read_file(args.file, default_process=args.process)
    except case_import.CaseImportError as err:
        print(f"{args.file}: {len(err.problems)} problem(s); nothing was imported", file=sys.stderr)
        for problem in err.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    with provisioned_database(settings) as url:
        _migrate(settings, url)
        with provisioned_engine(settings, url, args.command) as endpoint:
            try:
                report = asyncio.run(_cases_import(url, endpoint, cases, args))
            except case_import.CaseImportError as err:
                print(f"{args.file}: {len(err.problems)} problem(s); nothing was imported", file=sys.stderr)
                for problem in err.problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
    if args.json:
        print(json.dumps(report.as_json(), indent=2))
    else:
        for result in report.results:
            why = f"  {result.message}" if result.message else ""
            print(f"  line {result.line:>5}  {result.legacy_id:<24} {result.process_instance_id:<44} "
                  f"{result.outcome}{why}")
        counts = ", ".join(f"{n} {k.lower().replace('_', ' ')}" for k, n in report.counts.items())
        verb = "would import" if args.dry_run else "imported"
        left = report.cases - len(report.results)
        print(f"{args.file}: {report.cases} case(s); {counts or 'nothing done'}"
              + (f"; {verb} {left}" if args.dry_run else "") + f"; {report.seconds:.1f}s")
        if report.stopped:
            print(f"stopped early: {report.stopped}; run the same import again to carry on", file=sys.stderr)
    return 1 if report.stopped or report.counts.get("FAILED") else 0


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
        if not settings.flowable_url and (recorded := engine_record.read(settings.data_dir, url)) is not None:
            log.error("the engine already runs: %s; not starting a second one", recorded.describe())
            return 2
        with provisioned_engine(settings, url, "engine start") as endpoint:
            print(f"Flowable REST API: {endpoint.base_url}  (user {endpoint.user}); Ctrl-C stops it", flush=True)
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
    deploy = command("deploy", cmd_deploy, "validate BPMN files, deploy them to Flowable (skipping unchanged ones) "
                     "and sync their departments, roles and queues")
    deploy.add_argument("files", nargs="+", type=Path, metavar="FILE")
    deploy.add_argument("--dry-run", action="store_true",
                        help="print what would change (deployment, departments, roles, queues) and change nothing")
    deploy.add_argument("--by", default=getpass.getuser(), help="recorded as deployed_by (default: you)")
    deploy.add_argument("--business-app", help="business app of the definitions (default: from the file, else ONECMS)")
    deploy.add_argument("--adopt", action="append", default=[], metavar="KIND:NAME",
                        help="take over a role, queue or department another workflow owns (role:CODE, "
                             "queue:NAME, department:CODE; repeatable): without it a deploy that would change one "
                             "is refused")
    linted = command("lint", cmd_lint, "check BPMN files as a deploy would (structure, our rules, the deploy "
                     "policy) without a database or an engine; exit code 0 when every file is deployable, 1 when "
                     "one has errors or cannot be read")
    linted.add_argument("files", nargs="+", type=Path, metavar="FILE")
    linted.add_argument("--format", choices=("text", "json"), default="text",
                        help="json: {ok, files: [{file, ok, processes, issues: [{file, line, elementId, code, "
                             "message, severity}]}]}, for CI pipelines")
    reconcile = command("reconcile", cmd_reconcile, "run one reconciler pass: read what changed in the engine "
                        "since the last pass and repair the mirror (the first pass backfills everything)")
    reconcile.add_argument("--sweep", action="store_true",
                           help="also compare every running instance and every instance the mirror holds open")
    command("drift", cmd_drift, "compare the whole mirror with the engine and print every difference; "
            "exit code 1 when they differ")
    command("escalate", cmd_escalate, "one SLA escalation round: escalate overdue tasks and carry out their "
            "queues' escalation_config, in the engine too")
    demo = commands.add_parser("demo", help="demonstration data", description="demonstration data")
    demo_commands = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    demo_seed = command("seed", cmd_demo_seed, "drive N realistic OneCMS cases through the real engine (random "
                        "routes, rework, some left open, claimed or overdue) and mirror them, for the dashboard "
                        "and reports; makes demo users, one or two per role", demo_commands)
    demo_seed.add_argument("--cases", type=int, default=50, help="how many cases (default 50)")
    demo_seed.add_argument("--seed", type=int, help="random seed, for the same routes again")
    demo_seed.add_argument("--concurrency", type=int, default=8, help="cases driven at once (default 8)")
    command("maintenance", cmd_maintenance, "the seed's daily and weekly database maintenance: vacuum analyze of "
            "the hot tables, statistics of the rest, then dead tuples, the oldest open transaction, unused and "
            "bloated indexes and the slowest statements (pg_stat_statements); prints what it did")
    command("status", cmd_status, "one screen: database and migrations, engine, webhook and reconciler lag, "
            "parked events, queue depths and SLA breaches; exit code 1 when the database or engine is not ok")
    users = commands.add_parser("users", help="people who use the bridge's API", description="users")
    users_commands = users.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    add = command("add", cmd_users_add, "add (or reactivate) a user and grant roles", users_commands)
    add.add_argument("user")
    add.add_argument("--role", action="append", default=[], help="role code to grant (repeatable)")
    add.add_argument("--email")
    add.add_argument("--first-name")
    add.add_argument("--last-name")
    imported = command("import", cmd_users_import, "import departments, users and role grants (with validity "
                       "windows) from a YAML or CSV file, all or nothing", users_commands)
    imported.add_argument("file", type=Path, metavar="FILE")
    imported.add_argument("--by", default=getpass.getuser(), help="recorded as the grants' assigned_by")
    queue_parser = commands.add_parser("queues", help="queue settings: SLA, capacity, escalation, overflow, "
                                       "auto-assignment", description="queue settings")
    queue_commands = queue_parser.add_subparsers(dest="queues_command", required=True, metavar="ACTION")
    show = command("show", cmd_queues_show, "every queue's settings as they take effect, or one queue's with its "
                   "latest changes", queue_commands)
    show.add_argument("queue", nargs="?")
    show.add_argument("--json", action="store_true", help="as JSON, the API's form")
    changed = command("set", cmd_queues_set, "change a queue's settings (all or nothing, recorded): e.g. "
                      "autoAssign=true assignmentStrategy=LEAST_LOADED maxTasksPerUser=5 overflowQueue=OTHER "
                      "escalation.raisePriorityBy=10 escalation.notifyRole=LEAD (escalation is replaced whole; "
                      "escalation={} clears it)", queue_commands)
    changed.add_argument("queue")
    changed.add_argument("settings", nargs="+", metavar="SETTING=VALUE")
    changed.add_argument("--by", default=getpass.getuser(), help="recorded as who changed it (default: you)")
    token = commands.add_parser("token", help="API bearer tokens", description="API bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")

    def token_days(text: str) -> int:
        try:
            days = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"a whole number of days, not {text!r}") from None
        if days < 1:
            raise argparse.ArgumentTypeError(f"at least 1 day, not {days} (a token that never expires: --no-expiry)")
        if days > auth.MAX_TOKEN_DAYS:
            raise argparse.ArgumentTypeError(f"at most {auth.MAX_TOKEN_DAYS} days, not {days} "
                                             "(a token that never expires: --no-expiry)")
        return days

    def token_id(text: str) -> int:
        if not text.isascii() or not text.isdigit():
            raise argparse.ArgumentTypeError(f"a token id (a number, as bridge token list shows), not {text!r}; "
                                             "to revoke by label: --label LABEL")
        return int(text)

    create = command("create", cmd_token_create, "create a bearer token for a user and print it (once); it "
                     f"expires after {auth.DEFAULT_TOKEN_DAYS} days unless --days or --no-expiry says otherwise",
                     token_commands)
    create.add_argument("user")
    create.add_argument("--label", help="what the token is for (also a way to revoke it)")
    lifetime = create.add_mutually_exclusive_group()
    lifetime.add_argument("--days", type=token_days, metavar="N",
                          help=f"expires after N days, 1 to {auth.MAX_TOKEN_DAYS} "
                               f"(default: {auth.DEFAULT_TOKEN_DAYS})")
    lifetime.add_argument("--no-expiry", action="store_true", help="a token that never expires (revoke it when "
                          "it is no longer needed)")
    listed = command("list", cmd_token_list, "list tokens (of USER, or everyone's): id, user, label, created, "
                     "expires, last used, state (active, expired, revoked, user inactive); never the secret",
                     token_commands)
    listed.add_argument("user", nargs="?", metavar="USER")
    listed.add_argument("--json", action="store_true", help="as JSON")
    revoke = command("revoke", cmd_token_revoke, "revoke a token by its id (bridge token list) or by its "
                     "label; the API refuses it (401) from the next request", token_commands)
    named = revoke.add_mutually_exclusive_group(required=True)
    named.add_argument("token_id", nargs="?", type=token_id, metavar="TOKEN_ID")
    named.add_argument("--label", help="the token's label (refused when several live tokens carry it)")
    revoke.add_argument("--user", help="only a token of this user")
    retention_parser = command("retention", cmd_retention, "how long completed instances stay in the mirror's hot "
                               "tables, per process key: days, where they come from (bpmn, cli, default), "
                               "completed instances and how many are past retention")
    retention_parser.add_argument("--json", action="store_true", help="as JSON")
    retention_commands = retention_parser.add_subparsers(dest="retention_command", metavar="ACTION")
    retention_set = command("set", cmd_retention_set, "set a process key's retention in days ('default': back "
                            "to BRIDGE_RETENTION_DAYS); stands until a new version of its BPMN declares "
                            "retentionDays", retention_commands)
    retention_set.add_argument("process_key", metavar="PROCESS_KEY")
    retention_set.add_argument("days", metavar="DAYS")
    retention_set.add_argument("--by", default=getpass.getuser(), help="recorded as set_by (default: you)")

    def moment(text: str) -> datetime:
        try:
            at = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"an ISO-8601 date or date-time, not {text!r}") from None
        return at if at.tzinfo else at.replace(tzinfo=UTC)

    archived = command("archive", cmd_archive, "move completed instances past their retention (bridge retention) "
                       "with their tasks, history, variables and case routing to the archive schema, in small "
                       "transactions with row counts checked; then delete their history in the engine and prune "
                       "the webhook inbox. Exit code 1 when the engine's part is left for a later run")
    archived.add_argument("--dry-run", action="store_true", help="print what is due and change nothing")
    archived.add_argument("--as-of", type=moment, metavar="WHEN",
                          help="count retention back from this moment instead of now (what a date will take)")
    archived.add_argument("--limit", type=int, metavar="N", help="archive at most N instances this run")
    archived.add_argument("--by", default=getpass.getuser(), help="recorded as archived_by (default: you)")
    archived.add_argument("--json", action="store_true", help="the run's report as JSON")
    cases_parser = commands.add_parser("cases", help="cases", description="cases")
    case_commands = cases_parser.add_subparsers(dest="cases_command", required=True, metavar="ACTION")
    imported = command("import", cmd_cases_import, "start cases from a legacy system where they stand: a CSV or "
                       "YAML file, one case per row (legacy_id, activity, process, business_key, assignee, "
                       "candidate_groups, created_at, due_date, variables; README, \"Importing cases\"). Every "
                       "row is checked first and any problem imports nothing; a case imported before is skipped",
                       case_commands)
    imported.add_argument("file", type=Path, metavar="FILE", help="a .csv file, or YAML (.yaml, .yml)")
    imported.add_argument("--process", default=case_import.DEFAULT_PROCESS, metavar="KEY",
                          help=f"the process of rows that name none (default: {case_import.DEFAULT_PROCESS})")
    imported.add_argument("--dry-run", action="store_true", help="check everything, import nothing")
    imported.add_argument("--by", default=getpass.getuser(), help="recorded as the importer (default: you)")
    imported.add_argument("--json", action="store_true", help="the report as JSON")
    instances = commands.add_parser("instances", help="running process instances",
                                    description="running process instances")
    instance_commands = instances.add_subparsers(dest="instances_command", required=True, metavar="ACTION")
    migrated = command("migrate", cmd_instances_migrate, "move running instances of a process from one version to "
                       "another with Flowable's migration: each is validated by the engine first (the dry run "
                       "stops there and says, per instance, migratable or why not), then moved with its tasks, "
                       "which take the new version's queues and candidate groups; exit code 1 when one failed "
                       "or the run stopped early", instance_commands)
    migrated.add_argument("--process", metavar="KEY", help="the process key")
    migrated.add_argument("--from-version", type=int, metavar="N", help="move instances running on version N")
    migrated.add_argument("--to-version", type=int, metavar="M", help="to version M (deployed with bridge deploy)")
    migrated.add_argument("--activity", action="append", default=[], metavar="ID",
                          help="only instances waiting in this activity (repeatable)")
    migrated.add_argument("--business-key", action="append", default=[], metavar="KEY",
                          help="only the instance with this business key (repeatable)")
    migrated.add_argument("--map", action="append", default=[], metavar="OLD=NEW",
                          help="move what waits in activity OLD to activity NEW (repeatable); activities not "
                               "mapped keep their id")
    migrated.add_argument("--dry-run", action="store_true", help="validate every chosen instance, change nothing")
    migrated.add_argument("--resume", type=int, metavar="ID",
                          help="carry on run ID (as it was asked) after it stopped: moves what is still on the old "
                               "version")
    migrated.add_argument("--by", default=getpass.getuser(), help="recorded as the acting user (default: you)")
    migrated.add_argument("--json", action="store_true", help="the run's report as JSON")
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
    logs.configure(verbose=args.verbose, json_lines=os.environ.get("BRIDGE_LOG_FORMAT") == "json")
    try:
        settings = Settings.from_env()
        return args.handler(settings, args)
    except BridgeError as err:  # the bridge refused, and says why (bridge/errors.py): no traceback
        log.error("%s", err)
        return 2
    except (psycopg.OperationalError, sqlalchemy.exc.OperationalError) as err:
        log.error("cannot reach the database: %s", str(err).strip().splitlines()[0])
        return 2


if __name__ == "__main__":
    sys.exit(main())
