//! The `role` table.

use sea_orm::entity::prelude::*;

/// A row of `role`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, crate::SecurityRole)]
#[sea_orm(table_name = "role")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Unique name.
    #[sea_orm(unique)]
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Permissions, comma-joined.
    #[sea_orm(column_type = "Text", nullable)]
    pub permissions: Option<String>,
    /// Row update time.
    pub update_datetime: DateTime,
}

/// Relations of `role`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// User links.
    #[sea_orm(has_many = "super::roles_users::Entity")]
    RolesUsers,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        super::roles_users::Relation::User.def()
    }
    fn via() -> Option<RelationDef> {
        Some(super::roles_users::Relation::Role.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
