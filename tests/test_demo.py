"""bridge demo seed drives cases through the real engine, and a seed gives the same cases again."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bridge.demo import DemoSeeder

pytestmark = pytest.mark.slow


async def test_the_same_seed_walks_the_same_routes_however_cases_interleave(db, flowable):
    runs = []
    for concurrency in (1, 6):
        seeder = DemoSeeder(db, flowable, seed=4, concurrency=concurrency)
        await seeder.prepare()
        outcome = await seeder.seed(12)
        runs.append((outcome.finished, outcome.tasks_completed, outcome.left_open, outcome.left_claimed,
                     outcome.made_overdue, dict(outcome.decisions)))
    assert runs[0] == runs[1]
    assert runs[0][1] > 12 and sum(runs[0][5].values()) > 0  # cases really moved, and decisions were made

    async with db.connect() as conn:  # the mirror holds the seeded work (resynced from the engine)
        mirrored = (await conn.execute(text(
            "SELECT count(*) FROM flowable.process_instances WHERE business_key LIKE 'DEMO-%'"))).scalar()
        demo_users = (await conn.execute(text(
            "SELECT count(*) FROM entitlements.users WHERE user_id LIKE 'demo.%'"))).scalar()
    assert mirrored == 24 and demo_users > 0
