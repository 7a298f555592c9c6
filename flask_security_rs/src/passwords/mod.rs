//! Passwords: Flask-Security-compatible hashing ([`PasswordUtil`]), always run
//! on the blocking pool, and the policy new passwords must meet.

mod hash;
pub(crate) mod policy;

use std::sync::Arc;

pub(crate) use hash::PasswordUtil;
pub(crate) use hash::{Verified, hash_data, verify_hash};
pub(crate) use policy::PasswordPolicy;

/// The configured hasher, used off the async executor.
#[derive(Debug, Clone)]
pub(crate) struct Passwords {
    util: Arc<PasswordUtil>,
}

impl Passwords {
    pub(crate) fn new(util: PasswordUtil) -> Self {
        Passwords {
            util: Arc::new(util),
        }
    }

    /// Hashes a password on the blocking pool.
    pub(crate) async fn hash(&self, password: &str) -> Option<String> {
        let util = self.util.clone();
        let pw = password.to_string();
        match rocket::tokio::task::spawn_blocking(move || util.hash_password(&pw)).await {
            Ok(Ok(h)) => Some(h),
            Ok(Err(e)) => {
                log::error!("password hashing failed: {e}");
                None
            }
            Err(e) => {
                log::error!("password hashing task failed: {e}");
                None
            }
        }
    }

    /// Checks `password` against `stored` on the blocking pool.
    pub(crate) async fn verify(&self, password: &str, stored: &str) -> Verified {
        let util = self.util.clone();
        let (pw, stored) = (password.to_string(), stored.to_string());
        rocket::tokio::task::spawn_blocking(move || util.verify(&pw, &stored))
            .await
            .unwrap_or(Verified::No)
    }

    /// Burns one hash so that unknown identities take as long as known ones.
    pub(crate) async fn dummy_verify(&self) {
        let util = self.util.clone();
        let _ = rocket::tokio::task::spawn_blocking(move || util.dummy_verify()).await;
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
/// token and outstanding link of the user); the updated user.
pub(crate) async fn store_password(
    state: &crate::state::SecurityState,
    user: crate::datastore::User,
    password: &str,
) -> Option<crate::datastore::User> {
    use crate::datastore::{UserUpdate, new_uniquifier};
    let hash = state.passwords.hash(password).await?;
    let uniq = new_uniquifier();
    let update = UserUpdate::new()
        .password_hash(hash.clone())
        .uniquifier(uniq.clone());
    if let Err(e) = state.datastore.update_user(user.id, update).await {
        log::error!("storing the new password failed: {e}");
        return None;
    }
    Some(crate::datastore::User {
        fs_uniquifier: uniq,
        password: Some(hash),
        ..user
    })
}
