"""Scale-out: claim + complete and webhook ingest with 1 vs 2 bridge replicas and 1 vs 2 engine nodes, in one run;
then a soak at a sustained engine event rate.

    make bench-scale     # or: python -m bench.scale --workers 16 --seconds 20 --soak-minutes 10

One embedded PostgreSQL; two engine nodes (the same jar, two ports), each pushing to the bridges' URL list; the
bridge replicas are `bridge serve` processes (BRIDGE_WORKERS=1 each, separate process trees), restarted for each
configuration with FLOWABLE_URL listing that configuration's engine nodes. For each of (bridges, engines) in
(1, 1), (2, 1), (1, 2), (2, 2): OneCMS cases are started through the configuration's engine nodes, then
--workers workers (each its own user and token, spread over the replicas) loop POST /api/work/next +
POST /api/tasks/{id}/complete for --seconds; the engine events pushed meanwhile are counted and their
push-to-readable latency (engine commit to the mirror's apply) read from flowable.engine_events.

On 2 cores every process shares the same two CPUs: a second replica or node adds coordination (a second JVM, a
second connection pool, the lease) and no CPU, so the ratios show the cost of coordination, not a speed-up.

The soak starts cases through both nodes for --soak-minutes at a rate steered every 10 s toward --events-per-s
engine events received (a case's events depend on how far the 4 workers, claiming and completing meanwhile, take
it): push-to-readable p50/p99 (target p99 under 250 ms), events parked or dropped (target none), the events/s
held after the first third, and the resident memory of every process a minute apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

from bench.serving import wait_until_serving
from bench.work_throughput import GROUP, ONECMS, QUEUE
from bridge import auth
from bridge.config import PROJECT_ROOT
from bridge.db.connections import open_database
from bridge.db.embedded import EmbeddedPostgres, free_tcp_port
from bridge.db.migrate import migrate
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableClient
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret
from bridge.mirror.reconcile import Reconciler

CONFIGS = [(1, 1), (2, 1), (1, 2), (2, 2)]


@dataclass
class Window:
    bridges: int
    engines: int
    tasks: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    events: int = 0
    push_p50_ms: float = 0.0
    push_p99_ms: float = 0.0
    slow: dict[str, int] = field(default_factory=dict)  # requests over a second, by replica port and step


def start_replica(env: dict[str, str], port: int, log: Path, engines: list[LocalEngine]) -> subprocess.Popen:
    replica_env = {**env, "BRIDGE_PORT": str(port), "BRIDGE_WORKERS": "1",
                   "FLOWABLE_URL": ",".join(e.base_url for e in engines)}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve"], cwd=PROJECT_ROOT, env=replica_env,
                                stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


async def start_cases(clients: list[FlowableClient], count: int, tag: str) -> None:
    """count OneCMS cases, spread over the engine nodes, 8 at a time."""
    gate = asyncio.Semaphore(8)

    async def one(n: int) -> None:
        async with gate:
            await clients[n % len(clients)].start_process("OneCMS_Nextgen_WF", business_key=f"{tag}{n}", variables={
                "caseId": n, "caseType": "QUALITY", "severity": "LOW"})

    await asyncio.gather(*(one(n) for n in range(count)))


async def work(ports: list[int], tokens: list[str], seconds: float, window: Window) -> None:
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession, n: int, token: str) -> int:
        base, headers, done = f"http://127.0.0.1:{ports[n % len(ports)]}", {"Authorization": f"Bearer {token}"}, 0
        def timed(step: str, since: float) -> float:
            now = time.perf_counter()
            if now - since > 1.0:
                key = f"{base.rsplit(':', 1)[1]} {step}"
                window.slow[key] = window.slow.get(key, 0) + 1
            return now

        while time.monotonic() < deadline:
            began = time.perf_counter()
            async with session.post(f"{base}/api/work/next", json={"queues": [QUEUE]}, headers=headers) as taken:
                if taken.status == 204:
                    await asyncio.sleep(0.05)  # the mirror has not caught up with the starts yet
                    continue
                assert taken.status == 200, await taken.text()
                task = await taken.json()
            claimed = timed("next", began)
            async with session.post(f"{base}/api/tasks/{task['task_id']}/complete", json={},
                                    headers=headers) as completed:
                assert completed.status == 200, await completed.text()
            timed("complete", claimed)
            window.latencies_ms.append((time.perf_counter() - began) * 1000)
            done += 1
        return done

    began = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
        window.tasks = sum(await asyncio.gather(*(worker(session, n, t) for n, t in enumerate(tokens))))
    window.seconds = time.monotonic() - began


async def pushes(url: str, since: float, until: float) -> tuple[int, float, float]:
    """Engine events received in [since, until) (epoch seconds): count, push-to-readable p50 and p99 in ms."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        row = await (await conn.execute("""
            SELECT count(*),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - occurred_at)) * 1000,
                   percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM applied_at - occurred_at)) * 1000
            FROM flowable.engine_events
            WHERE received_at >= to_timestamp(%s) AND received_at < to_timestamp(%s) AND applied_at IS NOT NULL
            """, [since, until])).fetchone()
    return int(row[0]), float(row[1] or 0), float(row[2] or 0)


def _configs(text: str) -> list[tuple[int, int]]:
    if text == "none":
        return []
    pairs = [tuple(int(n) for n in part.split("+")) for part in text.split(",")]
    if not pairs or any(len(p) != 2 or not (1 <= p[0] <= 2 and 1 <= p[1] <= 2) for p in pairs):
        raise argparse.ArgumentTypeError("configurations are bridges+engines, each 1 or 2: 1+1,2+1")
    return [(p[0], p[1]) for p in pairs]


def keep_logs(tmp: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    for log in tmp.glob("*.log"):
        shutil.copy(log, into / log.name)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (a bridge's serving process, a JVM), in MB."""
    total = 0.0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--cases", type=int, default=1500, help="registration tasks made per configuration")
    parser.add_argument("--events-per-s", type=float, default=500)
    parser.add_argument("--soak-minutes", type=float, default=10)
    parser.add_argument("--configs", type=_configs, default=CONFIGS,
                        help="bridges+engines, comma-separated (default: 1+1,2+1,1+2,2+2; the first is the base); "
                             "none: the soak alone")
    parser.add_argument("--keep-logs", type=Path, help="copy the engines' and replicas' logs here at the end")
    args = parser.parse_args()

    jar = await asyncio.to_thread(build_engine_jar)
    secret = new_webhook_secret()
    replica_ports = [free_tcp_port(), free_tcp_port()]
    hook_list = ",".join(f"http://127.0.0.1:{p}/webhooks/flowable" for p in replica_ports)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        engines = [LocalEngine(jar, database_url=url, webhook_url=hook_list, webhook_secret=secret,
                               log_file=Path(tmp) / f"engine-{n}.log", java_options=["-Xmx768m"],
                               extra_env={"ENGINE_NAME": f"node-{n}"}) for n in range(2)]
        for engine in engines:
            await asyncio.to_thread(engine.start)
        env = {**os.environ, "DATABASE_URL": url, "FLOWABLE_USER": engines[0].user,
               "FLOWABLE_PASSWORD": engines[0].password, "WEBHOOK_SECRET": secret,
               # a sweep every 2 minutes: a 10-minute soak sees five, over ever more open cases
               "BRIDGE_RECONCILE_INTERVAL_S": "10", "BRIDGE_RECONCILE_SWEEP_MINUTES": "2",
               "BRIDGE_ESCALATE_INTERVAL_S": "0",
               "BRIDGE_AUTO_ASSIGN_INTERVAL_S": "0", "BRIDGE_DATA_DIR": str(Path(tmp) / "bridge-data")}
        db = open_database(url, pool_size=2)
        clients = [FlowableClient.of(e) for e in engines]
        replicas: list[subprocess.Popen] = []
        windows: list[Window] = []
        soak: dict[str, object] = {}
        try:
            await deploy_bpmn(ONECMS.read_bytes(), ONECMS.name, db=db, flowable=clients[0], deployed_by="bench")
            tokens = []
            async with db.begin() as conn:
                for n in range(args.workers):
                    await auth.add_user(conn, f"clerk{n}", roles=[GROUP], granted_by="bench")
                    tokens.append(await auth.create_token(conn, f"clerk{n}"))
            for n_bridges, n_engines in args.configs:
                replicas = [start_replica(env, port, Path(tmp) / f"bridge-{port}.log", engines[:n_engines])
                            for port in replica_ports[:n_bridges]]
                for port in replica_ports[:n_bridges]:
                    await wait_until_serving(f"http://127.0.0.1:{port}/healthz")
                window = Window(n_bridges, n_engines)
                await start_cases(clients[:n_engines], args.cases, f"c{n_bridges}{n_engines}-")
                await Reconciler(db, clients[0]).run_once()  # whatever a push has not brought yet
                began = time.time()
                await work(replica_ports[:n_bridges], tokens, args.seconds, window)
                await asyncio.sleep(1)  # the last pushes land
                window.events, window.push_p50_ms, window.push_p99_ms = await pushes(url, began, time.time())
                windows.append(window)
                for replica in replicas:
                    await asyncio.to_thread(stop, replica)
                print(f"  {n_bridges} bridge(s), {n_engines} engine(s): {window.tasks / window.seconds:.1f} tasks/s",
                      flush=True)

            if args.soak_minutes > 0:
                soak = await run_soak(args, url, env, engines, clients, replica_ports, tokens[:4], Path(tmp))
        finally:
            for replica in replicas:
                await asyncio.to_thread(stop, replica)
            for client in clients:
                await client.close()
            await db.dispose()
            for engine in engines:
                await asyncio.to_thread(engine.stop)
            if args.keep_logs:
                keep_logs(Path(tmp), args.keep_logs)

    if windows:
        print_windows(args, windows)
    if soak:
        print_soak(args, soak)


def print_windows(args, windows: list[Window]) -> None:
    base = windows[0]
    print(f"\nscale-out: claim + complete by {args.workers} workers, {args.seconds:.0f} s per configuration; "
          f"bridge replicas and engine nodes as processes on one machine (2 cores), PostgreSQL 18 embedded\n")
    print(f"{'bridges':>7} | {'engines':>7} | {'tasks/s':>7} | {'p50 ms':>7} | {'p99 ms':>7} | {'events/s':>8} | "
          f"{'push p50':>8} | {'push p99':>8} | vs 1+1")
    print("-" * 92)
    for w in windows:
        q = statistics.quantiles(w.latencies_ms, n=100) if len(w.latencies_ms) > 1 else [0.0] * 99
        rate = w.tasks / w.seconds
        print(f"{w.bridges:>7} | {w.engines:>7} | {rate:>7.1f} | {q[49]:>7.1f} | {q[98]:>7.1f} | "
              f"{w.events / w.seconds:>8.0f} | {w.push_p50_ms:>6.0f}ms | {w.push_p99_ms:>6.0f}ms | "
              f"{rate / (base.tasks / base.seconds):.2f}x")
    print("On 2 cores the ratios are the cost of coordination (another JVM, pool, lease), not a speed-up.")
    for w in windows:
        if w.slow:
            print(f"requests over 1 s with {w.bridges}+{w.engines} (replica port, step): "
                  + ", ".join(f"{k} x{n}" for k, n in sorted(w.slow.items())))


async def run_soak(args, url: str, env: dict[str, str], engines: list[LocalEngine], clients: list[FlowableClient],
                   ports: list[int], tokens: list[str], tmp: Path) -> dict[str, object]:
    replicas = [start_replica(env, port, tmp / f"soak-{port}.log", engines) for port in ports]
    try:
        for port in ports:
            await wait_until_serving(f"http://127.0.0.1:{port}/healthz")
        seconds = args.soak_minutes * 60
        processes = {f"engine {n}": e.pid for n, e in enumerate(engines)} | {
            f"bridge {n}": r.pid for n, r in enumerate(replicas)}
        memory: dict[str, list[float]] = {name: [rss_mb(pid)] for name, pid in processes.items()}
        window = Window(2, 2)
        pace = Pace(per_s=5.0)
        soak_began = time.time()
        starts = asyncio.create_task(start_cases_paced(clients, pace, seconds, "soak-"))
        workers = asyncio.create_task(work(ports, tokens, seconds, window))
        # The case rate that makes --events-per-s: an OneCMS case's events depend on how far the workers take it,
        # so the rate is steered by the events the mirror received in each 10 s, not calibrated once.
        steered_at = soak_began
        while not starts.done():
            await asyncio.sleep(10)
            now = time.time()
            events, _, _ = await pushes(url, steered_at, now)
            achieved = events / (now - steered_at)
            pace.per_s = min(200.0, max(0.5, pace.per_s * min(2.0, max(0.5, args.events_per_s / max(achieved, 1)))))
            pace.history.append(achieved)
            steered_at = now
            if len(pace.history) % 6 == 0:  # a memory sample a minute
                for name, pid in processes.items():
                    memory[name].append(rss_mb(pid))
        await asyncio.gather(starts, workers)
        for name, pid in processes.items():
            memory[name].append(rss_mb(pid))
        await asyncio.sleep(2)
        ended = time.time()
        events, p50, p99 = await pushes(url, soak_began, ended)
        async with await psycopg.AsyncConnection.connect(url) as conn:
            parked = (await (await conn.execute(
                "SELECT count(*) FROM flowable.engine_events WHERE applied_at IS NULL")).fetchone())[0]
        dropped = sum([(await c.emitter_stats())["droppedEvents"] for c in clients])
        steady = pace.history[len(pace.history) // 3:]  # after the first third, once the rate has settled
        return {"cases": pace.started, "seconds": ended - soak_began, "events": events, "p50": p50, "p99": p99,
                "parked": parked, "dropped": dropped, "memory": memory, "tasks": window.tasks,
                "steady_events_per_s": statistics.mean(steady) if steady else 0.0, "final_rate": pace.per_s}
    finally:
        for replica in replicas:
            await asyncio.to_thread(stop, replica)


@dataclass
class Pace:
    per_s: float
    started: int = 0
    history: list[float] = field(default_factory=list)  # events/s received, per 10 s


async def start_cases_paced(clients: list[FlowableClient], pace: Pace, seconds: float, tag: str) -> None:
    """OneCMS cases at pace.per_s (which the caller steers) for `seconds`, spread over the engine nodes."""
    gate = asyncio.Semaphore(64)
    pending: set[asyncio.Task] = set()

    async def one(n: int) -> None:
        async with gate:
            await clients[n % len(clients)].start_process("OneCMS_Nextgen_WF", business_key=f"{tag}{n}", variables={
                "caseId": n, "caseType": "QUALITY", "severity": "LOW"})

    deadline, due = time.monotonic() + seconds, time.monotonic()
    while due < deadline:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        task = asyncio.create_task(one(pace.started))
        pending.add(task)
        task.add_done_callback(pending.discard)
        pace.started += 1
        due += 1 / pace.per_s
    await asyncio.gather(*pending)


def print_soak(args, soak: dict) -> None:
    achieved = soak["events"] / soak["seconds"]
    steady = soak["steady_events_per_s"]
    print(f"\nsoak: 2 bridges, 2 engines, {soak['seconds'] / 60:.1f} min, {soak['cases']:,} OneCMS cases started at "
          f"a rate steered every 10 s toward {args.events_per_s:.0f} engine events/s (last {soak['final_rate']:.1f} "
          f"cases/s); 4 workers completed {soak['tasks']:,} tasks meanwhile")
    print(f"engine events pushed and applied: {soak['events']:,} = {achieved:.0f}/s overall, {steady:.0f}/s after the "
          f"first third ({'reached' if steady >= 0.95 * args.events_per_s else 'NOT reached'}); push-to-readable "
          f"p50 {soak['p50']:.0f} ms, p99 {soak['p99']:.0f} ms ({'under' if soak['p99'] < 250 else 'OVER'} the 250 "
          f"ms target); parked {soak['parked']}, dropped {soak['dropped']}")
    samples = len(next(iter(soak["memory"].values())))
    print(f"\nresident memory, MB, a sample a minute ({samples} samples):")
    for name, values in soak["memory"].items():
        print(f"{name:<10} | " + " ".join(f"{v:>4.0f}" for v in values))


if __name__ == "__main__":
    asyncio.run(main())
