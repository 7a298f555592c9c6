//! Passwords: Flask-Security-compatible hashing ([`PasswordUtil`]), always run
//! on the blocking pool, and the policy new passwords must meet.

mod hash;
pub(crate) mod policy;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

pub(crate) use hash::PasswordUtil;
pub(crate) use hash::{Verified, hash_data, verify_hash};
pub(crate) use policy::PasswordPolicy;

/// Every hashing slot stayed taken for longer than the configured wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

/// Why no hash was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashFailure {
    /// All slots busy.
    Busy,
    /// The hash function failed (logged).
    Failed,
    /// The password changed meanwhile (a concurrent reset or change won).
    Stale,
    /// The datastore failed (logged).
    Unavailable,
}

/// The configured hasher, used off the async executor, at most
/// `password_hash_concurrency` computations at a time (dummy ones included):
/// each takes argon2's memory, so the bound is what keeps a burst of logins
/// from exhausting the machine. Callers wait for a slot up to
/// `password_hash_queue_timeout`.
#[derive(Debug, Clone)]
pub(crate) struct Passwords {
    util: Arc<PasswordUtil>,
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl Passwords {
    pub(crate) fn new(util: PasswordUtil, concurrency: usize, wait: Duration) -> Self {
        Passwords {
            util: Arc::new(util),
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            wait,
        }
    }

    /// How long a caller waits for a slot.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Runs `f` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&PasswordUtil) -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let permit = match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) | Err(_) => return Err(Busy),
        };
        let util = self.util.clone();
        rocket::tokio::task::spawn_blocking(move || {
            let _slot = permit;
            f(&util)
        })
        .await
        .map_err(|e| {
            log::error!("password hashing task failed: {e}");
            Busy
        })
    }

    /// Hashes a password.
    pub(crate) async fn hash(&self, password: &str) -> Result<String, HashFailure> {
        let pw = password.to_string();
        match self.run(move |u| u.hash_password(&pw)).await {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(e)) => {
                log::error!("password hashing failed: {e}");
                Err(HashFailure::Failed)
            }
            Err(Busy) => Err(HashFailure::Busy),
        }
    }

    /// Checks `password` against `stored`.
    pub(crate) async fn verify(&self, password: &str, stored: &str) -> Result<Verified, Busy> {
        let (pw, stored) = (password.to_string(), stored.to_string());
        self.run(move |u| u.verify(&pw, &stored)).await
    }

    /// A string shaped like a stored hash (see [`PasswordUtil::decoy_hash`]).
    pub(crate) fn decoy_hash(&self) -> String {
        self.util.decoy_hash()
    }

    /// Burns one hash so that unknown identities take as long as known ones.
    pub(crate) async fn dummy_verify(&self) -> Result<(), Busy> {
        self.run(|u| u.dummy_verify()).await
    }
}

/// `hash_data` on the blocking pool (535,000 rounds of sha256-crypt).
pub(crate) async fn hash_data_async(data: &str) -> String {
    let data = data.to_string();
    rocket::tokio::task::spawn_blocking(move || hash_data(&data))
        .await
        .unwrap_or_default()
}

/// `verify_hash` on the blocking pool.
pub(crate) async fn verify_hash_async(hash: &str, data: &str) -> bool {
    let (hash, data) = (hash.to_string(), data.to_string());
    rocket::tokio::task::spawn_blocking(move || verify_hash(&hash, &data))
        .await
        .unwrap_or(false)
}

/// Stores a new password and a new `fs_uniquifier` (ending every session,
/// token and outstanding link of the user), provided the stored password is
/// still the one `user` was loaded with; `mails` (a notice) are queued in
/// the same write. The updated user.
pub(crate) async fn store_password(
    state: &crate::state::SecurityState,
    user: crate::datastore::User,
    password: &str,
    mails: Vec<crate::mail::Email>,
) -> Result<crate::datastore::User, HashFailure> {
    use crate::datastore::{UserUpdate, new_uniquifier};
    let hash = state.passwords.hash(password).await?;
    let uniq = new_uniquifier();
    // Only over the password the caller was checked against: of a reset and
    // a change racing from the same password, exactly one applies.
    let mut update = UserUpdate::new()
        .password_hash(hash.clone())
        .uniquifier(uniq.clone())
        .if_password(user.password.as_deref());
    update.mails = mails.clone();
    match state.datastore.update_user(user.id, update).await {
        Ok(true) => crate::mail::written(state, mails).await,
        Ok(false) => return Err(HashFailure::Stale),
        Err(e) => {
            log::error!("storing the new password failed: {e}");
            return Err(HashFailure::Unavailable);
        }
    }
    Ok(crate::datastore::User {
        fs_uniquifier: uniq,
        password: Some(hash),
        ..user
    })
}
