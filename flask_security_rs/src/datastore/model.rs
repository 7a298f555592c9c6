//! Traits that map an application's SeaORM models onto Flask-Security's user and
//! role columns. Implemented by `#[derive(SecurityUser)]` / `#[derive(SecurityRole)]`.

use sea_orm::{EntityTrait, ModelTrait};

/// The user columns Flask-Security knows about (fsqla_v3 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UserField {
    /// `id`, the primary key.
    Id,
    /// `email`.
    Email,
    /// `username`.
    Username,
    /// `password` (passlib-format hash, nullable).
    Password,
    /// `active`.
    Active,
    /// `fs_uniquifier`.
    FsUniquifier,
    /// `fs_token_uniquifier` (optional column).
    FsTokenUniquifier,
    /// `confirmed_at`.
    ConfirmedAt,
    /// `last_login_at`.
    LastLoginAt,
    /// `current_login_at`.
    CurrentLoginAt,
    /// `last_login_ip`.
    LastLoginIp,
    /// `current_login_ip`.
    CurrentLoginIp,
    /// `login_count`.
    LoginCount,
    /// `tf_primary_method`.
    TfPrimaryMethod,
    /// `tf_totp_secret`.
    TfTotpSecret,
    /// `tf_phone_number`.
    TfPhoneNumber,
    /// `us_totp_secrets`.
    UsTotpSecrets,
    /// `us_phone_number`.
    UsPhoneNumber,
    /// `fs_webauthn_user_handle`.
    FsWebauthnUserHandle,
    /// `mf_recovery_codes`.
    MfRecoveryCodes,
    /// `create_datetime`.
    CreateDatetime,
    /// `update_datetime`.
    UpdateDatetime,
}

impl UserField {
    /// Every field, in declaration order.
    pub const ALL: &'static [UserField] = &[
        UserField::Id,
        UserField::Email,
        UserField::Username,
        UserField::Password,
        UserField::Active,
        UserField::FsUniquifier,
        UserField::FsTokenUniquifier,
        UserField::ConfirmedAt,
        UserField::LastLoginAt,
        UserField::CurrentLoginAt,
        UserField::LastLoginIp,
        UserField::CurrentLoginIp,
        UserField::LoginCount,
        UserField::TfPrimaryMethod,
        UserField::TfTotpSecret,
        UserField::TfPhoneNumber,
        UserField::UsTotpSecrets,
        UserField::UsPhoneNumber,
        UserField::FsWebauthnUserHandle,
        UserField::MfRecoveryCodes,
        UserField::CreateDatetime,
        UserField::UpdateDatetime,
    ];
}

/// The role columns Flask-Security knows about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RoleField {
    /// `id`, the primary key.
    Id,
    /// `name`.
    Name,
    /// `description`.
    Description,
    /// `permissions` (comma-separated list).
    Permissions,
    /// `update_datetime`.
    UpdateDatetime,
}

/// Column type of a model's entity.
pub type ColumnOf<M> = <<M as ModelTrait>::Entity as EntityTrait>::Column;

/// A SeaORM model usable as Flask-Security's user. Derive it with
/// `#[derive(SecurityUser)]`.
pub trait SecurityUser: ModelTrait + Send + Sync + 'static {
    /// The column holding `field`, or `None` when the model lacks it.
    fn security_column(field: UserField) -> Option<ColumnOf<Self>>;

    /// What `response.user` holds in JSON responses
    /// (Flask-Security's `get_security_payload`, `{}` by default).
    fn security_payload(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}

/// A SeaORM model usable as Flask-Security's role. Derive it with
/// `#[derive(SecurityRole)]`.
pub trait SecurityRole: ModelTrait + Send + Sync + 'static {
    /// The column holding `field`, or `None` when the model lacks it.
    fn security_column(field: RoleField) -> Option<ColumnOf<Self>>;
}
