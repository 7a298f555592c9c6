//! Where users and roles live: the [`UserDatastore`] trait (no database types
//! in its signatures), its SeaORM implementation, the reference entities and
//! migrations, and the admin API built on the trait.
//!
//! # Extending storage
//!
//! The core trait covers users and roles. Storage a new feature needs (a
//! passkey table, ceremony state) is a trait of its own whose methods all have
//! default bodies returning [`DatastoreError::Unsupported`], so adding it
//! breaks no existing implementer; a datastore offers it through
//! [`UserDatastore::extensions`].

mod admin;
pub(crate) mod cache;
pub mod entity;
pub mod migration;
pub(crate) mod model;
pub(crate) mod outbox;
mod seaorm;
pub(crate) mod sessions;

use std::any::{Any, TypeId};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDateTime;

pub use admin::{Admin, UserDatastoreExt};
pub use cache::{Change, ChangeFeed, ChangeSink};
pub use model::{ColumnOf, RoleField, SecurityRole, SecurityUser, UserField};
pub use outbox::{OutboxStore, QueuedMail};
pub use seaorm::SeaOrmDatastore;
pub use sessions::{SessionInfo, SessionStore};

/// A boxed error from a datastore's backend.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a datastore.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatastoreError {
    /// The backend failed.
    #[error("database error: {0}")]
    Backend(BoxError),
    /// A unique column already holds the value (a concurrent write won).
    #[error("unique constraint violated: {0}")]
    Conflict(String),
    /// The datastore does not offer this storage.
    #[error("the datastore does not support {0}")]
    Unsupported(&'static str),
    /// The model has no column for a field the operation needs.
    #[error("the user model has no column for {0:?}")]
    MissingField(UserField),
    /// A named role does not exist.
    #[error("no role named {0:?}")]
    NoSuchRole(String),
    /// No user has this id.
    #[error("no user with id {0}")]
    NoSuchUser(i64),
    /// An email address or username that is not valid.
    #[error("not a valid {0}")]
    InvalidIdentity(&'static str),
}

/// `Ok(())` when an update applied, [`DatastoreError::NoSuchUser`] otherwise.
pub(crate) fn applied(user_id: i64, done: bool) -> Result<(), DatastoreError> {
    if done {
        Ok(())
    } else {
        Err(DatastoreError::NoSuchUser(user_id))
    }
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
    /// Two-factor primary method (`tf_primary_method`), when the model has it.
    pub tf_primary_method: Option<String>,
    /// Encrypted TOTP secret (`tf_totp_secret`).
    pub tf_totp_secret: Option<String>,
    /// Two-factor phone (`tf_phone_number`).
    pub tf_phone_number: Option<String>,
    /// Unified sign-in TOTP secrets (`us_totp_secrets`).
    pub us_totp_secrets: Option<String>,
    /// Unified sign-in phone (`us_phone_number`).
    pub us_phone_number: Option<String>,
    /// WebAuthn user handle (`fs_webauthn_user_handle`).
    pub fs_webauthn_user_handle: Option<String>,
    /// Recovery codes (`mf_recovery_codes`).
    pub mf_recovery_codes: Option<String>,
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

    /// The user `new` will be once created (no id yet, an empty payload):
    /// what the mails queued with its creation are rendered about.
    pub(crate) fn prospective(new: &NewUser) -> User {
        User {
            id: 0,
            email: new.email.clone(),
            username: new.username.clone(),
            password: new.password_hash.clone(),
            active: new.active,
            fs_uniquifier: new.fs_uniquifier.clone().unwrap_or_default(),
            fs_token_uniquifier: None,
            confirmed_at: new.confirmed_at,
            current_login_at: None,
            current_login_ip: None,
            login_count: None,
            tf_primary_method: None,
            tf_totp_secret: None,
            tf_phone_number: None,
            us_totp_secrets: None,
            us_phone_number: None,
            fs_webauthn_user_handle: None,
            mf_recovery_codes: None,
            roles: Vec::new(),
            payload: serde_json::Map::new(),
            model: Arc::new(()),
        }
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
    /// By email, up to case and Unicode normal form
    /// ([`crate::identity::email_key`]).
    Email(&'a str),
    /// By username, up to case and compatibility form
    /// ([`crate::identity::username_key`]).
    Username(&'a str),
    /// By `us_phone_number`, exactly as stored (normalised E.164, see
    /// [`crate::sms::normalize_phone`]).
    UsPhone(&'a str),
}

/// A user to create.
///
/// ```
/// use flask_security_rs::NewUser;
///
/// let new = NewUser::new("admin@example.com").username("admin").roles(["admin"]);
/// assert_eq!(new.email, "admin@example.com");
/// ```
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
    /// `fs_uniquifier` to use (a fresh one when unset).
    pub fs_uniquifier: Option<String>,
    /// Mails to queue in the same transaction (see [`OutboxStore`]).
    pub mails: Vec<crate::mail::Email>,
}

impl NewUser {
    /// An active, unconfirmed user with `email` and no password.
    pub fn new(email: impl Into<String>) -> Self {
        NewUser {
            email: email.into(),
            active: true,
            ..Default::default()
        }
    }

    /// Sets the username.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets an already hashed password (see [`Admin::create_user`] to hash one).
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password_hash = Some(hash.into());
        self
    }

    /// Sets whether the account may authenticate.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Marks the email confirmed at `at`.
    #[must_use]
    pub fn confirmed_at(mut self, at: NaiveDateTime) -> Self {
        self.confirmed_at = Some(at);
        self
    }

    /// Gives the user these (existing) roles.
    #[must_use]
    pub fn roles<S: Into<String>>(mut self, roles: impl IntoIterator<Item = S>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

/// Columns to change on one user; unset fields stay as they are.
///
/// ```
/// use flask_security_rs::UserUpdate;
///
/// let update = UserUpdate::new().active(false);
/// assert!(!update.is_empty());
/// ```
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct UserUpdate {
    /// `email`.
    pub email: Option<String>,
    /// `username` (`Some(None)` clears it).
    pub username: Option<Option<String>>,
    /// `password`: a hash (`Some(None)` clears it).
    pub password: Option<Option<String>>,
    /// `active`.
    pub active: Option<bool>,
    /// `fs_uniquifier`.
    pub fs_uniquifier: Option<String>,
    /// `fs_token_uniquifier`.
    pub fs_token_uniquifier: Option<String>,
    /// `confirmed_at`.
    pub confirmed_at: Option<Option<NaiveDateTime>>,
    /// `last_login_at`.
    pub last_login_at: Option<Option<NaiveDateTime>>,
    /// `current_login_at`.
    pub current_login_at: Option<Option<NaiveDateTime>>,
    /// `last_login_ip`.
    pub last_login_ip: Option<Option<String>>,
    /// `current_login_ip`.
    pub current_login_ip: Option<Option<String>>,
    /// `login_count`.
    pub login_count: Option<i64>,
    /// `tf_primary_method`.
    pub tf_primary_method: Option<Option<String>>,
    /// `tf_totp_secret` (encrypted).
    pub tf_totp_secret: Option<Option<String>>,
    /// `tf_phone_number`.
    pub tf_phone_number: Option<Option<String>>,
    /// `us_totp_secrets` (encrypted).
    pub us_totp_secrets: Option<Option<String>>,
    /// `us_phone_number`.
    pub us_phone_number: Option<Option<String>>,
    /// `fs_webauthn_user_handle`.
    pub fs_webauthn_user_handle: Option<Option<String>>,
    /// `mf_recovery_codes`.
    pub mf_recovery_codes: Option<Option<String>>,
    /// Precondition: the stored password hash is this one (`Some(None)`: no
    /// password).
    pub expect_password: Option<Option<String>>,
    /// Precondition: the stored email is this one.
    pub expect_email: Option<String>,
    /// Precondition: the email is not confirmed yet.
    pub expect_unconfirmed: bool,
    /// Precondition: the stored recovery codes are these (`Some(None)`:
    /// none).
    pub expect_recovery_codes: Option<Option<String>>,
    /// Mails to queue in the same transaction (see [`OutboxStore`]).
    pub mails: Vec<crate::mail::Email>,
}

impl UserUpdate {
    /// No changes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Sets `email`.
    #[must_use]
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets `username`.
    #[must_use]
    pub fn username(mut self, username: Option<String>) -> Self {
        self.username = Some(username);
        self
    }

    /// Sets the password hash.
    #[must_use]
    pub fn password_hash(mut self, hash: impl Into<String>) -> Self {
        self.password = Some(Some(hash.into()));
        self
    }

    /// Sets `active`.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Sets `fs_uniquifier`.
    #[must_use]
    pub fn uniquifier(mut self, uniquifier: impl Into<String>) -> Self {
        self.fs_uniquifier = Some(uniquifier.into());
        self
    }

    /// Sets `fs_token_uniquifier`.
    #[must_use]
    pub fn token_uniquifier(mut self, uniquifier: impl Into<String>) -> Self {
        self.fs_token_uniquifier = Some(uniquifier.into());
        self
    }

    /// Sets `confirmed_at`.
    #[must_use]
    pub fn confirmed_at(mut self, at: Option<NaiveDateTime>) -> Self {
        self.confirmed_at = Some(at);
        self
    }

    /// Applies only if the stored password hash is still `current`: of two
    /// concurrent changes (a reset and a change, say) that both started from
    /// it, exactly one applies.
    #[must_use]
    pub fn if_password(mut self, current: Option<&str>) -> Self {
        self.expect_password = Some(current.map(String::from));
        self
    }

    /// Applies only if the stored email is still `current`.
    #[must_use]
    pub fn if_email(mut self, current: &str) -> Self {
        self.expect_email = Some(current.to_string());
        self
    }

    /// Applies only if the email is not confirmed yet.
    #[must_use]
    pub fn if_unconfirmed(mut self) -> Self {
        self.expect_unconfirmed = true;
        self
    }

    /// Applies only if the stored recovery codes are still `current`: of
    /// concurrent uses of one code, exactly one applies.
    #[must_use]
    pub fn if_recovery_codes(mut self, current: Option<&str>) -> Self {
        self.expect_recovery_codes = Some(current.map(String::from));
        self
    }

    /// Sets the two-factor columns (`None`s clear them).
    #[must_use]
    pub fn two_factor(
        mut self,
        method: Option<String>,
        secret: Option<String>,
        phone: Option<String>,
    ) -> Self {
        self.tf_primary_method = Some(method);
        self.tf_totp_secret = Some(secret);
        self.tf_phone_number = Some(phone);
        self
    }

    /// Sets `us_totp_secrets` (the JSON `{method: encrypted secret}`;
    /// `None` clears it).
    #[must_use]
    pub fn us_totp_secrets(mut self, secrets: Option<String>) -> Self {
        self.us_totp_secrets = Some(secrets);
        self
    }

    /// Sets `us_phone_number` (`None` clears it).
    #[must_use]
    pub fn us_phone_number(mut self, phone: Option<String>) -> Self {
        self.us_phone_number = Some(phone);
        self
    }

    /// Sets `mf_recovery_codes`.
    #[must_use]
    pub fn recovery_codes(mut self, codes: Option<String>) -> Self {
        self.mf_recovery_codes = Some(codes);
        self
    }
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("active", &self.active)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
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
///
/// Implement it to keep users somewhere else than SeaORM; the admin helpers
/// of [`UserDatastoreExt`] come with it.
#[rocket::async_trait]
pub trait UserDatastore: Send + Sync + 'static {
    /// Whether the user model has a column for `field`.
    fn has_field(&self, field: UserField) -> bool;
    /// Called once when the application starts: create or fill what the
    /// datastore needs (the SeaORM datastore indexes identities here).
    async fn prepare(&self) -> Result<(), DatastoreError> {
        Ok(())
    }
    /// Finds one user with roles (one query for the SeaORM datastore).
    async fn find_user(&self, by: Lookup<'_>) -> Result<Option<User>, DatastoreError>;
    /// Creates a user; `fs_uniquifier` and timestamps are set here. Its email
    /// and username keys must be unique ([`DatastoreError::Conflict`]).
    async fn create_user(&self, new: NewUser) -> Result<User, DatastoreError>;
    /// Changes columns of one user (fields the model lacks are skipped), in
    /// one conditional write: `Ok(false)` when there is no such user or a
    /// precondition (`if_password`, `if_email`, `if_unconfirmed`) no longer
    /// holds, so that a single-use link or code is consumed exactly once
    /// however many requests race for it. A new email or username must keep
    /// its key ([`crate::identity::email_key`]) unique, or the call fails
    /// with [`DatastoreError::Conflict`] and changes nothing.
    async fn update_user(&self, user_id: i64, update: UserUpdate) -> Result<bool, DatastoreError>;
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

    /// The storage extensions this datastore offers (none by default).
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::default()
    }
}

/// Storage extensions a datastore offers, by trait: each entry is an
/// `Arc<dyn SomeStore>`.
#[derive(Default)]
pub struct Extensions {
    map: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for Extensions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extensions")
            .field("count", &self.map.len())
            .finish()
    }
}

impl Extensions {
    /// Offers `store` as the implementation of `T` (a `dyn SomeStore`).
    pub fn insert<T: ?Sized + Send + Sync + 'static>(&mut self, store: Arc<T>) {
        self.map.insert(TypeId::of::<T>(), Box::new(store));
    }

    /// The implementation of `T`, when offered.
    pub fn get<T: ?Sized + Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.map
            .get(&TypeId::of::<T>())
            .and_then(|b| b.downcast_ref::<Arc<T>>())
            .cloned()
    }
}

/// A fresh uniquifier (uuid4 hex, as Flask-Security makes them).
pub(crate) fn new_uniquifier() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    trait Notes: Send + Sync {
        fn note(&self) -> &'static str {
            "default"
        }
    }
    struct Plain;
    impl Notes for Plain {}

    #[test]
    fn extensions_by_trait() {
        let mut ext = Extensions::default();
        assert!(ext.get::<dyn Notes>().is_none());
        ext.insert::<dyn Notes>(Arc::new(Plain));
        assert_eq!(ext.get::<dyn Notes>().map(|n| n.note()), Some("default"));
    }
}
