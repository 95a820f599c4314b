-- A host whose alert store was damaged and repaired (its heartbeat's `store_recovery`) is an
-- integrity event of its own: the analyst sees it next to the gap or rollback it explains.
ALTER TABLE integrity_events
    DROP CONSTRAINT integrity_events_kind_check,
    ADD CONSTRAINT integrity_events_kind_check
        CHECK (kind IN ('gap', 'fork', 'rollback', 'bad_signature', 'reset', 'silent', 'store_recovery'));
