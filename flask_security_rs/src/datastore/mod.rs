//! Where users and roles live: the [`UserDatastore`] trait and its SeaORM
//! implementation.

mod seaorm;

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::NaiveDateTime;
use sea_orm::Value;

pub use crate::model::{RoleField, UserField};
pub use seaorm::SeaOrmDatastore;

/// Errors of a datastore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// The database failed.
    #[error("database error: {0}")]
    Db(#[from] sea_orm::DbErr),
    /// The model has no column for a field the operation needs.
    #[error("the user model has no column for {0:?}")]
    MissingField(UserField),
    /// A named role does not exist.
    #[error("no role named {0:?}")]
    NoSuchRole(String),
}

/// A role with its permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Primary key.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Permissions.
    pub permissions: Vec<String>,
}

/// A user as the library sees it, loaded with its roles in one query.
#[derive(Clone)]
pub struct User {
    /// Primary key.
    pub id: i64,
    /// Email address.
    pub email: String,
    /// Username, when enabled.
    pub username: Option<String>,
    pub(crate) password: Option<String>,
    /// Whether the account may authenticate.
    pub active: bool,
    /// Security identity.
    pub fs_uniquifier: String,
    /// Token identity, when the model has `fs_token_uniquifier`.
    pub fs_token_uniquifier: Option<String>,
    /// When the email was confirmed.
    pub confirmed_at: Option<NaiveDateTime>,
    /// Latest login time.
    pub current_login_at: Option<NaiveDateTime>,
    /// Latest login address.
    pub current_login_ip: Option<String>,
    /// Login count.
    pub login_count: Option<i64>,
    /// Roles.
    pub roles: Vec<Role>,
    pub(crate) payload: serde_json::Map<String, serde_json::Value>,
    pub(crate) model: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("username", &self.username)
            .field("active", &self.active)
            .field(
                "roles",
                &self
                    .roles
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl User {
    /// Whether the user has a password set.
    pub fn has_password(&self) -> bool {
        self.password.as_deref().is_some_and(|p| !p.is_empty())
    }

    /// The stored password hash (passlib format), empty when there is none.
    pub fn password_hash(&self) -> &str {
        self.password.as_deref().unwrap_or("")
    }

    /// Whether the user has the role `name`.
    pub fn has_role(&self, name: &str) -> bool {
        self.roles.iter().any(|r| r.name == name)
    }

    /// Whether any of the user's roles grants `permission`.
    pub fn has_permission(&self, permission: &str) -> bool {
        self.roles
            .iter()
            .any(|r| r.permissions.iter().any(|p| p == permission))
    }

    /// All permissions granted by the user's roles, sorted.
    pub fn permissions(&self) -> BTreeSet<String> {
        self.roles
            .iter()
            .flat_map(|r| r.permissions.iter().cloned())
            .collect()
    }

    /// `get_security_payload()`: what JSON responses show as `user`.
    pub fn security_payload(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.payload
    }

    /// The application's own model this user was loaded from.
    pub fn model<M: 'static>(&self) -> Option<&M> {
        self.model.downcast_ref::<M>()
    }

    /// The uid auth tokens carry.
    pub fn token_uniquifier(&self) -> &str {
        self.fs_token_uniquifier
            .as_deref()
            .unwrap_or(&self.fs_uniquifier)
    }
}

/// How to find a user.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Lookup<'a> {
    /// By primary key.
    Id(i64),
    /// By `fs_uniquifier`.
    Uniquifier(&'a str),
    /// By `fs_token_uniquifier` when the model has it, else `fs_uniquifier`.
    TokenUniquifier(&'a str),
    /// By email, case-insensitively.
    Email(&'a str),
    /// By username, case-insensitively.
    Username(&'a str),
}

/// A user to create.
#[derive(Clone, Default)]
pub struct NewUser {
    /// Email address (already normalised).
    pub email: String,
    /// Username.
    pub username: Option<String>,
    /// Password hash (already hashed).
    pub password_hash: Option<String>,
    /// Whether the account may authenticate.
    pub active: bool,
    /// Confirmation time.
    pub confirmed_at: Option<NaiveDateTime>,
    /// Names of existing roles to give the user.
    pub roles: Vec<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("active", &self.active)
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

/// Storage of users and roles (Flask-Security's `UserDatastore`).
#[rocket::async_trait]
pub trait UserDatastore: Send + Sync + 'static {
    /// Whether the user model has a column for `field`.
    fn has_field(&self, field: UserField) -> bool;
    /// Finds one user with roles, in one query.
    async fn find_user(&self, by: Lookup<'_>) -> Result<Option<User>, DatastoreError>;
    /// Creates a user; `fs_uniquifier` and timestamps are set here.
    async fn create_user(&self, new: NewUser) -> Result<User, DatastoreError>;
    /// Sets columns of one user (fields the model lacks are skipped).
    async fn update_user(
        &self,
        user_id: i64,
        changes: Vec<(UserField, Value)>,
    ) -> Result<(), DatastoreError>;
    /// Deletes a user.
    async fn delete_user(&self, user_id: i64) -> Result<(), DatastoreError>;
    /// Finds a role by name.
    async fn find_role(&self, name: &str) -> Result<Option<Role>, DatastoreError>;
    /// Creates a role.
    async fn create_role(
        &self,
        name: &str,
        description: Option<&str>,
        permissions: &[&str],
    ) -> Result<Role, DatastoreError>;
    /// Replaces a role's permissions.
    async fn set_role_permissions(
        &self,
        name: &str,
        permissions: &[String],
    ) -> Result<(), DatastoreError>;
    /// Gives a user a role; false if it already had it.
    async fn add_role_to_user(&self, user_id: i64, role: &str) -> Result<bool, DatastoreError>;
    /// Takes a role away; false if the user did not have it.
    async fn remove_role_from_user(&self, user_id: i64, role: &str)
    -> Result<bool, DatastoreError>;
}

/// Helpers shared by every datastore, in terms of the trait's primitives
/// (Flask-Security's datastore admin API).
impl dyn UserDatastore {
    /// Finds a role or creates it.
    pub async fn find_or_create_role(
        &self,
        name: &str,
        permissions: &[&str],
    ) -> Result<Role, DatastoreError> {
        match self.find_role(name).await? {
            Some(role) => Ok(role),
            None => self.create_role(name, None, permissions).await,
        }
    }

    /// Adds permissions to a role.
    pub async fn add_permissions_to_role(
        &self,
        name: &str,
        permissions: &[&str],
    ) -> Result<(), DatastoreError> {
        let role = self
            .find_role(name)
            .await?
            .ok_or_else(|| DatastoreError::NoSuchRole(name.into()))?;
        let mut perms = role.permissions;
        for p in permissions {
            if !perms.iter().any(|x| x == p) {
                perms.push((*p).to_string());
            }
        }
        self.set_role_permissions(name, &perms).await
    }

    /// Removes permissions from a role.
    pub async fn remove_permissions_from_role(
        &self,
        name: &str,
        permissions: &[&str],
    ) -> Result<(), DatastoreError> {
        let role = self
            .find_role(name)
            .await?
            .ok_or_else(|| DatastoreError::NoSuchRole(name.into()))?;
        let perms: Vec<String> = role
            .permissions
            .into_iter()
            .filter(|p| !permissions.contains(&p.as_str()))
            .collect();
        self.set_role_permissions(name, &perms).await
    }

    /// Activates a user.
    pub async fn activate_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        self.update_user(user_id, vec![(UserField::Active, Value::Bool(Some(true)))])
            .await
    }

    /// Deactivates a user: its sessions and tokens stop working at once,
    /// since `active` is checked on every request.
    pub async fn deactivate_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        self.update_user(user_id, vec![(UserField::Active, Value::Bool(Some(false)))])
            .await
    }

    /// Gives the user a new `fs_token_uniquifier` (when the model has one),
    /// ending its auth tokens but not its sessions.
    pub async fn set_token_uniquifier(&self, user_id: i64) -> Result<String, DatastoreError> {
        if !self.has_field(UserField::FsTokenUniquifier) {
            return Err(DatastoreError::MissingField(UserField::FsTokenUniquifier));
        }
        let uniq = new_uniquifier();
        let change = vec![(
            UserField::FsTokenUniquifier,
            Value::String(Some(uniq.clone())),
        )];
        self.update_user(user_id, change).await?;
        Ok(uniq)
    }

    /// Gives the user a new `fs_uniquifier`, ending every session, remember
    /// cookie, auth token and outstanding link.
    pub async fn set_uniquifier(&self, user_id: i64) -> Result<String, DatastoreError> {
        let uniq = new_uniquifier();
        self.update_user(
            user_id,
            vec![(UserField::FsUniquifier, Value::String(Some(uniq.clone())))],
        )
        .await?;
        Ok(uniq)
    }
}

/// A fresh uniquifier (uuid4 hex, as Flask-Security makes them).
pub fn new_uniquifier() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
