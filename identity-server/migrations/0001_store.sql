-- identity-server shared store, version 1: the store's own identity.
-- Migrations run in one transaction under an advisory lock (identity-server/src/store/postgres/migrations.rs);
-- a migration, once released, is never edited: a change is a new file.
CREATE TABLE ids_store (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    store_id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ids_store DEFAULT VALUES;
