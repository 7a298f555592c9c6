//! [`OutboxStore`] for the SeaORM datastore: table `fs_outbox`.

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, QueryResult};

use super::{DbResult, SeaOrmDatastore};
use crate::datastore::DatastoreError;
use crate::datastore::outbox::{OutboxStore, QueuedMail};
use crate::mail::Email;

/// The table.
pub(crate) const TABLE: &str = "fs_outbox";

const PENDING: &str = "pending";
const DEAD: &str = "dead";

fn a(name: &str) -> Alias {
    Alias::new(name)
}

/// Inserts `mails` through `conn` (the caller's transaction, when there is one).
pub(crate) async fn insert<C: ConnectionTrait>(
    conn: &C,
    queue: &str,
    mails: &[Email],
    now: i64,
) -> Result<(), DatastoreError> {
    for m in mails {
        let ins = Query::insert()
            .into_table(a(TABLE))
            .columns(
                [
                    "sender",
                    "recipient",
                    "subject",
                    "body_text",
                    "body_html",
                    "created_at",
                    "next_attempt_at",
                    "attempts",
                    "state",
                    "queue",
                ]
                .map(a),
            )
            .values([
                m.from.clone().into(),
                m.to.clone().into(),
                m.subject.clone().into(),
                m.text.clone().into(),
                m.html.clone().into(),
                now.into(),
                now.into(),
                0i32.into(),
                PENDING.into(),
                queue.into(),
            ])
            .map_err(|e| DatastoreError::Backend(Box::new(e)))?
            .to_owned();
        conn.execute(&ins).await.db()?;
    }
    Ok(())
}

/// The columns of a [`QueuedMail`], in `queue`.
fn select(queue: &str) -> SelectStatement {
    Query::select()
        .columns(
            [
                "id",
                "sender",
                "recipient",
                "subject",
                "body_text",
                "body_html",
                "attempts",
                "last_error",
                "created_at",
                "state",
            ]
            .map(a),
        )
        .from(a(TABLE))
        .and_where(Expr::col(a("queue")).eq(queue))
        .to_owned()
}

fn row(r: &QueryResult) -> Result<QueuedMail, DatastoreError> {
    let err = |e: sea_orm::DbErr| DatastoreError::Backend(Box::new(e));
    let attempts: i32 = r.try_get_by_index(6).map_err(err)?;
    let state: String = r.try_get_by_index(9).map_err(err)?;
    Ok(QueuedMail {
        id: r.try_get_by_index(0).map_err(err)?,
        mail: Email {
            from: r.try_get_by_index(1).map_err(err)?,
            to: r.try_get_by_index(2).map_err(err)?,
            subject: r.try_get_by_index(3).map_err(err)?,
            text: r.try_get_by_index(4).map_err(err)?,
            html: r.try_get_by_index(5).map_err(err)?,
        },
        attempts: u32::try_from(attempts).unwrap_or(0),
        last_error: r.try_get_by_index(7).map_err(err)?,
        created_at: r.try_get_by_index(8).map_err(err)?,
        dead: state == DEAD,
    })
}

/// Not claimed, or the claim has lapsed.
fn unclaimed(now: i64) -> sea_orm::sea_query::SimpleExpr {
    Expr::col(a("claimed_until"))
        .is_null()
        .or(Expr::col(a("claimed_until")).lt(now))
}

#[rocket::async_trait]
impl<U, R> OutboxStore for SeaOrmDatastore<U, R>
where
    U: Send + Sync + 'static,
    R: Send + Sync + 'static,
{
    async fn enqueue(&self, mails: &[Email], now: i64) -> Result<(), DatastoreError> {
        insert(&self.db, &self.outbox_queue, mails, now).await
    }

    async fn claim_due(
        &self,
        now: i64,
        lease: i64,
        limit: u64,
    ) -> Result<Vec<QueuedMail>, DatastoreError> {
        let due = select(&self.outbox_queue)
            .and_where(Expr::col(a("state")).eq(PENDING))
            .and_where(Expr::col(a("next_attempt_at")).lte(now))
            .and_where(unclaimed(now))
            .order_by(a("id"), Order::Asc)
            .limit(limit)
            .to_owned();
        let mut claimed = Vec::new();
        for r in self.db.query_all(&due).await.db()? {
            let mail = row(&r)?;
            // Taken only if no other sender took it meanwhile.
            let claim = Query::update()
                .table(a(TABLE))
                .value(a("claimed_until"), now + lease)
                .and_where(Expr::col(a("id")).eq(mail.id))
                .and_where(Expr::col(a("state")).eq(PENDING))
                .and_where(unclaimed(now))
                .to_owned();
            if self.db.execute(&claim).await.db()?.rows_affected() == 1 {
                claimed.push(mail);
            }
        }
        Ok(claimed)
    }

    async fn delivered(&self, id: i64) -> Result<(), DatastoreError> {
        let q = Query::delete()
            .from_table(a(TABLE))
            .and_where(Expr::col(a("id")).eq(id))
            .to_owned();
        self.db.execute(&q).await.db().map(|_| ())
    }

    async fn failed(
        &self,
        id: i64,
        error: &str,
        retry_at: Option<i64>,
    ) -> Result<(), DatastoreError> {
        let error: String = error.chars().take(1000).collect();
        let mut q = Query::update()
            .table(a(TABLE))
            .value(a("attempts"), Expr::col(a("attempts")).add(1))
            .value(a("last_error"), error)
            .value(a("claimed_until"), Option::<i64>::None)
            .and_where(Expr::col(a("id")).eq(id))
            .to_owned();
        match retry_at {
            Some(at) => q.value(a("next_attempt_at"), at),
            None => q.value(a("state"), DEAD),
        };
        self.db.execute(&q).await.db().map(|_| ())
    }

    async fn dead_mails(&self) -> Result<Vec<QueuedMail>, DatastoreError> {
        let q = select(&self.outbox_queue)
            .and_where(Expr::col(a("state")).eq(DEAD))
            .order_by(a("id"), Order::Asc)
            .to_owned();
        self.db.query_all(&q).await.db()?.iter().map(row).collect()
    }

    async fn revive(&self, id: i64, now: i64) -> Result<bool, DatastoreError> {
        let q = Query::update()
            .table(a(TABLE))
            .value(a("state"), PENDING)
            .value(a("attempts"), 0i32)
            .value(a("next_attempt_at"), now)
            .value(a("claimed_until"), Option::<i64>::None)
            .and_where(Expr::col(a("id")).eq(id))
            .and_where(Expr::col(a("state")).eq(DEAD))
            .and_where(Expr::col(a("queue")).eq(self.outbox_queue.as_str()))
            .to_owned();
        Ok(self.db.execute(&q).await.db()?.rows_affected() == 1)
    }

    async fn pending(&self) -> Result<u64, DatastoreError> {
        let q = Query::select()
            .expr(Func::count(Expr::col(a("id"))))
            .from(a(TABLE))
            .and_where(Expr::col(a("state")).eq(PENDING))
            .and_where(Expr::col(a("queue")).eq(self.outbox_queue.as_str()))
            .to_owned();
        let n: i64 = match self.db.query_one(&q).await.db()? {
            Some(r) => r
                .try_get_by_index(0)
                .map_err(|e| DatastoreError::Backend(Box::new(e)))?,
            None => 0,
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
