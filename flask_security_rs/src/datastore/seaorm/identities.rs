//! The identity index: one row per normalised email and username
//! (`fs_identity`, primary key `(kind, value)`), written in the same
//! transaction as the user it names. It is what makes two spellings of one
//! address (case, Unicode normal form) unable to become two accounts, even
//! when they arrive concurrently, without rewriting the addresses stored in
//! the user table.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::DbResult;
use crate::datastore::DatastoreError;
use crate::identity::{email_key, username_key};

/// The index table.
pub(crate) const TABLE: &str = "fs_identity";

/// What an index row names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Email,
    Username,
}

impl Kind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Username => "username",
        }
    }

    /// The key `value` is unique and found by.
    pub(crate) fn key(self, value: &str) -> String {
        match self {
            Kind::Email => email_key(value),
            Kind::Username => username_key(value),
        }
    }
}

fn table() -> Alias {
    Alias::new(TABLE)
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// The user the index gives for `key`, if any.
pub(crate) async fn owner<C: ConnectionTrait>(
    conn: &C,
    kind: Kind,
    key: &str,
) -> Result<Option<i64>, DatastoreError> {
    let q = Query::select()
        .column(col("user_id"))
        .from(table())
        .and_where(Expr::col(col("kind")).eq(kind.as_str()))
        .and_where(Expr::col(col("value")).eq(key))
        .to_owned();
    let row = conn.query_one(&q).await.db()?;
    row.map(|r| r.try_get_by_index::<i64>(0))
        .transpose()
        .map_err(|e: DbErr| DatastoreError::Backend(Box::new(e)))
}

/// Records that `key` names `user_id`; [`DatastoreError::Conflict`] when
/// another user holds it.
pub(crate) async fn claim<C: ConnectionTrait>(
    conn: &C,
    kind: Kind,
    key: &str,
    user_id: i64,
) -> Result<(), DatastoreError> {
    let ins = Query::insert()
        .into_table(table())
        .columns([col("kind"), col("value"), col("user_id")])
        .values([kind.as_str().into(), key.into(), user_id.into()])
        .map_err(|e| DatastoreError::Backend(Box::new(e)))?
        .to_owned();
    conn.execute(&ins).await.db().map(|_| ())
}

/// Like [`claim`], but leaves an existing row alone; whether it was written.
pub(crate) async fn claim_if_free<C: ConnectionTrait>(
    conn: &C,
    kind: Kind,
    key: &str,
    user_id: i64,
) -> Result<bool, DatastoreError> {
    let ins = Query::insert()
        .into_table(table())
        .columns([col("kind"), col("value"), col("user_id")])
        .values([kind.as_str().into(), key.into(), user_id.into()])
        .map_err(|e| DatastoreError::Backend(Box::new(e)))?
        .on_conflict(
            OnConflict::columns([col("kind"), col("value")])
                .do_nothing()
                .to_owned(),
        )
        .to_owned();
    Ok(conn.execute(&ins).await.db()?.rows_affected() > 0)
}

/// Drops the user's rows of `kind` (all kinds when `None`).
pub(crate) async fn release<C: ConnectionTrait>(
    conn: &C,
    kind: Option<Kind>,
    user_id: i64,
) -> Result<(), DatastoreError> {
    let mut del = Query::delete()
        .from_table(table())
        .and_where(Expr::col(col("user_id")).eq(user_id))
        .to_owned();
    if let Some(k) = kind {
        del.and_where(Expr::col(col("kind")).eq(k.as_str()));
    }
    conn.execute(&del).await.db().map(|_| ())
}

/// Drops one row that no longer matches its user (changed or deleted by
/// another application).
pub(crate) async fn forget<C: ConnectionTrait>(
    conn: &C,
    kind: Kind,
    key: &str,
    user_id: i64,
) -> Result<(), DatastoreError> {
    let del = Query::delete()
        .from_table(table())
        .and_where(Expr::col(col("kind")).eq(kind.as_str()))
        .and_where(Expr::col(col("value")).eq(key))
        .and_where(Expr::col(col("user_id")).eq(user_id))
        .to_owned();
    conn.execute(&del).await.db().map(|_| ())
}
