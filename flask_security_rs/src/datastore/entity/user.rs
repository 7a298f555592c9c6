//! The `user` table.

use sea_orm::entity::prelude::*;

/// A row of `user` (fsqla_v3 columns).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, crate::SecurityUser)]
#[sea_orm(table_name = "user")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key)]
    pub id: i32,
    /// Email (unique, normalised).
    #[sea_orm(unique)]
    pub email: String,
    /// Optional username (unique).
    #[sea_orm(unique)]
    pub username: Option<String>,
    /// passlib-format password hash.
    pub password: Option<String>,
    /// Whether the account may authenticate.
    pub active: bool,
    /// Security identity; rotated to end every session and token.
    #[sea_orm(unique)]
    pub fs_uniquifier: String,
    /// When the email was confirmed.
    pub confirmed_at: Option<DateTime>,
    /// Previous login time.
    pub last_login_at: Option<DateTime>,
    /// Latest login time.
    pub current_login_at: Option<DateTime>,
    /// Previous login address.
    pub last_login_ip: Option<String>,
    /// Latest login address.
    pub current_login_ip: Option<String>,
    /// Number of logins.
    pub login_count: Option<i32>,
    /// Two-factor method.
    pub tf_primary_method: Option<String>,
    /// Encrypted TOTP secret.
    pub tf_totp_secret: Option<String>,
    /// Phone for SMS codes.
    pub tf_phone_number: Option<String>,
    /// Unified sign-in secrets (JSON).
    #[sea_orm(column_type = "Text", nullable)]
    pub us_totp_secrets: Option<String>,
    /// Unified sign-in phone.
    #[sea_orm(unique)]
    pub us_phone_number: Option<String>,
    /// WebAuthn user handle.
    #[sea_orm(unique)]
    pub fs_webauthn_user_handle: Option<String>,
    /// Recovery codes, comma-joined.
    #[sea_orm(column_type = "Text", nullable)]
    pub mf_recovery_codes: Option<String>,
    /// Row creation time.
    pub create_datetime: DateTime,
    /// Row update time.
    pub update_datetime: DateTime,
}

/// Relations of `user`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Role links.
    #[sea_orm(has_many = "super::roles_users::Entity")]
    RolesUsers,
}

impl Related<super::role::Entity> for Entity {
    fn to() -> RelationDef {
        super::roles_users::Relation::Role.def()
    }
    fn via() -> Option<RelationDef> {
        Some(super::roles_users::Relation::User.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
