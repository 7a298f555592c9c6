//! The `fs_ceremony` table (ours; Flask-Security keeps this state in the
//! session cookie).

use sea_orm_migration::prelude::*;

use crate::datastore::migration::{bigint_zero, drop_table};

use super::TABLE;

/// Creates `fs_ceremony(id PRIMARY KEY, kind, user_id, data, expires_at)`
/// (times in unix seconds) and an index on `expires_at`, when missing. One
/// of [`migrations()`](crate::migration::migrations).
pub struct CreateFsCeremony;

impl MigrationName for CreateFsCeremony {
    fn name(&self) -> &str {
        "m20261202_000001_fs_ceremony"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFsCeremony {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new(TABLE))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("id"))
                            .string_len(64)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Alias::new("kind")).string_len(32).not_null())
                    .col(bigint_zero("user_id"))
                    .col(ColumnDef::new(Alias::new("data")).text().not_null())
                    .col(bigint_zero("expires_at"))
                    .to_owned(),
            )
            .await?;
        // Purging expired records filters on it.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_fs_ceremony_expires_at")
                    .table(Alias::new(TABLE))
                    .col(Alias::new("expires_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, TABLE).await
    }
}
