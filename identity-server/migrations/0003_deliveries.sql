-- identity-server shared store: deliveries (identity-server/src/store/postgres/deliveries/).
-- The content is exactly what the folder store keeps: IDSENC, encrypted for the servers'
-- EncryptionCertificate before it reaches this database; it is never stored in clear.

-- Upload numbers: every upload writes its chunks under a number of its own, so that what a dead
-- upload left can never be mistaken for a committed delivery's content.
CREATE SEQUENCE ids_delivery_upload_seq;

-- Committed deliveries: a row appears, in one transaction, only once all its chunks are written;
-- it names them by upload number (and says how many there are).
CREATE TABLE ids_deliveries (
    client_id text NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    size bigint NOT NULL CHECK (size >= 0),
    sha256 text NOT NULL,
    agent text,
    profile text,
    received_at text NOT NULL,
    stored_bytes bigint NOT NULL CHECK (stored_bytes >= 0),
    encrypted_for text NOT NULL,
    upload bigint NOT NULL UNIQUE,
    chunks integer NOT NULL CHECK (chunks >= 0),
    committed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, id)
);
CREATE INDEX ids_deliveries_by_id ON ids_deliveries (id);

-- The stored (encrypted) content, in chunks of up to 1 MiB, numbered from 0.
CREATE TABLE ids_delivery_chunks (
    upload bigint NOT NULL,
    seq integer NOT NULL CHECK (seq >= 0),
    data bytea NOT NULL,
    PRIMARY KEY (upload, seq)
);
-- Encrypted bytes do not compress: store them out of line without trying.
ALTER TABLE ids_delivery_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
-- One entry per upload (its first chunk, always written first): what the sweeper scans for uploads
-- that belong to no record and no lease, instead of every chunk.
CREATE INDEX ids_delivery_chunks_first ON ids_delivery_chunks (upload) WHERE seq = 0;

-- Uploads in progress: one lease per client and id, across every server. A live lease (expires_at in
-- the future, refreshed while the upload runs) refuses a second upload of the same id; an expired one
-- (its server died) may be taken over. Its reservation counts against Deliveries:QuotaMiB.
CREATE TABLE ids_delivery_uploads (
    client_id text NOT NULL,
    id text NOT NULL,
    upload bigint NOT NULL UNIQUE,
    reserved_bytes bigint NOT NULL CHECK (reserved_bytes >= 0),
    server text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (client_id, id)
);

-- Bytes stored by committed deliveries (Deliveries:QuotaMiB), kept with each commit. Its row lock
-- also serialises the quota check of uploads starting on different servers.
CREATE TABLE ids_delivery_usage (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    stored_bytes bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0)
);
INSERT INTO ids_delivery_usage DEFAULT VALUES;
