//! The user model: Flask-Security's columns plus the app's `first_name` and
//! `last_name`, which the JSON user payload shows (Flask's `models.py`).

use sea_orm::entity::prelude::*;
use serde_json::{Map, Value, json};

/// A row of `user`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, flask_security_rs::SecurityUser)]
#[sea_orm(table_name = "user")]
#[security(payload = payload)]
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
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

/// `get_security_payload`: the user's name, in every JSON user object.
fn payload(m: &Model) -> Map<String, Value> {
    let v = json!({"first_name": m.first_name, "last_name": m.last_name});
    v.as_object().cloned().unwrap_or_default()
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
