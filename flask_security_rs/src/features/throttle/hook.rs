//! The [`LoginHook`] that counts failures and refuses locked attempts.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::store::{Backoff, ThrottleStore};
use crate::datastore::User;
use crate::login::{Attempt, LoginHook, Verdict};
use crate::messages::{Message, Msg};
use crate::state::SecurityState;

/// Old entries are purged once every this many recorded failures.
const PURGE_EVERY: u64 = 256;

/// The throttle: `allow` refuses attempts on a locked key, `failed` counts,
/// `signed_in` resets the account.
pub(super) struct Throttle {
    pub store: Arc<dyn ThrottleStore>,
    /// Per account.
    pub account: Backoff,
    /// Per client address, when addresses are counted.
    pub address: Option<Backoff>,
    /// Count unknown identities under a key of their own, as if they were
    /// accounts (`return_generic_responses`: nothing may tell them apart).
    pub hide_unknown: bool,
    pub recorded: AtomicU64,
}

/// The keys of one attempt.
struct Keys {
    /// `user:<fs_uniquifier>`, or `user:?<digest of the identity>` for an
    /// identity that names no account.
    account: Option<String>,
    /// Whether failures count on `account`.
    count_account: bool,
    /// `ip:<address>`, when addresses are counted and the address is known.
    address: Option<String>,
}

/// What `allow` saw on the account key, for `signed_in` in the same request:
/// `Some(Some(key))` failures to reset, `Some(None)` none.
struct Checked(Mutex<Option<Option<String>>>);

fn account_key(user: &User) -> String {
    format!("user:{}", user.fs_uniquifier)
}

/// The key of an identity that names no account: a digest, so the table
/// never holds what was typed (a password in the email field, say).
fn unknown_key(identity: &str) -> String {
    let digest = Sha256::digest(identity.trim().to_lowercase().as_bytes());
    format!("user:?{}", crate::util::hex(&digest[..16]))
}

/// `ip:<v4>`, or `ip:<first 64 bits>::/64` for IPv6 (one host usually has
/// the whole /64).
fn address_key(ip: IpAddr) -> String {
    let v6 = match ip {
        IpAddr::V4(v4) => return format!("ip:{v4}"),
        IpAddr::V6(v6) => v6,
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return format!("ip:{v4}");
    }
    let s = v6.segments();
    format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
}

impl Throttle {
    fn keys(&self, attempt: &Attempt<'_>, user: Option<&User>) -> Keys {
        let (account, count_account) = match (user, attempt.given_identity()) {
            (Some(u), _) => (Some(account_key(u)), true),
            // Read even when not counted, so both cases run the same query.
            (None, Some(identity)) => (Some(unknown_key(identity)), self.hide_unknown),
            (None, None) => (None, false),
        };
        let address = self
            .address
            .and(attempt.request().client_ip())
            .map(address_key);
        Keys {
            account,
            count_account,
            address,
        }
    }

    /// Counts a failure on `key`; `who` names it in the log (not the
    /// uniquifier).
    async fn record(&self, key: &str, who: &str, now: i64, backoff: &Backoff) {
        match self.store.record_failure(key, now, backoff).await {
            Ok(e) if e.failures == i64::from(backoff.free_attempts) && e.locked_until > now => {
                log::warn!(
                    "throttle: {who} locked for {}s after {} failed authentications",
                    e.locked_until - now,
                    e.failures
                );
            }
            Ok(_) => {}
            Err(e) => log::error!("throttle: counting a failure of {who} failed: {e}"),
        }
    }
}

#[rocket::async_trait]
impl LoginHook for Throttle {
    async fn allow(&self, attempt: &Attempt<'_>, user: Option<&User>) -> Verdict {
        let req = attempt.request();
        let Some(state) = SecurityState::of(req) else {
            return Verdict::Allow;
        };
        let keys = self.keys(attempt, user);
        let read: Vec<String> = keys.account.iter().chain(&keys.address).cloned().collect();
        let entries = match self.store.entries(&read).await {
            Ok(e) => e,
            Err(e) => {
                // Fail open: a broken table must not lock everyone out.
                log::error!("throttle: reading failure counts failed: {e}");
                return Verdict::Allow;
            }
        };
        if user.is_some() {
            let seen = keys
                .account
                .filter(|k| entries.iter().any(|e| &e.key == k && e.failures > 0));
            let checked = req.local_cache(|| Checked(Mutex::new(None)));
            if let Ok(mut c) = checked.0.lock() {
                *c = Some(seen);
            }
        }
        let now = state.clock.now_secs();
        let until = entries.iter().map(|e| e.locked_until).max().unwrap_or(0);
        if until <= now {
            return Verdict::Allow;
        }
        let secs = until - now;
        Verdict::Throttle {
            retry_after: Duration::from_secs(secs.unsigned_abs()),
            message: Message::new(Msg::TooManyAttempts).arg("seconds", secs),
        }
    }

    async fn failed(&self, attempt: &Attempt<'_>, user: Option<&User>) {
        let Some(state) = SecurityState::of(attempt.request()) else {
            return;
        };
        let now = state.clock.now_secs();
        let keys = self.keys(attempt, user);
        if let (true, Some(key)) = (keys.count_account, &keys.account) {
            let who = user.map_or_else(
                || "an unknown identity".into(),
                |u| format!("user {}", u.id),
            );
            self.record(key, &who, now, &self.account).await;
        }
        if let (Some(key), Some(backoff)) = (&keys.address, &self.address) {
            self.record(key, key, now, backoff).await;
        }
        if self.recorded.fetch_add(1, Ordering::Relaxed) % PURGE_EVERY == PURGE_EVERY - 1 {
            let before = now.saturating_sub(self.account.reset_after);
            match self.store.purge(before, now).await {
                Ok(n) => log::debug!("throttle: purged {n} old entries"),
                Err(e) => log::error!("throttle: purging old entries failed: {e}"),
            }
        }
    }

    async fn signed_in(&self, attempt: &Attempt<'_>, user: &User) {
        let checked = attempt.request().local_cache(|| Checked(Mutex::new(None)));
        let key = match checked.0.lock().ok().and_then(|c| c.clone()) {
            Some(Some(key)) => key,
            // The password was checked in this request and had no failures.
            Some(None) => return,
            // Signed in without a password check in this request (a
            // confirmation or reset link, a second factor later on).
            None => account_key(user),
        };
        if let Err(e) = self.store.reset(&key).await {
            log::error!(
                "throttle: resetting the count of user {} failed: {e}",
                user.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys() {
        let k = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(k("10.1.2.3"), "ip:10.1.2.3");
        assert_eq!(k("::ffff:10.1.2.3"), "ip:10.1.2.3");
        assert_eq!(k("2001:db8:1:2:3:4:5:6"), "ip:2001:db8:1:2::/64");
        assert_eq!(k("2001:db8:1:2:ffff::1"), "ip:2001:db8:1:2::/64");
    }

    #[test]
    fn unknown_identities_are_hashed_and_case_blind() {
        let a = unknown_key("Nobody@Example.com ");
        assert_eq!(a, unknown_key("nobody@example.com"));
        assert!(a.starts_with("user:?") && !a.contains("example"), "{a}");
        assert_eq!(a.len(), "user:?".len() + 32);
    }
}
