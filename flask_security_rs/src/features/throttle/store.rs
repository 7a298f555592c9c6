//! Where failure counts live: [`ThrottleStore`], and its implementation for
//! [`SeaOrmDatastore`] over the `fs_throttle` table.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::datastore::{DatastoreError, SeaOrmDatastore};

/// The table (see [`super::table`]).
pub(crate) const TABLE: &str = "fs_throttle";
const KEY: &str = "key";
const FAILURES: &str = "failures";
const LOCKED_UNTIL: &str = "locked_until";
const UPDATED_AT: &str = "updated_at";

/// What a datastore without the extension answers.
const UNSUPPORTED: DatastoreError = DatastoreError::Unsupported("throttling (ThrottleStore)");

/// How consecutive failures on one key turn into a lock.
///
/// ```
/// use flask_security_rs::Backoff;
///
/// let b = Backoff { free_attempts: 3, base_delay: 10, max_delay: 60, reset_after: 3600 };
/// let locks: Vec<i64> = (1..=7).map(|n| b.lock_secs(n)).collect();
/// assert_eq!(locks, [0, 0, 10, 20, 40, 60, 60]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Consecutive failures answered as usual; the failure that reaches this
    /// count locks the key, so the attempt after it is throttled.
    pub free_attempts: u32,
    /// The first lock, in seconds; each further failure doubles it.
    pub base_delay: i64,
    /// The longest lock, in seconds.
    pub max_delay: i64,
    /// A key's failures are forgotten once its last one is older than this
    /// many seconds (at least `max_delay`).
    pub reset_after: i64,
}

impl Backoff {
    /// How long the `failures`-th consecutive failure locks its key, in
    /// seconds: 0 below `free_attempts`, then `base_delay × 2^(failures −
    /// free_attempts)`, at most `max_delay`.
    pub fn lock_secs(&self, failures: i64) -> i64 {
        let excess = failures - i64::from(self.free_attempts);
        if excess < 0 {
            0
        } else if excess >= self.doublings() {
            self.max_delay
        } else {
            self.base_delay << excess
        }
    }

    /// The number of doublings after which the lock is `max_delay`: the
    /// least `k` with `base_delay × 2^k ≥ max_delay`.
    fn doublings(&self) -> i64 {
        let mut k = 0u32;
        while k < 62
            && self
                .base_delay
                .checked_mul(1i64 << k)
                .is_some_and(|d| d < self.max_delay)
        {
            k += 1;
        }
        i64::from(k)
    }
}

/// One key's counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleEntry {
    /// `user:<fs_uniquifier>`, `ip:<address>`, ...
    pub key: String,
    /// Consecutive failures (since the last reset, within `reset_after`).
    pub failures: i64,
    /// Unix time (seconds) until which attempts on the key are refused; 0
    /// or past when it is not locked.
    pub locked_until: i64,
    /// Unix time (seconds) of the last failure.
    pub updated_at: i64,
}

/// Storage of failed-authentication counts for the throttle feature.
///
/// Every method defaults to [`DatastoreError::Unsupported`], so a datastore
/// opts in by implementing the trait and offering it through
/// [`UserDatastore::extensions`](crate::UserDatastore::extensions)
/// (`extensions.insert::<dyn ThrottleStore>(self)`). [`SeaOrmDatastore`]
/// does, over the `fs_throttle` table its migrations create. Counts must be
/// shared by every instance of the application, and
/// [`record_failure`](ThrottleStore::record_failure) must be atomic: N
/// concurrent failures on a key count N.
#[rocket::async_trait]
pub trait ThrottleStore: Send + Sync + 'static {
    /// The entries of those `keys` that have one.
    async fn entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, DatastoreError> {
        let _ = keys;
        Err(UNSUPPORTED)
    }

    /// Counts one failure on `key` at unix time `now` and locks the key for
    /// [`Backoff::lock_secs`] of the new count (never shortening a lock in
    /// force); a count whose last failure is older than `reset_after` starts
    /// again at 1. Returns the entry as updated.
    async fn record_failure(
        &self,
        key: &str,
        now: i64,
        backoff: &Backoff,
    ) -> Result<ThrottleEntry, DatastoreError> {
        let _ = (key, now, backoff);
        Err(UNSUPPORTED)
    }

    /// Forgets `key`'s failures.
    async fn reset(&self, key: &str) -> Result<(), DatastoreError> {
        let _ = key;
        Err(UNSUPPORTED)
    }

    /// Deletes the entries whose last failure is before `before` and whose
    /// lock is over at `now`; returns how many.
    async fn purge(&self, before: i64, now: i64) -> Result<u64, DatastoreError> {
        let _ = (before, now);
        Err(UNSUPPORTED)
    }
}

fn backend(e: DbErr) -> DatastoreError {
    DatastoreError::Backend(Box::new(e))
}

fn col(name: &'static str) -> Expr {
    Expr::col((Alias::new(TABLE), Alias::new(name)))
}

fn entry(row: &QueryResult) -> Result<ThrottleEntry, DatastoreError> {
    Ok(ThrottleEntry {
        key: row.try_get("", KEY).map_err(backend)?,
        failures: row.try_get("", FAILURES).map_err(backend)?,
        locked_until: row.try_get("", LOCKED_UNTIL).map_err(backend)?,
        updated_at: row.try_get("", UPDATED_AT).map_err(backend)?,
    })
}

fn all_columns() -> [Alias; 4] {
    [KEY, FAILURES, LOCKED_UNTIL, UPDATED_AT].map(Alias::new)
}

/// `max(a, b)` in SQL both SQLite and PostgreSQL run.
fn greater(a: Expr, b: Expr) -> Expr {
    Expr::case(a.clone().gt(b.clone()), a).finally(b).into()
}

/// One upsert: `INSERT .. ON CONFLICT (key) DO UPDATE SET failures = <n>,
/// locked_until = <max(old, now + lock(n))>, updated_at = now RETURNING ..`,
/// where `n` is `failures + 1`, or 1 when the last failure is older than
/// `reset_after`, and the lock `base << (n - free)` up to `max` (the shift
/// stays below the doubling that reaches `max`, so it never overflows).
fn upsert(key: &str, now: i64, b: &Backoff) -> Result<InsertStatement, DbErr> {
    let free = i64::from(b.free_attempts);
    let n: Expr = Expr::case(col(UPDATED_AT).lt(now - b.reset_after), Expr::val(1i64))
        .finally(col(FAILURES).add(1i64))
        .into();
    let excess = n.clone().sub(free);
    let lock: Expr = Expr::case(excess.clone().gte(b.doublings()), Expr::val(b.max_delay))
        .finally(Expr::val(b.base_delay).left_shift(excess.cast_as("integer")))
        .into();
    let until = Expr::val(now).add(lock);
    let locked: Expr = Expr::case(n.clone().lt(free), col(LOCKED_UNTIL))
        .finally(greater(col(LOCKED_UNTIL), until))
        .into();
    let first = match b.lock_secs(1) {
        0 => 0,
        secs => now + secs,
    };
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(TABLE))
        .columns(all_columns())
        .values([key.into(), 1i64.into(), first.into(), now.into()])
        .map_err(|e| DbErr::Custom(e.to_string()))?
        .on_conflict(
            OnConflict::column(Alias::new(KEY))
                .values([
                    (Alias::new(FAILURES), n),
                    (Alias::new(LOCKED_UNTIL), locked),
                    (Alias::new(UPDATED_AT), Expr::val(now)),
                ])
                .to_owned(),
        )
        .returning(Query::returning().columns(all_columns()));
    Ok(stmt)
}

#[rocket::async_trait]
impl<U: 'static, R: 'static> ThrottleStore for SeaOrmDatastore<U, R> {
    async fn entries(&self, keys: &[String]) -> Result<Vec<ThrottleEntry>, DatastoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let q = Query::select()
            .columns(all_columns())
            .from(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new(KEY)).is_in(keys.iter().cloned()))
            .to_owned();
        let rows = self.connection().query_all(&q).await.map_err(backend)?;
        rows.iter().map(entry).collect()
    }

    async fn record_failure(
        &self,
        key: &str,
        now: i64,
        backoff: &Backoff,
    ) -> Result<ThrottleEntry, DatastoreError> {
        let stmt = upsert(key, now, backoff).map_err(backend)?;
        match self.connection().query_one(&stmt).await.map_err(backend)? {
            Some(row) => entry(&row),
            None => Err(backend(DbErr::RecordNotFound(format!(
                "{TABLE}: the upsert returned no row"
            )))),
        }
    }

    async fn reset(&self, key: &str) -> Result<(), DatastoreError> {
        let q = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new(KEY)).eq(key))
            .to_owned();
        self.connection().execute(&q).await.map_err(backend)?;
        Ok(())
    }

    async fn purge(&self, before: i64, now: i64) -> Result<u64, DatastoreError> {
        let q = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(Expr::col(Alias::new(UPDATED_AT)).lt(before))
            .and_where(Expr::col(Alias::new(LOCKED_UNTIL)).lte(now))
            .to_owned();
        let res = self.connection().execute(&q).await.map_err(backend)?;
        Ok(res.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::sea_query::{PostgresQueryBuilder, SqliteQueryBuilder};

    const B: Backoff = Backoff {
        free_attempts: 3,
        base_delay: 10,
        max_delay: 45,
        reset_after: 3600,
    };

    #[test]
    fn lock_grows_exponentially_up_to_the_cap() {
        let locks: Vec<i64> = (0..=7).map(|n| B.lock_secs(n)).collect();
        assert_eq!(locks, [0, 0, 0, 10, 20, 40, 45, 45]);
        assert_eq!(B.doublings(), 3);
        let huge = Backoff {
            free_attempts: 1,
            base_delay: 1,
            max_delay: i64::MAX,
            reset_after: i64::MAX,
        };
        assert_eq!(huge.lock_secs(1), 1);
        assert_eq!(huge.lock_secs(1000), i64::MAX);
        let first = Backoff {
            free_attempts: 1,
            ..B
        };
        assert_eq!(first.lock_secs(1), 10);
    }

    #[test]
    fn upsert_is_one_portable_statement() {
        let stmt = upsert("user:x", 1000, &B).unwrap();
        for sql in [
            stmt.to_string(SqliteQueryBuilder),
            stmt.to_string(PostgresQueryBuilder),
        ] {
            assert!(sql.starts_with(r#"INSERT INTO "fs_throttle""#), "{sql}");
            assert!(
                sql.contains(r#"ON CONFLICT ("key") DO UPDATE SET"#),
                "{sql}"
            );
            assert!(sql.contains(r#""fs_throttle"."failures" + 1"#), "{sql}");
            assert!(sql.contains("<< CAST("), "{sql}");
            assert!(sql.contains("RETURNING"), "{sql}");
        }
    }
}
