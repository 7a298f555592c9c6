//! [`CeremonyStore`] and its implementation for [`SeaOrmDatastore`] over
//! the `fs_ceremony` table.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::{CeremonyRecord, TABLE};
use crate::datastore::{DatastoreError, SeaOrmDatastore};

const COLUMNS: [&str; 5] = ["id", "kind", "user_id", "data", "expires_at"];

/// What a datastore without the extension answers.
const UNSUPPORTED: DatastoreError = DatastoreError::Unsupported("ceremonies (CeremonyStore)");

/// Storage of ceremonies and claims (see the [module docs](super)).
///
/// Every method defaults to [`DatastoreError::Unsupported`]; a datastore
/// opts in by implementing it and offering it through
/// [`UserDatastore::extensions`](crate::UserDatastore::extensions).
/// [`SeaOrmDatastore`] does. Records must be shared by every instance of
/// the application; [`replace`](CeremonyStore::replace),
/// [`take`](CeremonyStore::take) and [`claim`](CeremonyStore::claim) must be
/// atomic (one conditional statement each).
#[rocket::async_trait]
pub trait CeremonyStore: Send + Sync + 'static {
    /// Stores a new record.
    async fn put(&self, record: CeremonyRecord) -> Result<(), DatastoreError> {
        let _ = record;
        Err(UNSUPPORTED)
    }

    /// The record `id`, unless it expired by `now`.
    async fn get(&self, id: &str, now: i64) -> Result<Option<CeremonyRecord>, DatastoreError> {
        let _ = (id, now);
        Err(UNSUPPORTED)
    }

    /// Sets the data of record `id` to `new` if it is still `old` and the
    /// record has not expired; whether it did.
    async fn replace(
        &self,
        id: &str,
        old: &str,
        new: &str,
        now: i64,
    ) -> Result<bool, DatastoreError> {
        let _ = (id, old, new, now);
        Err(UNSUPPORTED)
    }

    /// Deletes record `id` if its data is still `data` and it has not
    /// expired; whether it did (of concurrent callers, one).
    async fn take(&self, id: &str, data: &str, now: i64) -> Result<bool, DatastoreError> {
        let _ = (id, data, now);
        Err(UNSUPPORTED)
    }

    /// Deletes record `id`, if there is one.
    async fn delete(&self, id: &str) -> Result<(), DatastoreError> {
        let _ = id;
        Err(UNSUPPORTED)
    }

    /// Inserts `record` unless a live record has its id; whether it did.
    async fn claim(&self, record: CeremonyRecord, now: i64) -> Result<bool, DatastoreError> {
        let _ = (record, now);
        Err(UNSUPPORTED)
    }

    /// Deletes every record that expired by `now`; how many.
    async fn purge(&self, now: i64) -> Result<u64, DatastoreError> {
        let _ = now;
        Err(UNSUPPORTED)
    }
}

fn backend(e: DbErr) -> DatastoreError {
    DatastoreError::Backend(Box::new(e))
}

fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

fn record(row: &QueryResult) -> Result<CeremonyRecord, DatastoreError> {
    Ok(CeremonyRecord {
        id: row.try_get("", "id").map_err(backend)?,
        kind: row.try_get("", "kind").map_err(backend)?,
        user_id: row.try_get("", "user_id").map_err(backend)?,
        data: row.try_get("", "data").map_err(backend)?,
        expires_at: row.try_get("", "expires_at").map_err(backend)?,
    })
}

fn insert(record: CeremonyRecord) -> Result<sea_orm::sea_query::InsertStatement, DatastoreError> {
    let mut stmt = Query::insert();
    stmt.into_table(Alias::new(TABLE))
        .columns(COLUMNS.map(Alias::new))
        .values([
            record.id.into(),
            record.kind.into(),
            record.user_id.into(),
            record.data.into(),
            record.expires_at.into(),
        ])
        .map_err(|e| backend(DbErr::Custom(e.to_string())))?;
    Ok(stmt)
}

#[rocket::async_trait]
impl<U: 'static, R: 'static> CeremonyStore for SeaOrmDatastore<U, R> {
    async fn put(&self, record: CeremonyRecord) -> Result<(), DatastoreError> {
        let stmt = insert(record)?;
        self.connection().execute(&stmt).await.map_err(backend)?;
        Ok(())
    }

    async fn get(&self, id: &str, now: i64) -> Result<Option<CeremonyRecord>, DatastoreError> {
        let q = Query::select()
            .columns(COLUMNS.map(Alias::new))
            .from(Alias::new(TABLE))
            .and_where(col("id").eq(id))
            .and_where(col("expires_at").gt(now))
            .to_owned();
        match self.connection().query_one(&q).await.map_err(backend)? {
            Some(row) => record(&row).map(Some),
            None => Ok(None),
        }
    }

    async fn replace(
        &self,
        id: &str,
        old: &str,
        new: &str,
        now: i64,
    ) -> Result<bool, DatastoreError> {
        let q = Query::update()
            .table(Alias::new(TABLE))
            .value(Alias::new("data"), new)
            .and_where(col("id").eq(id))
            .and_where(col("data").eq(old))
            .and_where(col("expires_at").gt(now))
            .to_owned();
        let res = self.connection().execute(&q).await.map_err(backend)?;
        Ok(res.rows_affected() == 1)
    }

    async fn take(&self, id: &str, data: &str, now: i64) -> Result<bool, DatastoreError> {
        let q = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(col("id").eq(id))
            .and_where(col("data").eq(data))
            .and_where(col("expires_at").gt(now))
            .to_owned();
        let res = self.connection().execute(&q).await.map_err(backend)?;
        Ok(res.rows_affected() == 1)
    }

    async fn delete(&self, id: &str) -> Result<(), DatastoreError> {
        let q = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(col("id").eq(id))
            .to_owned();
        self.connection().execute(&q).await.map_err(backend)?;
        Ok(())
    }

    async fn claim(&self, record: CeremonyRecord, now: i64) -> Result<bool, DatastoreError> {
        // An expired claim under the same id no longer counts.
        let stale = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(col("id").eq(record.id.as_str()))
            .and_where(col("expires_at").lte(now))
            .to_owned();
        self.connection().execute(&stale).await.map_err(backend)?;
        let mut stmt = insert(record)?;
        stmt.on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned());
        let res = self.connection().execute(&stmt).await.map_err(backend)?;
        Ok(res.rows_affected() == 1)
    }

    async fn purge(&self, now: i64) -> Result<u64, DatastoreError> {
        let q = Query::delete()
            .from_table(Alias::new(TABLE))
            .and_where(col("expires_at").lte(now))
            .to_owned();
        let res = self.connection().execute(&q).await.map_err(backend)?;
        Ok(res.rows_affected())
    }
}
