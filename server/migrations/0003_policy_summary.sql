-- What a published policy holds, for listings that must not decode every envelope: the
-- built-in rule, the block list, the signing key id (NULL for rows stored without one).
ALTER TABLE policies
    ADD COLUMN builtin boolean,
    ADD COLUMN block   jsonb,
    ADD COLUMN key_id  text;
