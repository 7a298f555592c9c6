//! Schema migrations creating Flask-Security's `fsqla_v3` tables.
//!
//! Every statement is `CREATE TABLE IF NOT EXISTS`, so running the migrator on
//! a database written by Flask-Security creates only what is missing and never
//! touches existing rows. Applications with their own migrations add
//! [`migrations()`] to their `MigratorTrait` list.

use sea_orm_migration::prelude::*;

/// The library's migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![
        Box::new(CreateFsqlaV3),
        Box::new(CreateIdentityIndex),
        Box::new(CreateSessionTable),
        Box::new(CreateOutboxTable),
        Box::new(CreateFsThrottle),
        Box::new(CreateFsCeremony),
    ]
}

pub use crate::ceremony::CreateFsCeremony;
pub use crate::features::throttle::CreateFsThrottle;

/// A ready-made migrator with just the library's tables.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        migrations()
    }
}

/// `user`, `role`, `roles_users` as Flask-Security's fsqla_v3 creates them.
pub struct CreateFsqlaV3;

impl MigrationName for CreateFsqlaV3 {
    fn name(&self) -> &str {
        "m20250101_000001_fsqla_v3"
    }
}

fn string(name: &str, len: u32) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).string_len(len).to_owned()
}

fn datetime(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).date_time().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFsqlaV3 {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("role"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(string("name", 80).not_null().unique_key())
                    .col(string("description", 255).null())
                    .col(ColumnDef::new(Alias::new("permissions")).text().null())
                    .col(
                        datetime("update_datetime")
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("user"))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(string("email", 255).not_null().unique_key())
                    .col(string("username", 255).null().unique_key())
                    .col(string("password", 255).null())
                    .col(ColumnDef::new(Alias::new("active")).boolean().not_null())
                    .col(string("fs_uniquifier", 64).not_null().unique_key())
                    .col(datetime("confirmed_at").null())
                    .col(datetime("last_login_at").null())
                    .col(datetime("current_login_at").null())
                    .col(string("last_login_ip", 64).null())
                    .col(string("current_login_ip", 64).null())
                    .col(ColumnDef::new(Alias::new("login_count")).integer().null())
                    .col(string("tf_primary_method", 64).null())
                    .col(string("tf_totp_secret", 255).null())
                    .col(string("tf_phone_number", 128).null())
                    .col(ColumnDef::new(Alias::new("us_totp_secrets")).text().null())
                    .col(string("us_phone_number", 128).null().unique_key())
                    .col(string("fs_webauthn_user_handle", 64).null().unique_key())
                    .col(
                        ColumnDef::new(Alias::new("mf_recovery_codes"))
                            .text()
                            .null(),
                    )
                    .col(
                        datetime("create_datetime")
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .col(
                        datetime("update_datetime")
                            .not_null()
                            .default(Expr::current_timestamp()),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("roles_users"))
                    .if_not_exists()
                    .col(ColumnDef::new(Alias::new("user_id")).integer().null())
                    .col(ColumnDef::new(Alias::new("role_id")).integer().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Alias::new("roles_users"), Alias::new("user_id"))
                            .to(Alias::new("user"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Alias::new("roles_users"), Alias::new("role_id"))
                            .to(Alias::new("role"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["roles_users", "user", "role"] {
            manager
                .drop_table(Table::drop().table(Alias::new(t)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `fs_identity`: the normalised keys emails and usernames are unique and
/// found by (see [`crate::identity::email_key`]). The SeaORM datastore fills
/// it for users that lack a row when it starts, so a database written by
/// Flask-Security needs nothing else; the user table is never rewritten.
pub struct CreateIdentityIndex;

impl MigrationName for CreateIdentityIndex {
    fn name(&self) -> &str {
        "m20261201_000002_fs_identity"
    }
}

/// The statement creating `fs_identity` (also run by the datastore at start).
pub(crate) fn identity_table() -> TableCreateStatement {
    Table::create()
        .table(Alias::new("fs_identity"))
        .if_not_exists()
        .col(string("kind", 16).not_null())
        .col(ColumnDef::new(Alias::new("value")).text().not_null())
        .col(
            ColumnDef::new(Alias::new("user_id"))
                .big_integer()
                .not_null(),
        )
        .primary_key(
            Index::create()
                .col(Alias::new("kind"))
                .col(Alias::new("value")),
        )
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateIdentityIndex {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(identity_table()).await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_fs_identity_user")
                    .table(Alias::new("fs_identity"))
                    .col(Alias::new("user_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("fs_identity"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// `fs_session`: server-side session records (see
/// [`crate::datastore::SessionStore`]).
pub struct CreateSessionTable;

impl MigrationName for CreateSessionTable {
    fn name(&self) -> &str {
        "m20261201_000003_fs_session"
    }
}

fn bigint(name: &str) -> ColumnDef {
    ColumnDef::new(Alias::new(name)).big_integer().to_owned()
}

/// A `BIGINT NOT NULL DEFAULT 0` column (counts and unix times of the
/// library's own tables).
pub(crate) fn bigint_zero(name: &str) -> ColumnDef {
    bigint(name).not_null().default(0).to_owned()
}

/// Drops `table` if it exists (the `down` of the library's own tables).
pub(crate) async fn drop_table(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    manager
        .drop_table(
            Table::drop()
                .table(Alias::new(table))
                .if_exists()
                .to_owned(),
        )
        .await
}

/// The statements creating `fs_session` and its index (also run by the
/// datastore at start).
pub(crate) fn session_table() -> (TableCreateStatement, IndexCreateStatement) {
    let table = Table::create()
        .table(Alias::new("fs_session"))
        .if_not_exists()
        .col(string("id", 64).not_null().primary_key())
        .col(bigint("user_id").not_null())
        .col(bigint("created_at").not_null())
        .col(bigint("last_seen_at").not_null())
        .col(bigint("expires_at").not_null())
        .col(bigint("remember_until").null())
        .col(string("user_agent", 512).null())
        .col(string("ip", 64).null())
        .to_owned();
    let index = Index::create()
        .if_not_exists()
        .name("ix_fs_session_user")
        .table(Alias::new("fs_session"))
        .col(Alias::new("user_id"))
        .to_owned();
    (table, index)
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSessionTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let (table, index) = session_table();
        manager.create_table(table).await?;
        manager.create_index(index).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("fs_session"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// `fs_outbox`: mails waiting for delivery, and dead letters (see
/// [`crate::datastore::OutboxStore`]).
pub struct CreateOutboxTable;

impl MigrationName for CreateOutboxTable {
    fn name(&self) -> &str {
        "m20261201_000004_fs_outbox"
    }
}

/// The statement creating `fs_outbox` (also run by the datastore at start).
pub(crate) fn outbox_table() -> TableCreateStatement {
    Table::create()
        .table(Alias::new("fs_outbox"))
        .if_not_exists()
        .col(
            ColumnDef::new(Alias::new("id"))
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(ColumnDef::new(Alias::new("sender")).text().not_null())
        .col(ColumnDef::new(Alias::new("recipient")).text().not_null())
        .col(ColumnDef::new(Alias::new("subject")).text().not_null())
        .col(ColumnDef::new(Alias::new("body_text")).text().not_null())
        .col(ColumnDef::new(Alias::new("body_html")).text().null())
        .col(bigint("created_at").not_null())
        .col(bigint("next_attempt_at").not_null())
        .col(bigint("claimed_until").null())
        .col(ColumnDef::new(Alias::new("attempts")).integer().not_null())
        .col(ColumnDef::new(Alias::new("last_error")).text().null())
        .col(string("state", 8).not_null())
        .col(string("queue", 64).not_null().default(Expr::val("default")))
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for CreateOutboxTable {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_table(outbox_table()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("fs_outbox"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

/// Creates the library's tables when missing, then adds to the user table
/// every column the application's user entity `U` has and the table lacks
/// (e.g. `first_name`), so an app with extra columns, or a database written
/// by Flask-Security, needs no hand-written `ALTER TABLE`. Existing columns
/// and rows are never changed or dropped.
///
/// ```
/// # async fn open() -> Result<(), sea_orm::DbErr> {
/// use flask_security_rs::entity::user;
///
/// let db = sea_orm::Database::connect("sqlite::memory:").await?;
/// flask_security_rs::migration::create_tables::<user::Entity>(&db).await?;
/// # Ok(()) }
/// ```
///
/// # Errors
/// When the database refuses a statement (e.g. a new `NOT NULL` column
/// without a default on a table that has rows).
pub async fn create_tables<U>(db: &sea_orm::DatabaseConnection) -> Result<(), DbErr>
where
    U: sea_orm::EntityTrait,
{
    use sea_orm::{Iterable, Schema};
    Migrator::up(db, None).await?;
    let manager = SchemaManager::new(db);
    let entity = U::default();
    let table = entity.table_name().to_string();
    let schema = Schema::new(db.get_database_backend());
    for column in U::Column::iter() {
        let name = sea_orm::IdenStatic::as_str(&column).to_string();
        if manager.has_column(&table, &name).await? {
            continue;
        }
        let mut def = schema.get_column_def::<U>(column);
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new(table.as_str()))
                    .add_column(&mut def)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}
