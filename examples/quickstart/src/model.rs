//! The quickstart's user model: Flask-Security's columns plus the app's own
//! `first_name` / `last_name`.

use sea_orm::entity::prelude::*;
use serde_json::{Map, Value};

/// A user row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, flask_security_rs::SecurityUser)]
#[sea_orm(table_name = "user")]
#[security(payload = security_payload)]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: i32,
    #[sea_orm(unique)]
    pub email: String,
    #[sea_orm(unique)]
    pub username: Option<String>,
    pub password: Option<String>,
    pub active: bool,
    #[sea_orm(unique)]
    pub fs_uniquifier: String,
    pub confirmed_at: Option<DateTime>,
    pub last_login_at: Option<DateTime>,
    pub current_login_at: Option<DateTime>,
    pub last_login_ip: Option<String>,
    pub current_login_ip: Option<String>,
    pub login_count: Option<i32>,
    pub tf_primary_method: Option<String>,
    pub tf_totp_secret: Option<String>,
    pub tf_phone_number: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub us_totp_secrets: Option<String>,
    #[sea_orm(unique)]
    pub us_phone_number: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub mf_recovery_codes: Option<String>,
    pub create_datetime: DateTime,
    pub update_datetime: DateTime,
    /// The app's own column.
    pub first_name: Option<String>,
    /// The app's own column.
    pub last_name: Option<String>,
}

/// `get_security_payload`: the user's name once the app knows it (seeded and
/// registered users have none, so their payload stays `{}`).
fn security_payload(m: &Model) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(f) = &m.first_name {
        out.insert("first_name".into(), Value::String(f.clone()));
    }
    if let Some(l) = &m.last_name {
        out.insert("last_name".into(), Value::String(l.clone()));
    }
    out
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
