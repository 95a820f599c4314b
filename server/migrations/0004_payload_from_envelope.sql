-- The envelope is the only stored copy of an alert's payload. The `jsonb` column held the same
-- bytes a second time, and building it cost more than the rest of the row (a `jsonb` parse of
-- every payload, 40% of the WAL per alert); the console read it only for its free-text filter.
-- Queries derive the payload from the envelope instead: `alert_payload_text(envelope)` is the
-- payload exactly as signed, `alert_payload(envelope)` the same as `jsonb`, and the view
-- `alert_payloads` has every alert column plus `payload jsonb` for ad-hoc SQL. Both functions
-- are IMMUTABLE, so an expression index can be built on a field a deployment filters by often.
ALTER TABLE alerts DROP COLUMN payload;

-- Ingest only stores envelopes that are UTF-8 JSON with a base64 payload that is UTF-8 JSON
-- without NUL bytes, so these never fail on stored rows.
CREATE FUNCTION alert_payload_text(envelope bytea) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT convert_from(decode(convert_from(envelope, 'UTF8')::json ->> 'payload', 'base64'), 'UTF8') $$;

-- `jsonb` cannot hold U+0000: a `\u0000` escape (one not preceded by an odd run of
-- backslashes, so a real escape) reads as U+FFFD here; the envelope keeps the original.
CREATE FUNCTION alert_payload(envelope bytea) RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT regexp_replace(alert_payload_text(envelope),
                                '(?<![^\\]\\(\\\\)*)\\u0000', '\\ufffd', 'g')::jsonb $$;

CREATE VIEW alert_payloads AS
    SELECT host_id, epoch, seq, received_at, alert_time, uuid, rule_id, rule_name, severity,
           key_id, envelope, alert_payload(envelope) AS payload
    FROM alerts;

-- Heartbeats rewrite their host's row: room on every page keeps those updates HOT (no index
-- entry per heartbeat). Rows written from now on get it; VACUUM FULL hosts applies it to all.
ALTER TABLE hosts SET (fillfactor = 50);

-- Replay records are appended in time order and only ever pruned by age: a BRIN index finds
-- the old ones as well as a B-tree did, at almost no cost per heartbeat.
DROP INDEX IF EXISTS request_replay_age;
CREATE INDEX request_replay_age ON request_replay USING brin (seen_at);
