//! Schema migrations creating Flask-Security's `fsqla_v3` tables.
//!
//! Every statement is `CREATE TABLE IF NOT EXISTS`, so running the migrator on
//! a database written by Flask-Security creates only what is missing and never
//! touches existing rows. Applications with their own migrations add
//! [`migrations()`] to their `MigratorTrait` list.

use sea_orm_migration::prelude::*;

/// The library's migrations, in order.
pub fn migrations() -> Vec<Box<dyn MigrationTrait>> {
    vec![Box::new(CreateFsqlaV3), Box::new(CreateFsThrottle)]
}

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
