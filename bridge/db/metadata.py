"""SQLAlchemy Core description of the tables the migrations create.

The migrations are the source of truth; this module lets Python build queries against the same
tables with names and types checked. tests/test_metadata_drift.py fails when the two disagree.
Indexes, triggers, views and functions live only in migrations/.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    CHAR,
    BigInteger,
    Boolean,
    Column,
    Computed,
    ForeignKey,
    Identity,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TIMESTAMP

metadata = MetaData()

TZ = TIMESTAMP(timezone=True)
NOW = text("now()")
EMPTY_OBJECT = text("'{}'::jsonb")


def _json(name: str, *, default=EMPTY_OBJECT) -> Column:
    return Column(name, JSONB, nullable=False, server_default=default)


def _stamped(name: str) -> Column:
    """A NOT NULL timestamptz that defaults to the transaction's time."""
    return Column(name, TZ, nullable=False, server_default=NOW)


# -- entitlements ----------------------------------------------------------------------------------

departments = Table(
    "departments", metadata,
    Column("department_id", BigInteger, Identity(), primary_key=True),
    Column("department_code", String(50), nullable=False, unique=True),
    Column("department_name", String(100), nullable=False),
    Column("parent_dept_id", BigInteger, ForeignKey("entitlements.departments.department_id")),
    Column("description", Text),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _stamped("created_at"),
    _stamped("updated_at"),
    _json("metadata"),
    Column("owner_process_key", String(255)),  # migration 0022: the process key that owns it
    schema="entitlements",
)

users = Table(
    "users", metadata,
    Column("user_id", String(50), primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("email", String(255)),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("department_id", BigInteger, ForeignKey("entitlements.departments.department_id")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _stamped("created_at"),
    _stamped("updated_at"),
    _json("metadata"),
    schema="entitlements",
)

workflow_roles = Table(
    "workflow_roles", metadata,
    Column("role_id", BigInteger, Identity(), primary_key=True),
    Column("role_code", String(100), nullable=False, unique=True),
    Column("role_name", String(200), nullable=False),
    Column("role_type", String(50), nullable=False),  # SYSTEM | DEPARTMENT | CUSTOM
    Column("department_id", BigInteger, ForeignKey("entitlements.departments.department_id")),
    Column("queue_name", String(100), ForeignKey("flowable.workflow_queues.queue_name")),
    _json("permissions"),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _stamped("created_at"),
    _stamped("updated_at"),
    _json("metadata"),
    Column("owner_process_key", String(255)),  # migration 0022: the process key that owns it
    schema="entitlements",
)

user_workflow_roles = Table(
    "user_workflow_roles", metadata,
    Column("user_role_id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(50), ForeignKey("entitlements.users.user_id"), nullable=False),
    Column("role_id", BigInteger, ForeignKey("entitlements.workflow_roles.role_id"), nullable=False),
    Column("assigned_by", String(50), nullable=False),
    _stamped("assigned_at"),
    _stamped("valid_from"),
    Column("valid_until", TZ),
    Column("is_primary", Boolean, nullable=False, server_default=text("false")),
    _json("metadata"),
    schema="entitlements",
)

api_tokens = Table(
    "api_tokens", metadata,
    Column("token_id", BigInteger, Identity(), primary_key=True),
    Column("user_id", String(50), ForeignKey("entitlements.users.user_id"), nullable=False),
    Column("token_hash", LargeBinary, nullable=False, unique=True),  # sha256 of the bearer token
    Column("label", Text),
    _stamped("created_at"),
    Column("expires_at", TZ),
    Column("revoked_at", TZ),
    Column("last_used_at", TZ),
    schema="entitlements",
)

# -- flowable (our extension tables) ----------------------------------------------------------------

workflow_definitions = Table(
    "workflow_definitions", metadata,
    Column("workflow_id", BigInteger, Identity(), primary_key=True),
    Column("process_key", String(255), nullable=False),
    Column("process_name", String(500), nullable=False),
    Column("process_version", Integer, nullable=False, server_default=text("1")),
    Column("business_app", String(100), nullable=False),
    Column("deployment_id", String(255)),
    Column("bpmn_xml", Text),
    Column("dmn_xml", Text),
    Column("deployed_at", TZ),
    Column("deployed_by", String(50)),
    Column("is_active", Boolean, nullable=False, server_default=text("false")),
    _json("entry_criteria"),
    _json("routing_rules"),
    _json("sla_config"),
    _json("metadata"),
    _stamped("created_at"),
    _stamped("updated_at"),
    schema="flowable",
)

workflow_queues = Table(
    "workflow_queues", metadata,
    Column("queue_id", BigInteger, Identity(), primary_key=True),
    Column("queue_name", String(100), nullable=False, unique=True),
    Column("queue_type", String(50), nullable=False, server_default=text("'STANDARD'")),
    Column("department_id", BigInteger, ForeignKey("entitlements.departments.department_id")),
    Column("description", Text),
    Column("max_capacity", Integer, nullable=False, server_default=text("100")),
    Column("current_load", Integer, nullable=False, server_default=text("0")),
    Column("sla_minutes", Integer, nullable=False, server_default=text("480")),
    _json("escalation_config"),
    _json("routing_rules"),
    _json("priority_weights"),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _stamped("created_at"),
    _stamped("updated_at"),
    _json("metadata"),
    Column("owner_process_key", String(255)),  # migration 0022: the process key that owns it
    schema="flowable",
)

queue_assignments = Table(
    "queue_assignments", metadata,
    Column("assignment_id", BigInteger, Identity(), primary_key=True),
    Column("queue_id", BigInteger, ForeignKey("flowable.workflow_queues.queue_id"), nullable=False),
    Column("role_id", BigInteger, ForeignKey("entitlements.workflow_roles.role_id"), nullable=False),
    Column("priority_level", Integer, nullable=False, server_default=text("50")),
    Column("max_tasks_per_user", Integer, nullable=False, server_default=text("10")),
    Column("auto_assign", Boolean, nullable=False, server_default=text("false")),
    Column("assignment_strategy", String(50), nullable=False, server_default=text("'ROUND_ROBIN'")),
    Column("is_active", Boolean, nullable=False, server_default=text("true")),
    _stamped("created_at"),
    _json("metadata"),
    schema="flowable",
)

process_instances = Table(
    "process_instances", metadata,
    Column("process_instance_id", String(64), primary_key=True),
    Column("workflow_id", BigInteger, ForeignKey("flowable.workflow_definitions.workflow_id"), nullable=False),
    Column("case_id", BigInteger),
    Column("business_key", String(255)),
    Column("parent_process_id", String(64)),
    Column("super_process_id", String(64)),
    Column("started_by", String(50), nullable=False),
    _stamped("started_at"),
    Column("completed_at", TZ),
    Column("suspended_at", TZ),
    # ACTIVE | COMPLETED | SUSPENDED | TERMINATED | ERROR
    Column("status", String(50), nullable=False, server_default=text("'ACTIVE'")),
    Column("current_activity", String(255)),
    Column("end_activity_id", String(255)),  # the end event reached
    _json("variables"),
    _json("context_data"),
    Column("sla_due_date", TZ),
    Column("priority", Integer, nullable=False, server_default=text("50")),
    Column("tags", ARRAY(Text)),
    _json("metadata"),
    schema="flowable",
)

workflow_tasks = Table(
    "workflow_tasks", metadata,
    Column("task_id", String(64), primary_key=True),
    Column("process_instance_id", String(64), ForeignKey("flowable.process_instances.process_instance_id"),
           nullable=False),
    Column("task_definition_key", String(255), nullable=False),
    Column("task_name", String(500), nullable=False),
    Column("task_type", String(50), nullable=False, server_default=text("'USER_TASK'")),
    Column("queue_name", String(100), ForeignKey("flowable.workflow_queues.queue_name"), nullable=False),
    Column("assignee_id", String(50)),
    Column("candidate_groups", ARRAY(Text)),
    Column("candidate_users", ARRAY(Text)),
    Column("priority", Integer, nullable=False, server_default=text("50")),
    # OPEN | CLAIMED | COMPLETED | CANCELLED | DELEGATED | ESCALATED
    Column("status", String(50), nullable=False, server_default=text("'OPEN'")),
    Column("form_key", String(255)),
    _stamped("created_at"),
    Column("claimed_at", TZ),
    Column("claimed_by", String(50)),
    Column("completed_at", TZ),
    Column("completed_by", String(50)),
    Column("due_date", TZ),
    Column("follow_up_date", TZ),
    Column("escalation_level", Integer, nullable=False, server_default=text("0")),
    Column("escalated_at", TZ),
    _json("task_data"),
    _json("form_data"),
    Column("outcome", String(100)),
    Column("outcome_reason", Text),
    _json("metadata"),
    schema="flowable",
)

task_history = Table(
    "task_history", metadata,
    # partitioned by month of action_at (migration 0024): the partition key is part of the primary key
    Column("history_id", BigInteger, primary_key=True,
           server_default=text("nextval('flowable.task_history_id_seq'::regclass)")),
    Column("task_id", String(64), nullable=False),  # no FK: history outlives archived tasks
    Column("process_instance_id", String(64), nullable=False),
    Column("action_type", String(50), nullable=False),
    Column("action_by", String(50), nullable=False),
    Column("action_at", TZ, nullable=False, server_default=NOW, primary_key=True),
    Column("old_status", String(50)),
    Column("new_status", String(50)),
    Column("old_assignee", String(50)),
    Column("new_assignee", String(50)),
    Column("delegate_to", String(50)),
    Column("escalate_to", String(50)),
    Column("comments", Text),
    _json("action_data"),
    _json("client_info"),
    schema="flowable",
)

workflow_variables = Table(
    "workflow_variables", metadata,
    Column("variable_id", BigInteger, Identity(), primary_key=True),
    Column("process_instance_id", String(64), ForeignKey("flowable.process_instances.process_instance_id")),
    Column("task_id", String(64)),
    Column("variable_name", String(255), nullable=False),
    # STRING | INTEGER | BOOLEAN | DATE | JSON | BINARY
    Column("variable_type", String(50), nullable=False),
    Column("variable_value", Text),
    Column("variable_json", JSONB),
    _stamped("created_at"),
    _stamped("updated_at"),
    Column("updated_by", String(50)),
    Column("changed_at", TZ),  # the engine's time of the change held (migration 0011)
    schema="flowable",
)

# The mirror's inbox (0009): what the engine pushed, stored once, applied later.
webhook_batches = Table(
    "webhook_batches", metadata,
    Column("webhook_id", String(100), primary_key=True),
    Column("engine", String(100)),
    Column("engine_instance_id", String(100)),
    Column("batch_seq", BigInteger),
    Column("committed_at", TZ),
    Column("event_count", Integer, nullable=False),
    _stamped("received_at"),
    schema="flowable",
)

engine_events = Table(
    "engine_events", metadata,
    Column("event_id", String(100), primary_key=True),
    Column("webhook_id", String(100), ForeignKey("flowable.webhook_batches.webhook_id"), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_type", String(100), nullable=False),
    Column("entity_type", String(50)),
    Column("process_instance_id", String(64)),
    Column("occurred_at", TZ),
    Column("payload", JSONB, nullable=False),
    _stamped("received_at"),
    Column("applied_at", TZ),
    Column("apply_error", Text),  # set when applying failed; the event stays parked (migration 0012)
    Column("task_id", String(64), Computed(
        "COALESCE(payload -> 'task' ->> 'id', payload -> 'identityLink' ->> 'taskId')", persisted=True)),
    schema="flowable",
)

queue_load_changes = Table(
    "queue_load_changes", metadata,
    Column("change_id", BigInteger, Identity(always=True), primary_key=True),
    Column("queue_name", String(100), nullable=False),
    Column("delta", Integer, nullable=False),
    schema="flowable",
)

api_idempotency = Table(
    "api_idempotency", metadata,
    Column("user_id", String(50), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("request_hash", CHAR(64), nullable=False),
    Column("response_status", Integer, nullable=False),
    Column("response_body", JSONB, nullable=False),
    _stamped("created_at"),
    schema="flowable",
)

queue_setting_changes = Table(  # migration 0021: bridge/work/queues.py records each change of a queue's settings
    "queue_setting_changes", metadata,
    Column("change_id", BigInteger, Identity(), primary_key=True),
    Column("queue_name", String(100),
           ForeignKey("flowable.workflow_queues.queue_name", onupdate="CASCADE", ondelete="CASCADE"), nullable=False),
    _stamped("changed_at"),
    Column("changed_by", String(100), nullable=False),
    Column("source", String(300), nullable=False),
    Column("before", JSONB, nullable=False),
    Column("after", JSONB, nullable=False),
    schema="flowable",
)

_HOURLY_FIGURES = ("created", "completed", "completed_late")

task_hourly_stats = Table(  # migration 0018: reports read it through flowable.v_task_hourly_stats
    "task_hourly_stats", metadata,
    Column("hour", TZ, primary_key=True),
    Column("queue_name", String(100), primary_key=True),
    *(Column(name, BigInteger, nullable=False, server_default=text("0")) for name in _HOURLY_FIGURES),
    Column("completion_seconds", Numeric, nullable=False, server_default=text("0")),
    Column("cancelled", BigInteger, nullable=False, server_default=text("0")),  # migration 0028
    schema="flowable",
)

task_stat_changes = Table(
    "task_stat_changes", metadata,
    Column("change_id", BigInteger, Identity(always=True), primary_key=True),
    Column("hour", TZ, nullable=False),
    Column("queue_name", String(100), nullable=False),
    *(Column(name, BigInteger, nullable=False) for name in _HOURLY_FIGURES),
    Column("completion_seconds", Numeric, nullable=False),
    Column("cancelled", BigInteger, nullable=False, server_default=text("0")),
    schema="flowable",
)

reconciler_state = Table(
    "reconciler_state", metadata,
    Column("name", String(50), primary_key=True),
    Column("task_log_number", BigInteger, nullable=False, server_default=text("0")),
    Column("task_log_seen", ARRAY(BigInteger), nullable=False, server_default=text("'{}'::bigint[]")),
    Column("process_time", TZ),
    Column("newest_change_at", TZ),
    Column("last_pass_at", TZ),
    Column("last_full_sweep_at", TZ),
    Column("passes", BigInteger, nullable=False, server_default=text("0")),
    Column("repairs", BigInteger, nullable=False, server_default=text("0")),
    Column("last_error", Text),
    Column("last_error_at", TZ),
    schema="flowable",
)

mirror_repairs = Table(
    "mirror_repairs", metadata,
    Column("repair_id", BigInteger, Identity(), primary_key=True),
    _stamped("found_at"),
    Column("pass_kind", String(20), nullable=False),
    Column("entity_type", String(20), nullable=False),
    Column("entity_id", String(64), nullable=False),
    Column("field", String(50), nullable=False),
    Column("mirror_value", Text),
    Column("engine_value", Text),
    Column("repaired", Boolean, nullable=False),
    schema="flowable",
)

retention_policies = Table(  # migration 0023: bridge/retention.py
    "retention_policies", metadata,
    Column("process_key", String(255), primary_key=True),
    Column("retention_days", Integer, nullable=False),
    Column("source", String(10), nullable=False),
    Column("set_by", String(50), nullable=False),
    _stamped("set_at"),
    schema="flowable",
)

# -- archive (migration 0024): copies of the hot tables, column for column, and the ledger -------------------

archived_instances = Table(
    "archived_instances", metadata,
    Column("process_instance_id", String(64), primary_key=True),
    Column("process_key", String(255), nullable=False),
    Column("case_id", BigInteger),
    Column("business_key", String(255)),
    Column("completed_at", TZ, nullable=False),
    _stamped("archived_at"),
    Column("archived_by", String(50), nullable=False),
    Column("row_counts", JSONB, nullable=False),
    Column("engine_history_deleted_at", TZ),
    schema="archive",
)

# -- onecms ----------------------------------------------------------------------------------------

case_workflow_mapping = Table(
    "case_workflow_mapping", metadata,
    Column("mapping_id", BigInteger, Identity(), primary_key=True),
    Column("case_id", BigInteger, nullable=False),
    Column("process_instance_id", String(64), ForeignKey("flowable.process_instances.process_instance_id"),
           nullable=False),
    Column("workflow_type", String(100), nullable=False),
    Column("initiated_by", String(50), nullable=False),
    _stamped("initiated_at"),
    Column("current_department", String(50)),
    Column("current_phase", String(100)),
    Column("expected_completion", TZ),
    Column("actual_completion", TZ),
    _json("routing_history", default=text("'[]'::jsonb")),
    _json("metadata"),
    schema="onecms",
)
