//! [`ChangeFeed`] for the SeaORM datastore: what other processes write,
//! told to the identity cache.
//!
//! - PostgreSQL: triggers on the user, role, user-role and session tables
//!   `NOTIFY` channel `fs_identity` of each changed row, whoever wrote it;
//!   every instance `LISTEN`s.
//! - SQLite: `PRAGMA data_version` on a connection of its own, polled.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement, TransactionTrait};

use super::{DbResult, SeaOrmDatastore};
use crate::datastore::cache::{Change, ChangeFeed, ChangeSink};
use crate::datastore::{DatastoreError, SecurityRole, SecurityUser};

/// The notification channel.
const CHANNEL: &str = "fs_identity";
/// The trigger function, and the name of the row triggers.
const FUNCTION: &str = "fs_identity_changed";
/// The name of the `TRUNCATE` triggers.
const TRUNCATED: &str = "fs_identity_truncated";
/// How long to wait before connecting again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// A table to watch: its name, the column that names what changed, and
/// what kind of thing that is (`u` user id, `s` session id, `r` role: all).
pub(super) struct Watched {
    pub table: String,
    pub column: String,
    pub kind: &'static str,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn trigger_function() -> String {
    format!(
        "CREATE OR REPLACE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $fs$
BEGIN
  IF TG_LEVEL = 'STATEMENT' THEN
    PERFORM pg_notify('{CHANNEL}', '*');
    RETURN NULL;
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || coalesce(to_jsonb(OLD) ->> TG_ARGV[1], ''));
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('{CHANNEL}', TG_ARGV[0] || ':' || coalesce(to_jsonb(NEW) ->> TG_ARGV[1], ''));
  END IF;
  RETURN NULL;
END
$fs$"
    )
}

/// Creates the triggers that are missing (PostgreSQL only), under an
/// advisory lock so that instances starting together do not race.
pub(super) async fn install_triggers(
    db: &DatabaseConnection,
    tables: &[Watched],
) -> Result<(), DatastoreError> {
    if db.get_database_backend() != DatabaseBackend::Postgres {
        return Ok(());
    }
    let missing = |w: &Watched| {
        Statement::from_string(
            DatabaseBackend::Postgres,
            format!(
                "SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = to_regclass({}) \
                 AND tgname IN ({}, {})",
                literal(&quote(&w.table)),
                literal(FUNCTION),
                literal(TRUNCATED)
            ),
        )
    };
    let mut todo = Vec::new();
    for w in tables {
        let n: i64 = match db.query_one_raw(missing(w)).await.db()? {
            Some(row) => row.try_get("", "n").db()?,
            None => 0,
        };
        if n < 2 {
            todo.push(w);
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let txn = db.begin().await.db()?;
    let run = |sql: String| Statement::from_string(DatabaseBackend::Postgres, sql);
    txn.execute_raw(run("SELECT pg_advisory_xact_lock(7346001)".into()))
        .await
        .db()?;
    txn.execute_raw(run(trigger_function())).await.db()?;
    for w in todo {
        let table = quote(&w.table);
        // A row of the user table is worth telling about when it changes or
        // goes; a user-role link also when it is added.
        let events = if w.kind == "l" {
            "INSERT OR UPDATE OR DELETE"
        } else {
            "UPDATE OR DELETE"
        };
        let kind = if w.kind == "l" { "u" } else { w.kind };
        for (name, sql) in [
            (
                FUNCTION,
                format!(
                    "CREATE TRIGGER {FUNCTION} AFTER {events} ON {table} FOR EACH ROW \
                     EXECUTE PROCEDURE {FUNCTION}({}, {})",
                    literal(kind),
                    literal(&w.column)
                ),
            ),
            (
                TRUNCATED,
                format!(
                    "CREATE TRIGGER {TRUNCATED} AFTER TRUNCATE ON {table} FOR EACH STATEMENT \
                     EXECUTE PROCEDURE {FUNCTION}('*', '')"
                ),
            ),
        ] {
            let exists = format!(
                "SELECT 1 AS n FROM pg_trigger WHERE tgrelid = to_regclass({}) AND tgname = {}",
                literal(&table),
                literal(name)
            );
            if txn.query_one_raw(run(exists)).await.db()?.is_none() {
                txn.execute_raw(run(sql)).await.db()?;
            }
        }
    }
    txn.commit().await.db()
}

/// What a notification's payload says changed.
fn parse(payload: &str) -> Change {
    match payload.split_once(':') {
        Some(("u", id)) => id.parse().map(Change::User).unwrap_or(Change::All),
        Some(("s", id)) if !id.is_empty() => Change::Session(id.to_string()),
        _ => Change::All,
    }
}

async fn listen(
    db: &DatabaseConnection,
    tables: &[Watched],
    pool: &sea_orm::sqlx::PgPool,
    sink: &dyn ChangeSink,
) {
    use sea_orm::sqlx::postgres::PgListener;
    // Without the triggers, nothing would be heard of: no caching until
    // they are in place.
    while let Err(e) = install_triggers(db, tables).await {
        log::error!(
            "identity cache: creating the change triggers failed ({e}); not caching \
             (identity_cache = false turns the cache off)"
        );
        rocket::tokio::time::sleep(RETRY * 30).await;
    }
    loop {
        let mut listener = match PgListener::connect_with(pool).await {
            Ok(l) => l,
            Err(e) => {
                log::warn!("identity cache: cannot listen for changes ({e}); not caching");
                rocket::tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            log::warn!("identity cache: LISTEN failed ({e}); not caching");
            rocket::tokio::time::sleep(RETRY).await;
            continue;
        }
        sink.watching(true);
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => sink.changed(parse(n.payload())),
                Ok(None) => {
                    log::warn!("identity cache: the change notifications stopped; not caching");
                    break;
                }
                Err(e) => {
                    log::warn!("identity cache: change notifications failed ({e}); not caching");
                    break;
                }
            }
        }
        sink.watching(false);
    }
}

async fn poll(pool: &sea_orm::sqlx::SqlitePool, sink: &dyn ChangeSink, every: Duration) {
    loop {
        // A connection of its own: `data_version` moves when any other
        // connection (of this process or another) commits.
        let mut conn = match pool.acquire().await {
            Ok(c) => c.detach(),
            Err(e) => {
                log::warn!("identity cache: cannot watch the database ({e}); not caching");
                rocket::tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let mut last = None;
        loop {
            let version = sea_orm::sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                .fetch_one(&mut conn)
                .await;
            match version {
                Ok(v) => {
                    match last {
                        None => sink.watching(true),
                        Some(l) if l != v => sink.changed(Change::All),
                        Some(_) => {}
                    }
                    last = Some(v);
                }
                Err(e) => {
                    log::warn!("identity cache: watching the database failed ({e}); not caching");
                    sink.watching(false);
                    break;
                }
            }
            rocket::tokio::time::sleep(every).await;
        }
        rocket::tokio::time::sleep(RETRY).await;
    }
}

#[rocket::async_trait]
impl<U, R> ChangeFeed for SeaOrmDatastore<U, R>
where
    U: SecurityUser,
    R: SecurityRole,
{
    fn subscribe(&self, sink: Arc<dyn ChangeSink>) {
        SeaOrmDatastore::subscribe(self, sink);
    }

    async fn watch(&self, sink: Arc<dyn ChangeSink>, every: Duration) {
        // (The pool getters are only called for their own backend.)
        match self.db.get_database_backend() {
            DatabaseBackend::Postgres => {
                let tables = match self.watched_tables() {
                    Ok(t) => t,
                    Err(e) => {
                        log::error!("identity cache: {e}; not caching");
                        return;
                    }
                };
                let pool = self.db.get_postgres_connection_pool();
                listen(&self.db, &tables, pool, &*sink).await;
            }
            DatabaseBackend::Sqlite => {
                poll(self.db.get_sqlite_connection_pool(), &*sink, every).await;
            }
            _ => {
                log::warn!(
                    "identity cache: this database cannot report changes; entries are \
                     served for at most identity_cache_max_staleness"
                );
                sink.watching(true);
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(parse("u:42"), Change::User(42));
        assert_eq!(parse("s:ab12"), Change::Session("ab12".into()));
        assert_eq!(parse("r:3"), Change::All);
        assert_eq!(parse("*"), Change::All);
        assert_eq!(parse("u:"), Change::All);
    }
}
