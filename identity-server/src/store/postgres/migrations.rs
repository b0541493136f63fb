//! The schema, versioned and embedded in the binary (`identity-server/migrations/NNNN_*.sql`).
//!
//! Applying runs in one transaction holding a transaction-level advisory lock, so servers starting
//! together take turns: the first applies what is pending, the others then find nothing to do. DDL is
//! transactional in PostgreSQL, so a migration is applied whole or not at all. A database whose schema
//! is newer than this binary knows is refused (an older binary must not write into tables it does not
//! understand); an older one is brought up to date at start-up, unless `Store:ApplyMigrations` is false
//! (then `identity-server store migrate` does it).

use tokio_postgres::GenericClient;

use super::PgError;

/// One schema change.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order; versions are 1, 2, 3... without gaps.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "store identity",
        sql: include_str!("../../../migrations/0001_store.sql"),
    },
    Migration {
        version: 2,
        name: "replay cache and failure budgets",
        sql: include_str!("../../../migrations/0002_replay_and_budgets.sql"),
    },
    Migration {
        version: 3,
        name: "deliveries",
        sql: include_str!("../../../migrations/0003_deliveries.sql"),
    },
    Migration {
        version: 4,
        name: "revoked tokens",
        sql: include_str!("../../../migrations/0004_revoked_tokens.sql"),
    },
    Migration {
        version: 5,
        name: "managed signing keys",
        sql: include_str!("../../../migrations/0005_signing_keys.sql"),
    },
];

/// The schema version this binary writes and reads.
pub fn latest() -> i32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The advisory lock migrations run under (any fixed 64-bit number; "ids_migr" in ASCII).
pub const LOCK_KEY: i64 = 0x6964_735f_6d69_6772;

const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS ids_schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The schema found in a database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Applied versions with their names and times (RFC 3339), oldest first.
    pub applied: Vec<(i32, String, String)>,
    /// The highest applied version (0: an empty database).
    pub current: i32,
    /// What this binary knows.
    pub latest: i32,
}

impl SchemaStatus {
    /// Migrations this binary would apply.
    pub fn pending(&self) -> Vec<&'static Migration> {
        MIGRATIONS
            .iter()
            .filter(|m| m.version > self.current)
            .collect()
    }

    /// Whether this binary can use the database as it is.
    pub fn check(&self) -> Result<(), PgError> {
        if self.current > self.latest {
            return Err(PgError::SchemaNewer {
                found: self.current,
                known: self.latest,
            });
        }
        if self.current < self.latest {
            return Err(PgError::SchemaOlder {
                found: self.current,
                latest: self.latest,
            });
        }
        Ok(())
    }
}

/// Reads the schema version (without locking or changing anything).
pub async fn status(client: &impl GenericClient) -> Result<SchemaStatus, PgError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('ids_schema_migrations') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| PgError::query("read the schema version", &e))?
        .get(0);
    let mut applied = Vec::new();
    if exists {
        for row in client
            .query(
                "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ids_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .map_err(|e| PgError::query("read the schema version", &e))?
        {
            applied.push((row.get(0), row.get(1), row.get(2)));
        }
    }
    let current = applied.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    Ok(SchemaStatus {
        applied,
        current,
        latest: latest(),
    })
}

/// Applies the pending migrations under the advisory lock; the versions it applied (none when the
/// schema was up to date, or another server applied them first).
pub async fn apply(client: &mut tokio_postgres::Client) -> Result<Vec<i32>, PgError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| PgError::query("start the migration", &e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| PgError::query("take the migration lock", &e))?;
    tx.batch_execute(CREATE_TABLE)
        .await
        .map_err(|e| PgError::query("create the schema version table", &e))?;
    let found = status(&tx).await?;
    if found.current > found.latest {
        return Err(PgError::SchemaNewer {
            found: found.current,
            known: found.latest,
        });
    }
    let mut done = Vec::new();
    for m in found.pending() {
        tx.batch_execute(m.sql)
            .await
            .map_err(|e| PgError::Migration {
                version: m.version,
                name: m.name,
                detail: super::describe(&e),
            })?;
        tx.execute(
            "INSERT INTO ids_schema_migrations (version, name) VALUES ($1, $2)",
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| PgError::query("record the schema version", &e))?;
        done.push(m.version);
    }
    tx.commit()
        .await
        .map_err(|e| PgError::query("commit the migration", &e))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_from_one() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.name);
        }
    }
}
