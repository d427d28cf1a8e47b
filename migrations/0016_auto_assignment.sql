-- 0016: auto-assignment (bridge/work/assignment.py).
--
--   * queue_assignments.assignment_strategy is checked: ROUND_ROBIN or LEAST_LOADED. A strategy the bridge
--     does not know is refused when it is configured, not discovered when the first task arrives.
--   * workflow_queues.metadata.lastAutoAssigned keeps whom ROUND_ROBIN served last in each queue.
ALTER TABLE flowable.queue_assignments
    ADD CONSTRAINT chk_assignment_strategy CHECK (assignment_strategy IN ('ROUND_ROBIN', 'LEAST_LOADED'));
