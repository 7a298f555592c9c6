//! Reference SeaORM entities with Flask-Security's `fsqla_v3` tables and
//! columns, so a database written by Flask-Security opens as is.
//! Applications may use them directly or define their own models (with extra
//! columns) and derive [`SecurityUser`](crate::SecurityUser) on them.

pub mod role;
pub mod roles_users;
pub mod user;
