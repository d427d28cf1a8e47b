-- 0007: row-level security: a case worker sees their own tasks and their queues' tasks, enforced
-- by PostgreSQL for the bridge's reading role.
--
-- Changes from the seed design:
--   * The seed's policy called current_setting('app.current_user_id'), which raises when the
--     setting was never made, so any read without it failed instead of returning nothing. It now
--     uses current_setting(..., true) (missing_ok): unset or empty means "nobody", and nobody
--     sees no rows.
--   * RLS never applies to a table's owner (nor to superusers), and the seed names no other
--     role, so as written it protected nothing. Reads on behalf of a user run as bridge_reader,
--     a NOLOGIN role that owns nothing: the bridge does SET LOCAL ROLE bridge_reader and
--     set_config('app.current_user_id', <user>, true) inside the reading transaction. The bridge's
--     own login role stays the owner (the mirror writes every row) and is not filtered.
--   * The seed's policy looked up the user's queues with a subquery over the entitlement tables,
--     evaluated per row and requiring the reading role to read everybody's grants. The lookups are
--     SECURITY DEFINER functions over entitlements.v_active_role_grants (so grants honour
--     valid_from too), wrapped in scalar subqueries so each runs once per query, not per row.
--   * "Their queues" are the home queue of each role they hold and the queues those roles are
--     assigned to (queue_assignments); tasks offered to them directly (candidate_users) or to one
--     of their roles (candidate_groups) are theirs to see as well, since they may claim them.
--   * task_history gets a policy too: a user sees the history of the tasks they can see.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'bridge_reader') THEN
        CREATE ROLE bridge_reader NOLOGIN;
    END IF;
    -- The migrating role must be able to SET ROLE to it (superusers always can).
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT bridge_reader TO %I', current_user);
    END IF;
END;
$$;

CREATE FUNCTION entitlements.app_user_id() RETURNS VARCHAR
LANGUAGE sql STABLE AS $$
    SELECT NULLIF(current_setting('app.current_user_id', true), '')::VARCHAR
$$;

CREATE FUNCTION entitlements.user_role_codes(p_user_id VARCHAR) RETURNS TEXT[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT g.role_code::text), '{}')
    FROM entitlements.v_active_role_grants g
    WHERE g.user_id = p_user_id
$$;

CREATE FUNCTION entitlements.user_queue_names(p_user_id VARCHAR) RETURNS TEXT[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(DISTINCT q.queue_name), '{}')
    FROM (
        SELECT g.queue_name::text AS queue_name
        FROM entitlements.v_active_role_grants g
        WHERE g.user_id = p_user_id AND g.queue_name IS NOT NULL
        UNION
        SELECT wq.queue_name::text
        FROM entitlements.v_active_role_grants g
        JOIN flowable.queue_assignments qa ON qa.role_id = g.role_id AND qa.is_active
        JOIN flowable.workflow_queues wq ON wq.queue_id = qa.queue_id
        WHERE g.user_id = p_user_id
    ) q
$$;

REVOKE ALL ON FUNCTION entitlements.user_role_codes(VARCHAR) FROM PUBLIC;
REVOKE ALL ON FUNCTION entitlements.user_queue_names(VARCHAR) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION entitlements.user_role_codes(VARCHAR) TO bridge_reader;
GRANT EXECUTE ON FUNCTION entitlements.user_queue_names(VARCHAR) TO bridge_reader;

GRANT USAGE ON SCHEMA entitlements, flowable TO bridge_reader;
GRANT SELECT ON flowable.workflow_tasks, flowable.task_history, flowable.workflow_queues,
                entitlements.departments TO bridge_reader;

ALTER TABLE flowable.workflow_tasks ENABLE ROW LEVEL SECURITY;

CREATE POLICY task_access_policy ON flowable.workflow_tasks
    FOR SELECT TO bridge_reader
    USING (
        assignee_id = (SELECT entitlements.app_user_id())
        OR queue_name::text = ANY ((SELECT entitlements.user_queue_names(entitlements.app_user_id()))::text[])
        OR candidate_users @> ARRAY[(SELECT entitlements.app_user_id())::text]
        OR candidate_groups && (SELECT entitlements.user_role_codes(entitlements.app_user_id()))
    );

ALTER TABLE flowable.task_history ENABLE ROW LEVEL SECURITY;

-- The subquery is itself filtered by task_access_policy: visible history = history of visible tasks.
CREATE POLICY task_history_access_policy ON flowable.task_history
    FOR SELECT TO bridge_reader
    USING (EXISTS (SELECT 1 FROM flowable.workflow_tasks t WHERE t.task_id = task_history.task_id));
