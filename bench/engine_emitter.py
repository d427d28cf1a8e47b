"""What the webhook emitter costs the engine: start + complete a one-task process, emitter off vs on.

    make bench-engine     # or: python -m bench.engine_emitter --window 15 --pairs 4 --clients 4

One engine JVM, warmed up on both paths, then measured in alternating windows (off, on, on, off,
...): the emitter is paused and resumed through its /bridge-emitter/pause|resume endpoints, so both
variants run with the same JIT state, database and table sizes. Paused, the listener returns before
mapping anything, as if it were not there. The "on" windows post to a real receiver in a process of
its own (as the bridge is) that verifies every signature. A cycle is three REST calls: start the
instance, find its task, complete it (two engine transactions, two batches). Everything shares this
machine's cores, so the cost includes receiving the webhooks, as a one-box install has.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bridge.config import PROJECT_ROOT
from bridge.db.embedded import EmbeddedPostgres, free_tcp_port
from bridge.db.migrate import migrate
from bridge.flowable.client import FlowableClient
from bridge.flowable.local_engine import LocalEngine, build_engine_jar, new_webhook_secret
from bridge.mirror.signature import decode_secret, verify

PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:flowable="http://flowable.org/bpmn"
             targetNamespace="bench">
  <process id="benchOneTask" isExecutable="true">
    <startEvent id="start"/>
    <sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
    <userTask id="work" name="Work" flowable:candidateGroups="INTAKE_CLERK" flowable:priority="50"/>
    <sequenceFlow id="f2" sourceRef="work" targetRef="end"/>
    <endEvent id="end"/>
  </process>
</definitions>"""


def serve_receiver(port: int, secret: str, counts) -> None:
    """The webhook receiver's process: verify, count, answer 204 (counts: shared [batches, bad])."""
    key = decode_secret(secret)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        try:
            verify([key], {k.lower(): v for k, v in request.headers.items()}, body)
        except ValueError:
            counts[1] += 1
            return web.Response(status=401)
        counts[0] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/webhooks/flowable", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@dataclass
class Window:
    variant: str
    cycles: int
    seconds: float
    latencies_ms: list[float]
    batches: int

    @property
    def rate(self) -> float:
        return self.cycles / self.seconds


async def drive(client: FlowableClient, seconds: float, clients: int) -> tuple[int, float, list[float]]:
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            instance = await client.start_process("benchOneTask", business_key=uuid.uuid4().hex)
            [task] = await client.tasks(processInstanceId=instance["id"])
            await client.complete_task(task["id"])
            latencies.append((time.perf_counter() - began) * 1000)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return len(latencies), time.monotonic() - started, latencies


async def set_emitter(client: FlowableClient, on: bool) -> None:
    await client.request("POST", "../bridge-emitter/" + ("resume" if on else "pause"))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=float, default=25, help="seconds of warm-up per variant")
    parser.add_argument("--window", type=float, default=15, help="seconds per measured window")
    parser.add_argument("--pairs", type=int, default=4, help="off/on pairs, in ABBA order")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    jar = await asyncio.to_thread(build_engine_jar)
    secret = new_webhook_secret()
    port = free_tcp_port()
    counts = multiprocessing.Array("l", 2)
    receiver = multiprocessing.Process(target=serve_receiver, args=(port, secret, counts), daemon=True)
    receiver.start()

    windows: list[Window] = []
    with tempfile.TemporaryDirectory(prefix="bench-engine-") as tmp, EmbeddedPostgres(Path(tmp), port=0) as pg:
        url = pg.ensure_database("bench")
        await migrate(url, PROJECT_ROOT / "migrations")
        engine = LocalEngine(jar, database_url=url, webhook_url=f"http://127.0.0.1:{port}/webhooks/flowable",
                             webhook_secret=secret, log_file=Path(tmp) / "engine.log", java_options=["-Xmx1g"])
        await asyncio.to_thread(engine.start)
        try:
            async with FlowableClient.of(engine) as client:
                await client.deploy("benchOneTask.bpmn20.xml", PROCESS)
                for on in (True, False):  # JIT warm-up of both paths, not counted
                    await set_emitter(client, on)
                    await drive(client, args.warmup, args.clients)
                order = [v for pair in range(args.pairs) for v in ((False, True) if pair % 2 == 0 else (True, False))]
                for on in order:
                    await set_emitter(client, on)
                    await asyncio.sleep(0.5)  # let the previous window's batches drain
                    before = counts[0]
                    cycles, elapsed, latencies = await drive(client, args.window, args.clients)
                    windows.append(Window("emitter on" if on else "emitter off", cycles, elapsed, latencies,
                                          counts[0] - before))
                stats = await client.request("GET", "../bridge-emitter/stats")
        finally:
            await asyncio.to_thread(engine.stop)
    receiver.terminate()

    print(f"\nengine throughput: start + find task + complete, {args.clients} clients, one warmed-up JVM, "
          f"{args.window:.0f}s windows alternating off/on (ABBA)\n")
    print(f"{'window':<13} | {'cycles':>6} | {'cycles/s':>8} | {'p50 ms':>7} | {'p99 ms':>7} | {'batches':>7}")
    print("-" * 64)
    for w in windows:
        q = statistics.quantiles(w.latencies_ms, n=100)
        print(f"{w.variant:<13} | {w.cycles:>6} | {w.rate:>8.1f} | {q[49]:>7.1f} | {q[98]:>7.1f} | {w.batches:>7}")

    def rate(variant: str) -> float:
        chosen = [w for w in windows if w.variant == variant]
        return sum(w.cycles for w in chosen) / sum(w.seconds for w in chosen)

    off, on = rate("emitter off"), rate("emitter on")
    print(f"\nemitter off {off:.1f} cycles/s, on {on:.1f} cycles/s: on/off {on / off:.3f} "
          f"(cost {100 * (1 - on / off):.1f}%; target under 10%)")
    print(f"batches dropped: {stats['droppedBatches']}; signatures that failed verification: {counts[1]}")


if __name__ == "__main__":
    asyncio.run(main())
