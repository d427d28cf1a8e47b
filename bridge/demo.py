"""`bridge demo seed --cases N`: realistic OneCMS cases driven through the real engine, so the dashboard and
the reports have something to show.

Each case starts with a random case type and severity and walks its route the way case workers would:
demo users (one or two per role, created here) claim and complete tasks with the decisions the forms
make (triage accept/reject/withdraw, supervisor approve/rework/reject), so some cases finish, some loop
back for rework, and some stop part-way, open or claimed. Some of those are made overdue by moving their
due date into the past in the engine. Everything goes through Flowable's REST API; the mirror is then
brought up to date from the engine for the seeded instances (the webhooks bring the same, when they flow).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from bridge import auth
from bridge.bpmn.reader import load_bpmn
from bridge.deploy import deploy_bpmn
from bridge.flowable.client import FlowableClient, FlowableError, engine_time
from bridge.mirror.apply import fold_pending_counts
from bridge.mirror.reconcile import resync_instances

ONECMS_FILE = Path(__file__).resolve().parent.parent / "bpmn" / "OneCMS_Nextgen_WF.bpmn20.xml"
PROCESS_KEY = "OneCMS_Nextgen_WF"
CASE_TYPES = ("FRAUD", "LEGAL_CLAIM", "REGULATORY", "QUALITY")
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# decisions the forms make, with how often
DECISIONS: dict[str, tuple[str, list[tuple[str, float]]]] = {
    "triageCase": ("triageDecision", [("ACCEPT", 0.86), ("REJECT", 0.08), ("WITHDRAW", 0.06)]),
    "supervisorApproval": ("approvalDecision", [("APPROVE", 0.7), ("REWORK", 0.2), ("REJECT", 0.07),
                                                ("WITHDRAW", 0.03)]),
}
USERS_PER_ROLE = 2
MAX_STEPS = 40  # a case that keeps being sent back for rework stops here, still open


@dataclass
class DemoOutcome:
    cases: int = 0
    finished: int = 0
    tasks_completed: int = 0
    left_open: int = 0
    left_claimed: int = 0
    made_overdue: int = 0
    reworked: int = 0
    instance_ids: list[str] = field(default_factory=list)
    decisions: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        return (f"{self.cases} case(s): {self.finished} finished, {self.cases - self.finished} still running "
                f"({self.left_open} task(s) open, {self.left_claimed} claimed, {self.made_overdue} overdue); "
                f"{self.tasks_completed} task(s) completed, {self.reworked} sent back for rework")


class DemoSeeder:
    def __init__(self, db: AsyncEngine, flowable: FlowableClient, *, seed: int | None = None,
                 concurrency: int = 8) -> None:
        self.db, self.flowable = db, flowable
        self.random_seed = seed
        self.concurrency = concurrency
        self.groups: dict[str, str] = {}  # task definition key -> its candidate group
        self.users: dict[str, list[str]] = {}  # candidate group -> demo users holding that role

    async def prepare(self) -> None:
        """Deploy OneCMS (a no-op when current) and make the demo users, each with the role of a group."""
        data = ONECMS_FILE.read_bytes()
        await deploy_bpmn(data, ONECMS_FILE.name, db=self.db, flowable=self.flowable, deployed_by="demo")
        [process] = [p for p in load_bpmn(data, ONECMS_FILE.name).processes if p.key == PROCESS_KEY]
        self.groups = {t.id: t.candidate_groups[0] for t in process.user_tasks if t.candidate_groups}
        async with self.db.begin() as conn:
            for group in sorted(set(self.groups.values())):
                self.users[group] = []
                for n in range(1, USERS_PER_ROLE + 1):
                    user_id = f"demo.{group.lower()}.{n}"
                    await auth.add_user(conn, user_id, roles=[group], granted_by="demo", first_name="Demo",
                                        last_name=f"{group.replace('_', ' ').title()} {n}")
                    self.users[group].append(user_id)

    async def seed(self, cases: int, on_case_done: Callable[[], None] = lambda: None) -> DemoOutcome:
        outcome = DemoOutcome()
        gate = asyncio.Semaphore(self.concurrency)
        first_case_id = random.Random(self.random_seed).randrange(10**8, 9 * 10**8)

        async def one(n: int) -> None:
            # a generator per case: with a seed, each case takes the same route however cases interleave
            rng = random.Random(None if self.random_seed is None else f"{self.random_seed}/{n}")
            async with gate:
                await self._walk(rng, first_case_id + n, outcome)
            on_case_done()

        await asyncio.gather(*(one(n) for n in range(cases)))
        # The mirror of every seeded instance, equal to the engine now.
        for start in range(0, len(outcome.instance_ids), 100):
            await resync_instances(self.db, self.flowable, outcome.instance_ids[start:start + 100])
        async with self.db.begin() as conn:
            await fold_pending_counts(conn)
        return outcome

    async def _walk(self, rng: random.Random, case_id: int, outcome: DemoOutcome) -> None:
        instance = await self.flowable.start_process(
            PROCESS_KEY, business_key=f"DEMO-{case_id}-{uuid.uuid4().hex[:4]}",
            variables={"caseId": case_id, "caseType": rng.choice(CASE_TYPES), "severity": rng.choice(SEVERITIES)})
        pid = instance["id"]
        outcome.cases += 1
        outcome.instance_ids.append(pid)
        # how far this case gets: most go a good way, a few stop at once
        budget = rng.choice([0, 1, 2, 3, 4, 6, 8, 12, MAX_STEPS, MAX_STEPS, MAX_STEPS])
        for _ in range(budget):
            open_tasks = await self.flowable.tasks(processInstanceId=pid)
            if not open_tasks:
                outcome.finished += 1
                return
            task = rng.choice(sorted(open_tasks, key=lambda t: t["taskDefinitionKey"]))
            await self._complete(rng, task, outcome)
        open_tasks = await self.flowable.tasks(processInstanceId=pid)
        if not open_tasks:
            outcome.finished += 1
            return
        for task in sorted(open_tasks, key=lambda t: t["taskDefinitionKey"]):
            await self._leave(rng, task, outcome)

    def _user_for(self, rng: random.Random, task: dict) -> str:
        group = self.groups.get(task["taskDefinitionKey"])
        return rng.choice(self.users[group]) if group in self.users else "demo.unassigned"

    async def _claim(self, task: dict, user: str) -> None:
        try:
            await self.flowable.claim_task(task["id"], user)
        except FlowableError as err:
            if err.status != 409:
                raise
            # the running service's auto-assignment (a queue setting) gave it to someone first: theirs now

    async def _complete(self, rng: random.Random, task: dict, outcome: DemoOutcome) -> None:
        variables = {}
        if task["taskDefinitionKey"] in DECISIONS:
            name, choices = DECISIONS[task["taskDefinitionKey"]]
            decision = rng.choices([c for c, _ in choices], [w for _, w in choices])[0]
            variables[name] = decision
            outcome.decisions[f"{name}={decision}"] += 1
            outcome.reworked += decision == "REWORK"
        await self._claim(task, self._user_for(rng, task))
        await self.flowable.complete_task(task["id"], variables)
        outcome.tasks_completed += 1

    async def _leave(self, rng: random.Random, task: dict, outcome: DemoOutcome) -> None:
        """A task left where it stands: open in its queue or claimed by someone, sometimes overdue."""
        if rng.random() < 0.4:
            await self._claim(task, self._user_for(rng, task))
            outcome.left_claimed += 1
        else:
            outcome.left_open += 1
        if rng.random() < 0.25:
            overdue_by = timedelta(minutes=rng.randrange(5, 3 * 24 * 60))
            await self.flowable.update_task(task["id"], dueDate=engine_time(datetime.now(UTC) - overdue_by))
            outcome.made_overdue += 1
