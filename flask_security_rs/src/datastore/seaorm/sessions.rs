//! [`SessionStore`] for the SeaORM datastore: table `fs_session`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Order, Query};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait,
    FromQueryResult, IntoActiveModel, QueryResult,
};

use super::{DbResult, SeaOrmDatastore};
use crate::datastore::DatastoreError;
use crate::datastore::cache::Change;
use crate::datastore::sessions::{SessionInfo, SessionStore};
use crate::datastore::{SecurityRole, SecurityUser, User, UserField};

/// The table.
pub(crate) const TABLE: &str = "fs_session";

const COLUMNS: [&str; 8] = [
    "id",
    "user_id",
    "created_at",
    "last_seen_at",
    "expires_at",
    "remember_until",
    "user_agent",
    "ip",
];

fn a(name: &str) -> Alias {
    Alias::new(name)
}

fn row(r: &QueryResult) -> Result<SessionInfo, DatastoreError> {
    prefixed_row(r, "")
}

/// Prefix of the session columns in a query joining them to a user's.
pub(super) const PREFIX: &str = "S_";

/// A record from columns named `{prefix}{column}`.
pub(super) fn prefixed_row(r: &QueryResult, prefix: &str) -> Result<SessionInfo, DatastoreError> {
    let err = |e: sea_orm::DbErr| DatastoreError::Backend(Box::new(e));
    Ok(SessionInfo {
        id: r.try_get(prefix, "id").map_err(err)?,
        user_id: r.try_get(prefix, "user_id").map_err(err)?,
        created_at: r.try_get(prefix, "created_at").map_err(err)?,
        last_seen_at: r.try_get(prefix, "last_seen_at").map_err(err)?,
        expires_at: r.try_get(prefix, "expires_at").map_err(err)?,
        remember_until: r.try_get(prefix, "remember_until").map_err(err)?,
        user_agent: r.try_get(prefix, "user_agent").map_err(err)?,
        ip: r.try_get(prefix, "ip").map_err(err)?,
    })
}

/// Joins record `id` of `user_tbl.user_id_col`'s user to `q`, its columns
/// named with [`PREFIX`].
pub(super) fn join_session(
    q: &mut sea_orm::sea_query::SelectStatement,
    id: &str,
    user_tbl: sea_orm::sea_query::DynIden,
    user_id_col: sea_orm::sea_query::DynIden,
) {
    let s = a(TABLE);
    q.left_join(
        s.clone(),
        Expr::col((s.clone(), a("id")))
            .eq(id)
            .and(Expr::col((s.clone(), a("user_id"))).equals((user_tbl, user_id_col))),
    );
    for c in COLUMNS {
        q.expr_as(Expr::col((s.clone(), a(c))), a(&format!("{PREFIX}{c}")));
    }
}

fn select() -> sea_orm::sea_query::SelectStatement {
    Query::select()
        .columns(COLUMNS.map(a))
        .from(a(TABLE))
        .to_owned()
}

#[rocket::async_trait]
impl<U, R, UA, RA> SessionStore for SeaOrmDatastore<U, R>
where
    U: SecurityUser + IntoActiveModel<UA> + FromQueryResult + Clone,
    R: SecurityRole + IntoActiveModel<RA> + FromQueryResult + Clone,
    U::Entity: EntityTrait<Model = U, ActiveModel = UA>,
    R::Entity: EntityTrait<Model = R, ActiveModel = RA>,
    UA: ActiveModelTrait<Entity = U::Entity> + ActiveModelBehavior + Send + Sync + 'static,
    RA: ActiveModelTrait<Entity = R::Entity> + ActiveModelBehavior + Send + Sync + 'static,
{
    async fn find_session_user(
        &self,
        id: &str,
        uniquifier: &str,
    ) -> Result<(Option<SessionInfo>, Option<User>), DatastoreError> {
        if id.contains('\0') || uniquifier.contains('\0') {
            return Ok((None, None));
        }
        let col = U::security_column(UserField::FsUniquifier)
            .ok_or(DatastoreError::MissingField(UserField::FsUniquifier))?;
        match self.load_user_with(col.eq(uniquifier), Some(id)).await? {
            Some((user, record)) => Ok((record, Some(user))),
            None => Ok((None, None)),
        }
    }

    async fn create_session(&self, s: SessionInfo) -> Result<(), DatastoreError> {
        // Records that can no longer be used go first (bounded table).
        let ended = Query::delete()
            .from_table(a(TABLE))
            .and_where(Expr::col(a("expires_at")).lte(s.created_at))
            .and_where(
                Expr::col(a("remember_until"))
                    .is_null()
                    .or(Expr::col(a("remember_until")).lte(s.created_at)),
            )
            .to_owned();
        self.db.execute(&ended).await.db()?;
        let ins = Query::insert()
            .into_table(a(TABLE))
            .columns(COLUMNS.map(a))
            .values([
                s.id.into(),
                s.user_id.into(),
                s.created_at.into(),
                s.last_seen_at.into(),
                s.expires_at.into(),
                s.remember_until.into(),
                s.user_agent.into(),
                s.ip.into(),
            ])
            .map_err(|e| DatastoreError::Backend(Box::new(e)))?
            .to_owned();
        self.db.execute(&ins).await.db().map(|_| ())
    }

    async fn find_session(&self, id: &str) -> Result<Option<SessionInfo>, DatastoreError> {
        let q = select().and_where(Expr::col(a("id")).eq(id)).to_owned();
        match self.db.query_one(&q).await.db()? {
            Some(r) => row(&r).map(Some),
            None => Ok(None),
        }
    }

    async fn touch_session(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), DatastoreError> {
        let q = Query::update()
            .table(a(TABLE))
            .value(a("last_seen_at"), now)
            .value(a("expires_at"), expires_at)
            .and_where(Expr::col(a("id")).eq(id))
            .to_owned();
        let written = self.db.execute(&q).await.db();
        self.tell(Change::Session(id.to_string()));
        written.map(|_| ())
    }

    async fn delete_session(&self, id: &str, user_id: Option<i64>) -> Result<bool, DatastoreError> {
        let mut q = Query::delete()
            .from_table(a(TABLE))
            .and_where(Expr::col(a("id")).eq(id))
            .to_owned();
        if let Some(u) = user_id {
            q.and_where(Expr::col(a("user_id")).eq(u));
        }
        let deleted = self.db.execute(&q).await.db();
        self.tell(Change::Session(id.to_string()));
        Ok(deleted?.rows_affected() > 0)
    }

    async fn user_sessions(&self, user_id: i64) -> Result<Vec<SessionInfo>, DatastoreError> {
        let q = select()
            .and_where(Expr::col(a("user_id")).eq(user_id))
            .order_by(a("created_at"), Order::Desc)
            .to_owned();
        self.db.query_all(&q).await.db()?.iter().map(row).collect()
    }

    async fn delete_user_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, DatastoreError> {
        let mut q = Query::delete()
            .from_table(a(TABLE))
            .and_where(Expr::col(a("user_id")).eq(user_id))
            .to_owned();
        if let Some(k) = keep {
            q.and_where(Expr::col(a("id")).ne(k));
        }
        let deleted = self.db.execute(&q).await.db();
        self.tell(Change::UserSessions(user_id));
        Ok(deleted?.rows_affected())
    }
}
