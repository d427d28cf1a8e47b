"""A real HTTP receiver for the engine's webhooks, living in the test's event loop."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def batch(self) -> dict:
        return json.loads(self.body)

    @property
    def events(self) -> list[dict]:
        return self.batch["events"]


@dataclass
class WebhookReceiver:
    port: int
    deliveries: list[Delivery] = field(default_factory=list)
    answer_delay_s: float = 0.0  # a slow receiver: the engine's sender backs up behind it
    status: int = 204  # what it answers; 503: a bridge replica that cannot take batches now (records nothing)
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/flowable"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/flowable", self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def go_down(self) -> None:
        """Stop listening and close kept-alive connections: the engine's POSTs fail to connect."""
        await self._runner.cleanup()
        self._runner = None

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        delivery = Delivery({k.lower(): v for k, v in request.headers.items()}, await request.read())
        if self.answer_delay_s:
            await asyncio.sleep(self.answer_delay_s)
        if self.status >= 300:
            return web.Response(status=self.status, headers={"Retry-After": "1"})
        async with self._arrived:
            self.deliveries.append(delivery)
            self._arrived.notify_all()
        return web.Response(status=self.status)

    def events_for(self, process_instance_id: str) -> list[list[dict]]:
        """Per delivery that mentions this process instance, in arrival order, the events of that instance
        (a delivery may carry other instances' transactions too: the emitter sends a backlog together)."""
        return [[e for e in d.events if _instance_of(e) == process_instance_id] for d in self.deliveries
                if any(_instance_of(e) == process_instance_id for e in d.events)]

    async def wait_for(self, predicate, timeout_s: float = 20) -> None:
        async def until():
            async with self._arrived:
                await self._arrived.wait_for(predicate)
        await asyncio.wait_for(until(), timeout_s)


def _instance_of(event: dict) -> str | None:
    return event.get("processInstanceId") or (event.get("processInstance") or {}).get("id")
