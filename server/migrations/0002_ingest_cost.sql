-- Cheaper ingest: every index on `alerts` is paid by every alert, so only the ones the pages
-- use stay (time, rule, host; severity and text filters ride the time index). The envelope
-- (base64, which does not compress) stays in the row instead of going to TOAST: rows up to
-- 8 KB are kept whole (toast_tuple_target, set on every partition). The payload compresses
-- with lz4, faster than the default pglz.
DROP INDEX IF EXISTS alerts_by_severity;
DROP INDEX IF EXISTS alerts_by_uuid;
ALTER TABLE alerts ALTER COLUMN envelope SET STORAGE MAIN;
ALTER TABLE alerts ALTER COLUMN payload SET COMPRESSION lz4;
DO $$
DECLARE p regclass;
BEGIN
    FOR p IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'alerts'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (toast_tuple_target = 8160)', p);
    END LOOP;
END $$;
