//! The admin API on top of [`UserDatastore`]: role and permission helpers
//! every datastore gets ([`UserDatastoreExt`]), and [`Admin`], which also
//! hashes passwords with the configured hasher (for seeding).

use std::sync::Arc;

use rocket::{Phase, Rocket};

use super::outbox::{OutboxStore, QueuedMail};
use super::sessions::{SessionInfo, SessionStore};
use super::{
    DatastoreError, Lookup, NewUser, Role, User, UserDatastore, UserUpdate, new_uniquifier,
};
use crate::clock::Clock;
use crate::passwords::Passwords;
use crate::state::SecurityState;

/// Helpers every [`UserDatastore`] has, written with its primitives
/// (Flask-Security's datastore admin API).
#[rocket::async_trait]
pub trait UserDatastoreExt: UserDatastore {
    /// Finds a role or creates it with `permissions`.
    async fn find_or_create_role(
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
    async fn add_permissions_to_role(
        &self,
        name: &str,
        permissions: &[&str],
    ) -> Result<(), DatastoreError> {
        let mut perms = existing_role(self, name).await?.permissions;
        for p in permissions {
            if !perms.iter().any(|x| x == p) {
                perms.push((*p).to_string());
            }
        }
        self.set_role_permissions(name, &perms).await
    }

    /// Removes permissions from a role.
    async fn remove_permissions_from_role(
        &self,
        name: &str,
        permissions: &[&str],
    ) -> Result<(), DatastoreError> {
        let perms: Vec<String> = existing_role(self, name)
            .await?
            .permissions
            .into_iter()
            .filter(|p| !permissions.contains(&p.as_str()))
            .collect();
        self.set_role_permissions(name, &perms).await
    }

    /// Activates a user.
    async fn activate_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        let done = self
            .update_user(user_id, UserUpdate::new().active(true))
            .await?;
        super::applied(user_id, done)
    }

    /// Deactivates a user: its sessions and tokens stop working at once,
    /// since `active` is checked on every request.
    async fn deactivate_user(&self, user_id: i64) -> Result<(), DatastoreError> {
        let done = self
            .update_user(user_id, UserUpdate::new().active(false))
            .await?;
        super::applied(user_id, done)
    }

    /// Gives the user a new `fs_token_uniquifier` (when the model has one),
    /// ending its auth tokens but not its sessions.
    async fn set_token_uniquifier(&self, user_id: i64) -> Result<String, DatastoreError> {
        if !self.has_field(super::UserField::FsTokenUniquifier) {
            return Err(DatastoreError::MissingField(
                super::UserField::FsTokenUniquifier,
            ));
        }
        let uniq = new_uniquifier();
        let done = self
            .update_user(user_id, UserUpdate::new().token_uniquifier(uniq.clone()))
            .await?;
        super::applied(user_id, done)?;
        Ok(uniq)
    }

    /// Gives the user a new `fs_uniquifier`, ending every session, remember
    /// cookie, auth token and outstanding link.
    async fn set_uniquifier(&self, user_id: i64) -> Result<String, DatastoreError> {
        let uniq = new_uniquifier();
        let done = self
            .update_user(user_id, UserUpdate::new().uniquifier(uniq.clone()))
            .await?;
        super::applied(user_id, done)?;
        Ok(uniq)
    }
}

impl<T: UserDatastore + ?Sized> UserDatastoreExt for T {}

/// The role named `name`, or [`DatastoreError::NoSuchRole`].
async fn existing_role<D: UserDatastore + ?Sized>(
    ds: &D,
    name: &str,
) -> Result<Role, DatastoreError> {
    ds.find_role(name)
        .await?
        .ok_or_else(|| DatastoreError::NoSuchRole(name.into()))
}

/// The datastore of a Rocket instance with the `Security` fairing, plus its
/// password hasher: what an application seeds users and roles with.
///
/// ```no_run
/// # use flask_security_rs::{Admin, NewUser, UserDatastoreExt};
/// # async fn seed(rocket: &rocket::Rocket<rocket::Ignite>) -> Result<(), Box<dyn std::error::Error>> {
/// let admin = Admin::of(rocket).ok_or("Security fairing not attached")?;
/// admin.datastore().find_or_create_role("admin", &["admin-read"]).await?;
/// if admin.find_user("admin@example.com").await?.is_none() {
///     admin
///         .create_user(NewUser::new("admin@example.com").roles(["admin"]), "password")
///         .await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Admin {
    datastore: Arc<dyn UserDatastore>,
    sessions: Option<Arc<dyn SessionStore>>,
    outbox: Option<Arc<dyn OutboxStore>>,
    passwords: Passwords,
    clock: Clock,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

impl Admin {
    /// The admin handle of an ignited (or launched) Rocket, `None` when the
    /// `Security` fairing is not attached.
    pub fn of<P: Phase>(rocket: &Rocket<P>) -> Option<Admin> {
        rocket.state::<SecurityState>().map(SecurityState::admin)
    }

    pub(crate) fn new(
        datastore: Arc<dyn UserDatastore>,
        sessions: Option<Arc<dyn SessionStore>>,
        outbox: Option<Arc<dyn OutboxStore>>,
        passwords: Passwords,
        clock: Clock,
    ) -> Self {
        Admin {
            datastore,
            sessions,
            outbox,
            passwords,
            clock,
        }
    }

    fn outbox(&self) -> Result<&dyn OutboxStore, DatastoreError> {
        self.outbox
            .as_deref()
            .ok_or(DatastoreError::Unsupported("a mail outbox"))
    }

    /// Mails that stopped being retried after `mail_max_attempts` failures
    /// (each was logged), oldest first, with their last error.
    ///
    /// # Errors
    /// When the datastore fails or has no outbox.
    pub async fn dead_mails(&self) -> Result<Vec<QueuedMail>, DatastoreError> {
        self.outbox()?.dead_mails().await
    }

    /// Queues a dead mail again, with a fresh count of attempts; whether it
    /// was dead.
    ///
    /// # Errors
    /// When the datastore fails or has no outbox.
    pub async fn retry_mail(&self, id: i64) -> Result<bool, DatastoreError> {
        self.outbox()?.revive(id, self.clock.now_secs()).await
    }

    /// How many mails wait for delivery (dead letters not counted).
    ///
    /// # Errors
    /// When the datastore fails or has no outbox.
    pub async fn pending_mails(&self) -> Result<u64, DatastoreError> {
        self.outbox()?.pending().await
    }

    fn session_store(&self) -> Result<&dyn SessionStore, DatastoreError> {
        self.sessions
            .as_deref()
            .ok_or(DatastoreError::Unsupported("session records"))
    }

    /// The user's sessions that can still be used, newest first (an account
    /// page's "your devices"). Compare [`SessionInfo::id`] with
    /// [`crate::SessionId`] to mark the current one.
    ///
    /// # Errors
    /// When the datastore fails or keeps no session records.
    pub async fn sessions(&self, user_id: i64) -> Result<Vec<SessionInfo>, DatastoreError> {
        let now = self.clock.now_secs();
        let mut all = self.session_store()?.user_sessions(user_id).await?;
        all.retain(|s| s.is_live(now, false) || s.is_live(now, true));
        Ok(all)
    }

    /// Revokes one of the user's sessions: its cookie and remember cookie
    /// stop working on the next request, on every instance. Whether it
    /// existed.
    ///
    /// # Errors
    /// When the datastore fails or keeps no session records.
    pub async fn revoke_session(&self, user_id: i64, id: &str) -> Result<bool, DatastoreError> {
        self.session_store()?
            .delete_session(id, Some(user_id))
            .await
    }

    /// Revokes every session of the user but `keep` (the current one, say);
    /// how many were revoked.
    ///
    /// # Errors
    /// When the datastore fails or keeps no session records.
    pub async fn revoke_sessions(
        &self,
        user_id: i64,
        keep: Option<&str>,
    ) -> Result<u64, DatastoreError> {
        self.session_store()?
            .delete_user_sessions(user_id, keep)
            .await
    }

    /// The datastore.
    pub fn datastore(&self) -> &dyn UserDatastore {
        self.datastore.as_ref()
    }

    /// Finds a user by email (case-insensitively).
    ///
    /// # Errors
    /// When the datastore fails.
    pub async fn find_user(&self, email: &str) -> Result<Option<User>, DatastoreError> {
        self.datastore.find_user(Lookup::Email(email)).await
    }

    /// Creates `new` with `password` hashed the configured way (off the async
    /// executor); the email counts as confirmed now unless `new` says when.
    ///
    /// # Errors
    /// When hashing or the datastore fails (e.g. the email is taken).
    pub async fn create_user(
        &self,
        mut new: NewUser,
        password: &str,
    ) -> Result<User, DatastoreError> {
        let hash =
            self.passwords.hash(password).await.map_err(|_| {
                DatastoreError::Backend("password hashing failed or is busy".into())
            })?;
        new.password_hash = Some(hash);
        new.email = crate::identity::normalize_email(&new.email)
            .ok_or(DatastoreError::InvalidIdentity("email address"))?;
        if new.confirmed_at.is_none() {
            new.confirmed_at = Some(self.clock.naive_utc());
        }
        self.datastore.create_user(new).await
    }

    /// Sets a user's password (hashed) and rotates its `fs_uniquifier`.
    ///
    /// # Errors
    /// When hashing or the datastore fails.
    pub async fn set_password(&self, user_id: i64, password: &str) -> Result<(), DatastoreError> {
        let hash =
            self.passwords.hash(password).await.map_err(|_| {
                DatastoreError::Backend("password hashing failed or is busy".into())
            })?;
        let done = self
            .datastore
            .update_user(
                user_id,
                UserUpdate::new()
                    .password_hash(hash)
                    .uniquifier(new_uniquifier()),
            )
            .await?;
        super::applied(user_id, done)
    }
}
