//! [`UserDatastore`] over SeaORM, generic over the application's user and
//! role models.

use std::marker::PhantomData;
use std::sync::Arc;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelBehavior, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr,
    EntityName, EntityTrait, FromQueryResult, IntoActiveModel, QueryFilter, QueryTrait, SqlErr,
    TransactionTrait, Value,
};

mod changes;
mod identities;
mod outbox;
mod sessions;

use identities::Kind;
use sea_orm::Condition;

use super::cache::{Change, ChangeSink};
use super::model::{RoleField, SecurityRole, SecurityUser, UserField};
use super::{DatastoreError, Lookup, NewUser, Role, User, UserDatastore, UserUpdate};

/// Maps SeaORM's errors into the datastore's (a unique violation is a conflict).
trait DbResult<T> {
    fn db(self) -> Result<T, DatastoreError>;
}

impl<T> DbResult<T> for Result<T, DbErr> {
    fn db(self) -> Result<T, DatastoreError> {
        self.map_err(|e| match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(m)) => DatastoreError::Conflict(m),
            _ => DatastoreError::Backend(Box::new(e)),
        })
    }
}

/// The columns of a [`UserUpdate`], as SeaORM values.
fn update_columns(u: UserUpdate) -> Vec<(UserField, Value)> {
    let mut out = Vec::new();
    let mut s = |f, v: Option<Option<String>>| {
        if let Some(v) = v {
            out.push((f, Value::String(v)));
        }
    };
    s(UserField::Email, u.email.map(Some));
    s(UserField::Username, u.username);
    s(UserField::Password, u.password);
    s(UserField::FsUniquifier, u.fs_uniquifier.map(Some));
    s(
        UserField::FsTokenUniquifier,
        u.fs_token_uniquifier.map(Some),
    );
    s(UserField::LastLoginIp, u.last_login_ip);
    s(UserField::TfPrimaryMethod, u.tf_primary_method);
    s(UserField::TfTotpSecret, u.tf_totp_secret);
    s(UserField::TfPhoneNumber, u.tf_phone_number);
    s(UserField::UsTotpSecrets, u.us_totp_secrets);
    s(UserField::UsPhoneNumber, u.us_phone_number);
    s(UserField::FsWebauthnUserHandle, u.fs_webauthn_user_handle);
    s(UserField::MfRecoveryCodes, u.mf_recovery_codes);
    s(UserField::CurrentLoginIp, u.current_login_ip);
    let mut d = |f, v: Option<Option<chrono::NaiveDateTime>>| {
        if let Some(v) = v {
            out.push((f, Value::ChronoDateTime(v)));
        }
    };
    d(UserField::ConfirmedAt, u.confirmed_at);
    d(UserField::LastLoginAt, u.last_login_at);
    d(UserField::CurrentLoginAt, u.current_login_at);
    if let Some(a) = u.active {
        out.push((UserField::Active, Value::Bool(Some(a))));
    }
    if let Some(n) = u.login_count {
        out.push((UserField::LoginCount, Value::BigInt(Some(n))));
    }
    out
}

/// SeaORM datastore. `U` and `R` are the user and role models (derive
/// `SecurityUser` / `SecurityRole` on them); the link table is `roles_users`
/// with `user_id` and `role_id`, as in Flask-Security. No `Related` impl is
/// needed: the datastore joins through the link table itself.
///
/// ```
/// use flask_security_rs::SeaOrmDatastore;
/// use flask_security_rs::entity::{role, user};
///
/// # async fn open() -> Result<(), sea_orm::DbErr> {
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// let store = SeaOrmDatastore::<user::Model, role::Model>::new(db);
/// # let _ = store; Ok(()) }
/// ```
pub struct SeaOrmDatastore<U, R> {
    db: DatabaseConnection,
    link_table: String,
    outbox_queue: String,
    /// Told of every write made through this datastore (the identity cache).
    listeners: std::sync::RwLock<Vec<Arc<dyn ChangeSink>>>,
    _models: PhantomData<fn() -> (U, R)>,
}

impl<U, R> SeaOrmDatastore<U, R> {
    /// A datastore on `db`.
    pub fn new(db: DatabaseConnection) -> Self {
        SeaOrmDatastore {
            db,
            link_table: "roles_users".into(),
            outbox_queue: "default".into(),
            listeners: std::sync::RwLock::new(Vec::new()),
            _models: PhantomData,
        }
    }

    /// Uses another name for the user-role link table.
    pub fn with_link_table(mut self, name: impl Into<String>) -> Self {
        self.link_table = name.into();
        self
    }

    /// Uses the outbox queue `name` (default `"default"`): instances of one
    /// application share a queue, so any of them delivers what another
    /// queued; separate applications on one database use separate queues.
    pub fn with_outbox_queue(mut self, name: impl Into<String>) -> Self {
        self.outbox_queue = name.into();
        self
    }

    /// The connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Tells the listeners that `change` was written.
    fn tell(&self, change: Change) {
        let listeners = match self.listeners.read() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        for l in listeners.iter() {
            l.changed(change.clone());
        }
    }

    fn subscribe(&self, sink: Arc<dyn ChangeSink>) {
        let mut listeners = match self.listeners.write() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        listeners.push(sink);
    }
}

fn now() -> chrono::NaiveDateTime {
    chrono::Utc::now().naive_utc()
}

fn value_str(v: Value) -> Option<String> {
    match v {
        Value::String(s) => s,
        _ => None,
    }
}

fn value_i64(v: Value) -> Option<i64> {
    match v {
        Value::TinyInt(i) => i.map(i64::from),
        Value::SmallInt(i) => i.map(i64::from),
        Value::Int(i) => i.map(i64::from),
        Value::BigInt(i) => i,
        Value::TinyUnsigned(i) => i.map(i64::from),
        Value::SmallUnsigned(i) => i.map(i64::from),
        Value::Unsigned(i) => i.map(i64::from),
        Value::BigUnsigned(i) => i.and_then(|i| i64::try_from(i).ok()),
        _ => None,
    }
}

fn value_bool(v: Value) -> Option<bool> {
    match v {
        Value::Bool(b) => b,
        other => value_i64(other).map(|i| i != 0),
    }
}

fn value_datetime(v: Value) -> Option<chrono::NaiveDateTime> {
    match v {
        Value::ChronoDateTime(d) => d,
        Value::ChronoDateTimeUtc(d) => d.map(|d| d.naive_utc()),
        _ => None,
    }
}

/// Converts `value` to the type the column's model field holds: an integer id
/// column may be i32 or i64, a datetime column naive or UTC.
fn coerce(template: &Value, value: Value) -> Value {
    match (template, value) {
        (Value::Int(_), v) => Value::Int(value_i64(v).and_then(|i| i32::try_from(i).ok())),
        (Value::BigInt(_), v) => Value::BigInt(value_i64(v)),
        (Value::ChronoDateTimeUtc(_), Value::ChronoDateTime(d)) => {
            Value::ChronoDateTimeUtc(d.map(|d| d.and_utc()))
        }
        (_, v) => v,
    }
}

fn split_list(s: Option<String>) -> Vec<String> {
    s.map(|s| {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

impl<U, R> SeaOrmDatastore<U, R>
where
    U: SecurityUser,
    R: SecurityRole,
{
    fn user_get(model: &U, field: UserField) -> Value {
        match U::security_column(field) {
            Some(col) => model.get(col),
            None => Value::String(None),
        }
    }

    /// The tables whose changes the identity cache must hear of.
    fn watched_tables(&self) -> Result<Vec<changes::Watched>, DatastoreError> {
        use sea_orm::IdenStatic;
        let user_id =
            U::security_column(UserField::Id).ok_or(DatastoreError::MissingField(UserField::Id))?;
        let role_id = R::security_column(RoleField::Id)
            .ok_or_else(|| DatastoreError::NoSuchRole("(role model has no id)".into()))?;
        let watched = |table: &str, column: &str, kind| changes::Watched {
            table: table.to_string(),
            column: column.to_string(),
            kind,
        };
        Ok(vec![
            watched(
                <U::Entity as Default>::default().table_name(),
                user_id.as_str(),
                "u",
            ),
            watched(&self.link_table, "user_id", "l"),
            watched(
                <R::Entity as Default>::default().table_name(),
                role_id.as_str(),
                "r",
            ),
            watched(sessions::TABLE, "id", "s"),
        ])
    }

    fn role_get(model: &R, field: RoleField) -> Value {
        match R::security_column(field) {
            Some(col) => model.get(col),
            None => Value::String(None),
        }
    }

    fn to_role(model: &R) -> Role {
        Role {
            id: value_i64(Self::role_get(model, RoleField::Id)).unwrap_or_default(),
            name: value_str(Self::role_get(model, RoleField::Name)).unwrap_or_default(),
            description: value_str(Self::role_get(model, RoleField::Description)),
            permissions: split_list(value_str(Self::role_get(model, RoleField::Permissions))),
        }
    }

    fn to_user(model: U, roles: &[R]) -> User {
        let g = |f| Self::user_get(&model, f);
        User {
            id: value_i64(g(UserField::Id)).unwrap_or_default(),
            email: value_str(g(UserField::Email)).unwrap_or_default(),
            username: value_str(g(UserField::Username)),
            password: value_str(g(UserField::Password)),
            active: value_bool(g(UserField::Active)).unwrap_or(false),
            fs_uniquifier: value_str(g(UserField::FsUniquifier)).unwrap_or_default(),
            fs_token_uniquifier: value_str(g(UserField::FsTokenUniquifier)),
            confirmed_at: value_datetime(g(UserField::ConfirmedAt)),
            current_login_at: value_datetime(g(UserField::CurrentLoginAt)),
            current_login_ip: value_str(g(UserField::CurrentLoginIp)),
            login_count: value_i64(g(UserField::LoginCount)),
            tf_primary_method: value_str(g(UserField::TfPrimaryMethod)),
            tf_totp_secret: value_str(g(UserField::TfTotpSecret)),
            tf_phone_number: value_str(g(UserField::TfPhoneNumber)),
            us_totp_secrets: value_str(g(UserField::UsTotpSecrets)),
            us_phone_number: value_str(g(UserField::UsPhoneNumber)),
            fs_webauthn_user_handle: value_str(g(UserField::FsWebauthnUserHandle)),
            mf_recovery_codes: value_str(g(UserField::MfRecoveryCodes)),
            roles: roles.iter().map(Self::to_role).collect(),
            payload: model.security_payload(),
            model: Arc::new(model),
        }
    }
}

/// The database's own case-insensitive match (ASCII-only on SQLite): how
/// users written by another application, not yet in the identity index, are
/// found.
fn lower_eq<C: ColumnTrait>(col: C, value: &str) -> sea_orm::sea_query::SimpleExpr {
    Expr::expr(Func::lower(col.into_expr())).eq(Func::lower(Expr::val(value)))
}

impl<U, R, UA, RA> SeaOrmDatastore<U, R>
where
    U: SecurityUser + IntoActiveModel<UA> + FromQueryResult + Clone,
    R: SecurityRole + IntoActiveModel<RA> + FromQueryResult + Clone,
    U::Entity: EntityTrait<Model = U, ActiveModel = UA>,
    R::Entity: EntityTrait<Model = R, ActiveModel = RA>,
    UA: ActiveModelTrait<Entity = U::Entity> + ActiveModelBehavior + Send + Sync + 'static,
    RA: ActiveModelTrait<Entity = R::Entity> + ActiveModelBehavior + Send + Sync + 'static,
{
    /// The user matching `cond`, with its roles, in one query.
    async fn load_user(
        &self,
        cond: sea_orm::sea_query::SimpleExpr,
    ) -> Result<Option<User>, DatastoreError> {
        Ok(self.load_user_with(cond, None).await?.map(|(u, _)| u))
    }

    /// The user matching `cond`, with its roles and, when `session` is
    /// given, that session record if it is the user's: one query.
    async fn load_user_with(
        &self,
        cond: sea_orm::sea_query::SimpleExpr,
        session: Option<&str>,
    ) -> Result<Option<(User, Option<crate::datastore::SessionInfo>)>, DatastoreError> {
        use sea_orm::IdenStatic;
        let col = |f| U::security_column(f).ok_or(DatastoreError::MissingField(f));
        // user LEFT JOIN roles_users LEFT JOIN role (LEFT JOIN fs_session).
        let link = Alias::new(self.link_table.as_str());
        let user_id = col(UserField::Id)?;
        let role_id = R::security_column(RoleField::Id)
            .ok_or_else(|| DatastoreError::NoSuchRole("(role model has no id)".into()))?;
        let user_tbl = <U::Entity as Default>::default();
        let role_tbl = <R::Entity as Default>::default();
        let mut select = <U::Entity as EntityTrait>::find()
            .filter(cond)
            .select_also(role_tbl);
        let q = QueryTrait::query(&mut select);
        q.left_join(
            link.clone(),
            Expr::col((user_tbl, user_id)).equals((link.clone(), Alias::new("user_id"))),
        )
        .left_join(
            role_tbl.table_ref(),
            Expr::col((link, Alias::new("role_id"))).equals((role_tbl, role_id)),
        );
        if let Some(id) = session {
            sessions::join_session(
                q,
                id,
                sea_orm::sea_query::IntoIden::into_iden(user_tbl),
                sea_orm::sea_query::IntoIden::into_iden(user_id),
            );
        }
        let rows = self
            .db
            .query_all(QueryTrait::as_query(&select))
            .await
            .db()?;
        let mut rows = rows.iter();
        let Some(head) = rows.next() else {
            return Ok(None);
        };
        let first = U::from_query_result(head, sea_orm::SelectA.as_str()).db()?;
        let record = match session {
            Some(_) => {
                let present: Option<String> = head.try_get(sessions::PREFIX, "id").db()?;
                match present {
                    Some(_) => Some(sessions::prefixed_row(head, sessions::PREFIX)?),
                    None => None,
                }
            }
            None => None,
        };
        let id = Self::user_get(&first, UserField::Id);
        let mut roles: Vec<R> = R::from_query_result_optional(head, sea_orm::SelectB.as_str())
            .db()?
            .into_iter()
            .collect();
        for row in rows {
            let u = U::from_query_result(row, sea_orm::SelectA.as_str()).db()?;
            if Self::user_get(&u, UserField::Id) == id {
                roles.extend(R::from_query_result_optional(row, sea_orm::SelectB.as_str()).db()?);
            }
        }
        Ok(Some((Self::to_user(first, &roles), record)))
    }

    /// Finds a user by email or username through the identity index. A user
    /// the index does not know yet (written by another application) is found
    /// by the database's case-insensitive match and then indexed; a row that
    /// no longer matches its user is dropped.
    async fn find_by_identity(
        &self,
        kind: Kind,
        raw: &str,
    ) -> Result<Option<User>, DatastoreError> {
        let field = match kind {
            Kind::Email => UserField::Email,
            Kind::Username => UserField::Username,
        };
        let column = U::security_column(field).ok_or(DatastoreError::MissingField(field))?;
        let id_col =
            U::security_column(UserField::Id).ok_or(DatastoreError::MissingField(UserField::Id))?;
        let key = kind.key(raw);
        let matches = |u: &User| {
            let value = match kind {
                Kind::Email => Some(u.email.as_str()),
                Kind::Username => u.username.as_deref(),
            };
            value.is_some_and(|v| kind.key(v) == key)
        };
        if let Some(id) = identities::owner(&self.db, kind, &key).await? {
            match self.load_user(id_col.eq(id)).await? {
                Some(u) if matches(&u) => return Ok(Some(u)),
                _ => identities::forget(&self.db, kind, &key, id).await?,
            }
        }
        let Some(user) = self.load_user(lower_eq(column, raw)).await? else {
            return Ok(None);
        };
        if !matches(&user) {
            return Ok(None);
        }
        identities::claim_if_free(&self.db, kind, &key, user.id).await?;
        Ok(Some(user))
    }

    /// Makes `key` name `user_id` (inside the caller's transaction): a row
    /// left by a user deleted elsewhere is dropped first; one held by another
    /// live user is a [`DatastoreError::Conflict`].
    async fn claim_identity<C: ConnectionTrait>(
        &self,
        conn: &C,
        kind: Kind,
        key: &str,
        user_id: i64,
    ) -> Result<(), DatastoreError> {
        if let Some(owner) = identities::owner(conn, kind, key).await? {
            if owner == user_id {
                return Ok(());
            }
            let id_col = U::security_column(UserField::Id)
                .ok_or(DatastoreError::MissingField(UserField::Id))?;
            let alive = <U::Entity as EntityTrait>::find()
                .filter(id_col.eq(owner))
                .one(conn)
                .await
                .db()?
                .is_some();
            if alive {
                return Err(DatastoreError::Conflict(format!(
                    "{} already taken",
                    kind.as_str()
                )));
            }
            identities::forget(conn, kind, key, owner).await?;
        }
        identities::claim(conn, kind, key, user_id).await
    }

    /// Indexes every user that
    /// lacks an email row (the first user of a key keeps it; a clash between
    /// two existing users is logged).
    async fn index_identities(&self) -> Result<(), DatastoreError> {
        let user_tbl = <U::Entity as Default>::default();
        let manager = sea_orm_migration::SchemaManager::new(&self.db);
        if !manager.has_table(user_tbl.table_name()).await.db()? {
            // Not created yet (the application migrates later): nothing to index.
            return Ok(());
        }
        let id_col =
            U::security_column(UserField::Id).ok_or(DatastoreError::MissingField(UserField::Id))?;
        let indexed = Query::select()
            .expr(Expr::val(1))
            .from(Alias::new(identities::TABLE))
            .and_where(
                Expr::col((Alias::new(identities::TABLE), Alias::new("user_id")))
                    .equals((user_tbl, id_col)),
            )
            .and_where(Expr::col((Alias::new(identities::TABLE), Alias::new("kind"))).eq("email"))
            .to_owned();
        let models: Vec<U> = <U::Entity as EntityTrait>::find()
            .filter(Condition::all().add(Expr::exists(indexed).not()))
            .all(&self.db)
            .await
            .db()?;
        for model in models {
            let user = Self::to_user(model, &[]);
            let mut names = vec![(Kind::Email, user.email.clone())];
            names.extend(user.username.clone().map(|n| (Kind::Username, n)));
            for (kind, value) in names {
                if value.is_empty() {
                    continue;
                }
                let key = kind.key(&value);
                if !identities::claim_if_free(&self.db, kind, &key, user.id).await? {
                    log::warn!(
                        "user {} has the same {} as another user (up to case and Unicode form); \
                         it cannot be found by it until one of them changes",
                        user.id,
                        kind.as_str()
                    );
                }
            }
        }
        Ok(())
    }
}

#[rocket::async_trait]
impl<U, R, UA, RA> UserDatastore for SeaOrmDatastore<U, R>
where
    U: SecurityUser + IntoActiveModel<UA> + FromQueryResult + Clone,
    R: SecurityRole + IntoActiveModel<RA> + FromQueryResult + Clone,
    U::Entity: EntityTrait<Model = U, ActiveModel = UA>,
    R::Entity: EntityTrait<Model = R, ActiveModel = RA>,
    UA: ActiveModelTrait<Entity = U::Entity> + ActiveModelBehavior + Send + Sync + 'static,
    RA: ActiveModelTrait<Entity = R::Entity> + ActiveModelBehavior + Send + Sync + 'static,
{
    fn has_field(&self, field: UserField) -> bool {
        U::security_column(field).is_some()
    }

    async fn prepare(&self) -> Result<(), DatastoreError> {
        use super::migration as m;
        use sea_orm_migration::MigrationTrait;
        // Only what is missing is created: a read-only replica starts too.
        let manager = sea_orm_migration::SchemaManager::new(&self.db);
        let tables: [(&str, &dyn MigrationTrait); 5] = [
            (identities::TABLE, &m::CreateIdentityIndex),
            (sessions::TABLE, &m::CreateSessionTable),
            (outbox::TABLE, &m::CreateOutboxTable),
            (crate::features::throttle::TABLE, &m::CreateFsThrottle),
            (crate::ceremony::TABLE, &m::CreateFsCeremony),
        ];
        for (table, migration) in tables {
            if !manager.has_table(table).await.db()? {
                migration.up(&manager).await.db()?;
            }
        }
        self.index_identities().await
    }

    fn extensions(self: Arc<Self>) -> super::Extensions {
        let mut ext = super::Extensions::default();
        ext.insert::<dyn super::ChangeFeed>(self.clone());
        ext.insert::<dyn super::SessionStore>(self.clone());
        ext.insert::<dyn super::OutboxStore>(self.clone());
        ext.insert::<dyn crate::features::throttle::ThrottleStore>(self.clone());
        ext.insert::<dyn crate::ceremony::CeremonyStore>(self);
        ext
    }

    async fn find_user(&self, by: Lookup<'_>) -> Result<Option<User>, DatastoreError> {
        // No stored value holds a NUL (PostgreSQL cannot store one, and
        // would fail the query): nothing to look up.
        if let Lookup::Uniquifier(v)
        | Lookup::TokenUniquifier(v)
        | Lookup::Email(v)
        | Lookup::Username(v)
        | Lookup::UsPhone(v) = by
            && v.contains('\0')
        {
            return Ok(None);
        }
        let col = |f| U::security_column(f).ok_or(DatastoreError::MissingField(f));
        let cond = match by {
            Lookup::Id(id) => col(UserField::Id)?.eq(id),
            Lookup::Uniquifier(u) => col(UserField::FsUniquifier)?.eq(u),
            Lookup::TokenUniquifier(u) => match U::security_column(UserField::FsTokenUniquifier) {
                Some(c) => c.eq(u),
                None => col(UserField::FsUniquifier)?.eq(u),
            },
            Lookup::Email(e) => return self.find_by_identity(Kind::Email, e).await,
            Lookup::Username(n) => return self.find_by_identity(Kind::Username, n).await,
            Lookup::UsPhone(p) => col(UserField::UsPhoneNumber)?.eq(p),
        };
        self.load_user(cond).await
    }

    async fn create_user(&self, new: NewUser) -> Result<User, DatastoreError> {
        let txn = self.db.begin().await.db()?;
        let mut am = <UA as ActiveModelTrait>::default();
        let stamp = now();
        let mut set = |f: UserField, v: Value| {
            if let Some(c) = U::security_column(f) {
                am.set(c, v);
            }
        };
        set(UserField::Email, Value::String(Some(new.email.clone())));
        set(UserField::Username, Value::String(new.username.clone()));
        set(
            UserField::Password,
            Value::String(new.password_hash.clone()),
        );
        set(UserField::Active, Value::Bool(Some(new.active)));
        set(
            UserField::FsUniquifier,
            Value::String(Some(
                new.fs_uniquifier
                    .clone()
                    .unwrap_or_else(super::new_uniquifier),
            )),
        );
        set(
            UserField::FsTokenUniquifier,
            Value::String(Some(super::new_uniquifier())),
        );
        set(
            UserField::ConfirmedAt,
            Value::ChronoDateTime(new.confirmed_at),
        );
        set(
            UserField::CreateDatetime,
            Value::ChronoDateTime(Some(stamp)),
        );
        set(
            UserField::UpdateDatetime,
            Value::ChronoDateTime(Some(stamp)),
        );
        let model: U = am.insert(&txn).await.db()?;
        let user_id = value_i64(Self::user_get(&model, UserField::Id)).unwrap_or_default();
        let mut roles = Vec::new();
        for name in &new.roles {
            let role = self
                .find_role_model(&txn, name)
                .await?
                .ok_or_else(|| DatastoreError::NoSuchRole(name.clone()))?;
            let role_id = value_i64(Self::role_get(&role, RoleField::Id)).unwrap_or_default();
            self.link(&txn, user_id, role_id).await?;
            roles.push(role);
        }
        self.claim_identity(&txn, Kind::Email, &Kind::Email.key(&new.email), user_id)
            .await?;
        if let Some(name) = &new.username {
            self.claim_identity(&txn, Kind::Username, &Kind::Username.key(name), user_id)
                .await?;
        }
        outbox::insert(
            &txn,
            &self.outbox_queue,
            &new.mails,
            stamp.and_utc().timestamp(),
        )
        .await?;
        let committed = txn.commit().await.db();
        // An id may be reused (SQLite, after the last user was deleted).
        self.tell(Change::User(user_id));
        committed?;
        Ok(Self::to_user(model, &roles))
    }

    async fn update_user(
        &self,
        user_id: i64,
        mut update: UserUpdate,
    ) -> Result<bool, DatastoreError> {
        let col = |f| U::security_column(f).ok_or(DatastoreError::MissingField(f));
        let id_col = col(UserField::Id)?;
        // The stored model tells each column's Rust type (i32/i64 ids, naive
        // or UTC datetimes); the write itself is one conditional UPDATE.
        let Some(model) = <U::Entity as EntityTrait>::find()
            .filter(id_col.eq(user_id))
            .one(&self.db)
            .await
            .db()?
        else {
            return Ok(false);
        };
        let new_email = update.email.clone();
        let new_username = update.username.clone();
        let mails = std::mem::take(&mut update.mails);
        let mut cond = Condition::all().add(id_col.eq(user_id));
        if let Some(expected) = &update.expect_password {
            let c = col(UserField::Password)?;
            cond = cond.add(match expected {
                Some(h) => c.eq(h.as_str()),
                None => c.is_null(),
            });
        }
        if let Some(expected) = &update.expect_email {
            cond = cond.add(col(UserField::Email)?.eq(expected.as_str()));
        }
        if update.expect_unconfirmed {
            cond = cond.add(col(UserField::ConfirmedAt)?.is_null());
        }
        if let Some(expected) = &update.expect_recovery_codes {
            let c = col(UserField::MfRecoveryCodes)?;
            cond = cond.add(match expected {
                Some(v) => c.eq(v.as_str()),
                None => c.is_null(),
            });
        }
        let mut write = <U::Entity as EntityTrait>::update_many().filter(cond);
        let mut changed = false;
        for (field, value) in update_columns(update) {
            if let Some(c) = U::security_column(field) {
                write = write.col_expr(c, Expr::value(coerce(&model.get(c), value)));
                changed = true;
            }
        }
        if !changed {
            if !mails.is_empty() {
                outbox::insert(
                    &self.db,
                    &self.outbox_queue,
                    &mails,
                    now().and_utc().timestamp(),
                )
                .await?;
            }
            return Ok(true);
        }
        if let Some(c) = U::security_column(UserField::UpdateDatetime) {
            write = write.col_expr(
                c,
                Expr::value(coerce(&model.get(c), Value::ChronoDateTime(Some(now())))),
            );
        }
        let txn = self.db.begin().await.db()?;
        if write.exec(&txn).await.db()?.rows_affected == 0 {
            // A precondition failed: someone else used it first.
            return Ok(false);
        }
        if let Some(email) = new_email {
            identities::release(&txn, Some(Kind::Email), user_id).await?;
            self.claim_identity(&txn, Kind::Email, &Kind::Email.key(&email), user_id)
                .await?;
        }
        if let Some(name) = new_username {
            identities::release(&txn, Some(Kind::Username), user_id).await?;
            if let Some(name) = name {
                self.claim_identity(&txn, Kind::Username, &Kind::Username.key(&name), user_id)
                    .await?;
            }
        }
        outbox::insert(
            &txn,
            &self.outbox_queue,
            &mails,
            now().and_utc().timestamp(),
        )
        .await?;
        let committed = txn.commit().await.db();
        self.tell(Change::User(user_id));
        committed.map(|()| true)
    }

    async fn delete_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        let txn = self.db.begin().await.db()?;
        let del = Query::delete()
            .from_table(Alias::new(self.link_table.as_str()))
            .and_where(Expr::col(Alias::new("user_id")).eq(user_id))
            .to_owned();
        txn.execute(&del).await.db()?;
        identities::release(&txn, None, user_id).await?;
        let id_col =
            U::security_column(UserField::Id).ok_or(DatastoreError::MissingField(UserField::Id))?;
        <U::Entity as EntityTrait>::delete_many()
            .filter(id_col.eq(user_id))
            .exec(&txn)
            .await
            .db()?;
        let committed = txn.commit().await.db();
        self.tell(Change::User(user_id));
        self.tell(Change::UserSessions(user_id));
        committed
    }

    async fn find_role(&self, name: &str) -> Result<Option<Role>, DatastoreError> {
        Ok(self
            .find_role_model(&self.db, name)
            .await?
            .as_ref()
            .map(Self::to_role))
    }

    async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: &[&str],
    ) -> Result<Role, DatastoreError> {
        let mut am = <RA as ActiveModelTrait>::default();
        let mut set = |f: RoleField, v: Value| {
            if let Some(c) = R::security_column(f) {
                am.set(c, v);
            }
        };
        set(RoleField::Name, Value::String(Some(name.to_string())));
        set(
            RoleField::Description,
            Value::String(description.map(String::from)),
        );
        set(
            RoleField::Permissions,
            Value::String(Some(permissions.join(","))),
        );
        set(
            RoleField::UpdateDatetime,
            Value::ChronoDateTime(Some(now())),
        );
        let model: R = am.insert(&self.db).await.db()?;
        Ok(Self::to_role(&model))
    }

    async fn set_role_permissions(
        &self,
        name: &str,
        permissions: &[String],
    ) -> Result<(), DatastoreError> {
        let Some(model) = self.find_role_model(&self.db, name).await? else {
            return Err(DatastoreError::NoSuchRole(name.into()));
        };
        let mut am: RA = model.into_active_model();
        if let Some(c) = R::security_column(RoleField::Permissions) {
            am.set(c, Value::String(Some(permissions.join(","))));
        }
        if let Some(c) = R::security_column(RoleField::UpdateDatetime) {
            am.set(c, Value::ChronoDateTime(Some(now())));
        }
        let written = am.update(&self.db).await.db();
        // Every user with the role changes.
        self.tell(Change::All);
        written.map(|_| ())
    }

    async fn add_role_to_user(&self, user_id: i64, role: &str) -> Result<bool, DatastoreError> {
        let model = self
            .find_role_model(&self.db, role)
            .await?
            .ok_or_else(|| DatastoreError::NoSuchRole(role.into()))?;
        let role_id = value_i64(Self::role_get(&model, RoleField::Id)).unwrap_or_default();
        let txn = self.db.begin().await.db()?;
        if self.linked(&txn, user_id, role_id).await? {
            return Ok(false);
        }
        self.link(&txn, user_id, role_id).await?;
        let committed = txn.commit().await.db();
        self.tell(Change::User(user_id));
        committed.map(|()| true)
    }

    async fn remove_role_from_user(
        &self,
        user_id: i64,
        role: &str,
    ) -> Result<bool, DatastoreError> {
        let model = self
            .find_role_model(&self.db, role)
            .await?
            .ok_or_else(|| DatastoreError::NoSuchRole(role.into()))?;
        let role_id = value_i64(Self::role_get(&model, RoleField::Id)).unwrap_or_default();
        let del = Query::delete()
            .from_table(Alias::new(self.link_table.as_str()))
            .and_where(Expr::col(Alias::new("user_id")).eq(user_id))
            .and_where(Expr::col(Alias::new("role_id")).eq(role_id))
            .to_owned();
        let res = self.db.execute(&del).await.db();
        self.tell(Change::User(user_id));
        Ok(res?.rows_affected() > 0)
    }
}

impl<U, R> SeaOrmDatastore<U, R>
where
    U: SecurityUser,
    R: SecurityRole + FromQueryResult,
    R::Entity: EntityTrait<Model = R>,
{
    async fn find_role_model<C: ConnectionTrait>(
        &self,
        conn: &C,
        name: &str,
    ) -> Result<Option<R>, DatastoreError> {
        let col =
            R::security_column(RoleField::Name).ok_or(DatastoreError::NoSuchRole(name.into()))?;
        <R::Entity as EntityTrait>::find()
            .filter(col.eq(name))
            .one(conn)
            .await
            .db()
    }

    async fn linked<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: i64,
        role_id: i64,
    ) -> Result<bool, DatastoreError> {
        let q = Query::select()
            .expr(Expr::col(Alias::new("user_id")))
            .from(Alias::new(self.link_table.as_str()))
            .and_where(Expr::col(Alias::new("user_id")).eq(user_id))
            .and_where(Expr::col(Alias::new("role_id")).eq(role_id))
            .to_owned();
        Ok(conn.query_one(&q).await.db()?.is_some())
    }

    async fn link<C: ConnectionTrait>(
        &self,
        conn: &C,
        user_id: i64,
        role_id: i64,
    ) -> Result<(), DatastoreError> {
        let ins = Query::insert()
            .into_table(Alias::new(self.link_table.as_str()))
            .columns([Alias::new("user_id"), Alias::new("role_id")])
            .values([user_id.into(), role_id.into()])
            .map_err(|e| DatastoreError::Backend(Box::new(e)))?
            .to_owned();
        conn.execute(&ins).await.db()?;
        Ok(())
    }
}
