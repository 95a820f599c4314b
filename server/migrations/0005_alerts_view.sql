-- The alerts are stored in the partitioned table `alert_rows`; `alerts` is a view of it with
-- every column plus `payload jsonb`, read out of the envelope (`alert_payload(envelope)`), so
-- `SELECT payload FROM alerts` and `payload->'kibana.alert.rule'` filters on `alerts` keep
-- working as they did when the payload was a stored column (0001 to 0003), while ingest still
-- writes each payload once (0004). PostgreSQL flattens the view into each query, so a query
-- that does not name `payload` costs what it costs on the table (the same index scans).
-- The view is automatically updatable for its stored columns (UPDATE, DELETE, INSERT without
-- `payload`); COPY and partition DDL go to `alert_rows`. The partitions keep their names
-- (`alerts_default`, `alerts_YYYY_MM`), as do the indexes and the primary key: renaming the
-- parent renames nothing else. `alert_payloads` (0004) stays, as another name of `alerts`.
ALTER TABLE alerts RENAME TO alert_rows;

CREATE VIEW alerts AS
    SELECT host_id, epoch, seq, received_at, alert_time, uuid, rule_id, rule_name, severity,
           key_id, envelope, alert_payload(envelope) AS payload
    FROM alert_rows;

CREATE OR REPLACE VIEW alert_payloads AS SELECT * FROM alerts;
