-- Database health (bridge/db_health.py): what keeps a Postgres-backed queue fast, read from the statistics
-- views. Every figure is PostgreSQL's own; nothing here writes.

-- name: tables
-- The hot tables (:names, schema-qualified): live and dead tuples, and when (auto)vacuum and analyze last ran.
SELECT s.schemaname || '.' || s.relname AS table_name, s.n_live_tup AS live_tuples, s.n_dead_tup AS dead_tuples,
       greatest(s.last_autovacuum, s.last_vacuum) AS last_vacuum, s.last_autovacuum,
       greatest(s.last_autoanalyze, s.last_analyze) AS last_analyze,
       s.n_mod_since_analyze AS changed_since_analyze, pg_total_relation_size(s.relid) AS total_bytes
FROM pg_stat_user_tables s
WHERE s.schemaname || '.' || s.relname = ANY(:names)
ORDER BY s.n_dead_tup DESC, table_name;

-- name: oldest_transactions
-- Open transactions, oldest first, and how many transaction ids each holds the xmin horizon back: while one
-- is open, vacuum can remove no row version deleted after it began (anywhere in the cluster).
SELECT a.pid, a.usename AS user_name, a.application_name, host(a.client_addr) AS client, a.state,
       extract(epoch FROM now() - a.xact_start)::float8 AS open_seconds,
       age(a.backend_xmin) AS xmin_age, left(a.query, 200) AS last_query
FROM pg_stat_activity a
WHERE a.xact_start IS NOT NULL AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
ORDER BY a.xact_start
LIMIT 5;

-- name: xmin_horizon
-- What holds the horizon furthest back, of everything that can: sessions, prepared transactions, replication
-- slots (a forgotten one holds it for ever).
SELECT coalesce(max(held), 0) AS xmin_age FROM (
    SELECT age(backend_xmin) AS held FROM pg_stat_activity WHERE backend_xmin IS NOT NULL
    UNION ALL SELECT age(transaction) FROM pg_prepared_xacts
    UNION ALL SELECT age(xmin) FROM pg_replication_slots WHERE xmin IS NOT NULL
    UNION ALL SELECT age(catalog_xmin) FROM pg_replication_slots WHERE catalog_xmin IS NOT NULL
) horizons;

-- name: unused_indexes
-- Indexes of our schemas never scanned since the statistics were reset, that enforce nothing: each costs
-- every insert and update. (A fresh server has scanned nothing yet: read with the statistics' age.)
SELECT i.schemaname || '.' || i.indexrelname AS index_name, i.schemaname || '.' || i.relname AS table_name,
       pg_relation_size(i.indexrelid) AS bytes
FROM pg_stat_user_indexes i JOIN pg_index x ON x.indexrelid = i.indexrelid
WHERE i.schemaname IN ('flowable', 'onecms', 'entitlements') AND i.idx_scan = 0
  AND NOT x.indisunique AND NOT x.indisprimary
ORDER BY bytes DESC, index_name;

-- name: index_bloat
-- B-tree bloat, estimated the way the well-known ioguix query does, simplified: the pages an index would
-- need for its rows (tuple header 8 bytes + line pointer 4 + the columns' average width from pg_stats,
-- pages filled to 90%) against the pages it has. An estimate: it needs fresh statistics (ANALYZE).
WITH estimate AS (
    SELECT n.nspname || '.' || ci.relname AS index_name, n.nspname || '.' || ct.relname AS table_name,
           ci.relpages AS pages, ci.reltuples AS tuples,
           (SELECT coalesce(sum(s.avg_width), 0) FROM pg_attribute a
              JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = ct.relname AND s.attname = a.attname
             WHERE a.attrelid = ct.oid AND a.attnum = ANY(x.indkey)) AS key_width
    FROM pg_index x
    JOIN pg_class ci ON ci.oid = x.indexrelid
    JOIN pg_class ct ON ct.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = ci.relnamespace
    JOIN pg_am am ON am.oid = ci.relam AND am.amname = 'btree'
    WHERE n.nspname IN ('flowable', 'onecms', 'entitlements') AND ci.relpages > 10
)
SELECT index_name, table_name, pages, pages * current_setting('block_size')::int8 AS bytes,
       greatest(0, pages - 1 - ceil(tuples * (12 + key_width) / (current_setting('block_size')::int8 * 0.9)))::int8
           AS bloat_pages
FROM estimate
ORDER BY bloat_pages DESC, index_name;

-- name: has_pg_stat_statements
-- Installed and usable: the extension created in this database, and its library loaded at server start (its
-- settings exist only then). Created without shared_preload_libraries, reading the view raises an error.
SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')
       AND current_setting('pg_stat_statements.max', true) IS NOT NULL AS installed;

-- name: slow_statements
-- The statements with the highest mean time (pg_stat_statements, when the extension is installed).
SELECT left(regexp_replace(query, '\s+', ' ', 'g'), 160) AS query, calls, mean_exec_time AS mean_ms,
       total_exec_time AS total_ms
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY mean_exec_time DESC
LIMIT :limit;

-- name: archiving
-- The archive ledger (migration 0024, bridge/archive.py): instances archived, and how many of them still wait
-- for the engine's own history to be deleted (the partial index idx_archived_instances_engine_pending).
SELECT (SELECT count(*) FROM archive.archived_instances) AS archived_instances,
       (SELECT count(*) FROM archive.archived_instances WHERE engine_history_deleted_at IS NULL)
           AS engine_history_pending,
       (SELECT max(archived_at) FROM archive.archived_instances) AS last_archived_at;
