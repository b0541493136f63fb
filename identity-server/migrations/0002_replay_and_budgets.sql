-- identity-server shared store, version 2: the private_key_jwt replay cache and the failed-authentication
-- budgets, shared by every server (identity-server/src/store/postgres/replay.rs and budgets.rs).

-- One row per accepted client assertion: refused as a replay by every server until refuse_until
-- (the assertion's exp + the 30 s leeway, Unix seconds). The key is SHA-256(client id, jti) truncated
-- to 128 bits, as in the embedded journal: the jti itself is not kept. Expired rows are deleted by every
-- server's maintenance (any may die) every 30 s. No index on refuse_until: every accepted assertion
-- inserts a row, and a second index would cost each of them more than the scan of the table (at most
-- MaxClientAssertionLifetimeSeconds + 30 s of assertions) costs the maintenance twice a minute.
CREATE TABLE ids_replay (
    key bytea PRIMARY KEY CHECK (octet_length(key) = 16),
    client_id text NOT NULL,
    refuse_until bigint NOT NULL
);

-- One token bucket of failed authentications per source address (IPv4, or IPv6 /64): tokens left at
-- `at` (Unix seconds); `rate` a minute refill it, up to `rate`. A bucket untouched for a minute is full,
-- as good as absent: maintenance deletes it.
CREATE TABLE ids_auth_budgets (
    source inet PRIMARY KEY,
    tokens double precision NOT NULL,
    at bigint NOT NULL
);
CREATE INDEX ids_auth_budgets_at ON ids_auth_budgets (at);
