//! The `fs_throttle` table (ours; Flask-Security has none).

use sea_orm_migration::prelude::*;

use crate::datastore::migration::{bigint_zero, drop_table};

use super::store::TABLE;

/// Creates `fs_throttle(key PRIMARY KEY, failures, locked_until, updated_at)`
/// (times in unix seconds) and an index on `updated_at`, when missing. One of
/// [`migrations()`](crate::migration::migrations).
pub struct CreateFsThrottle;

impl MigrationName for CreateFsThrottle {
    fn name(&self) -> &str {
        "m20261201_000001_fs_throttle"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateFsThrottle {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new(TABLE))
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Alias::new("key"))
                            .string_len(255)
                            .not_null()
                            .primary_key(),
                    )
                    .col(bigint_zero("failures"))
                    .col(bigint_zero("locked_until"))
                    .col(bigint_zero("updated_at"))
                    .to_owned(),
            )
            .await?;
        // Purging old entries filters on it.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("ix_fs_throttle_updated_at")
                    .table(Alias::new(TABLE))
                    .col(Alias::new("updated_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        drop_table(manager, TABLE).await
    }
}
