//! Throttling of failed authentications (ours: Flask-Security has only the
//! hooks, `is_locked` / `track_failed_authn`). On by default.
//!
//! A [`LoginHook`](crate::LoginHook) in the login pipeline, so every way of
//! authenticating that checks a secret there is covered, whatever the
//! endpoint: `/login`, `/verify`, the current password of `/change`, HTTP
//! basic (and later codes and passkeys). Failures are counted per key, in
//! the database, so every instance of the application sharing it sees the
//! same counts:
//!
//! * `user:<fs_uniquifier>`: the account the identity names;
//! * `ip:<address>` (IPv6: its /64): the client address (Rocket's
//!   `client_ip()`, so the `ip_header` of a trusted proxy), when
//!   `throttle_ip_free_attempts` is set.
//!
//! An identity that names no account counts against the address only; with
//! `return_generic_responses` it also gets a key of its own (a digest of
//! the identity), so that a lock does not tell it apart from an account.
//!
//! After `throttle_free_attempts` consecutive failures a key is locked for
//! `throttle_base_delay` seconds, and each further failure doubles the lock,
//! up to `throttle_max_delay`. While a key is locked, attempts on it are
//! refused *before* the password is looked at (no hash runs), with 429, a
//! `Retry-After` header and `TOO_MANY_ATTEMPTS` (JSON: the envelope with
//! `errors` and `retry_after`; a form: re-rendered with the error). Refused
//! attempts do not count. A completed sign-in resets the account's count;
//! failures older than `throttle_reset_after` are forgotten.
//!
//! | key | default | |
//! |---|---|---|
//! | `throttle_enabled` | `true` | |
//! | `throttle_free_attempts` | `10` | per account, at least 1 |
//! | `throttle_ip_free_attempts` | `0` | per address; `0`: addresses not counted |
//! | `throttle_base_delay` | `30` | seconds |
//! | `throttle_max_delay` | `900` | seconds, at least the base |
//! | `throttle_reset_after` | `86400` | seconds, at least the max |
//!
//! Addresses are not counted by default: behind a proxy whose address
//! Rocket's `ip_header` does not replace, every client shares one address
//! (one attacker would lock everyone out), and without a proxy the default
//! `X-Real-IP` header is whatever the client sends.
//!
//! Storage is the [`ThrottleStore`] extension of the datastore
//! ([`SeaOrmDatastore`](crate::SeaOrmDatastore): the `fs_throttle` table of
//! [`CreateFsThrottle`]); a datastore without it gets a warning at ignite
//! and no throttling.

mod hook;
mod store;
mod table;

use std::sync::atomic::AtomicU64;

use serde::Deserialize;

use super::{Feature, Setup, section_keys};
use crate::config::ConfigError;
use hook::Throttle;

pub(crate) use store::TABLE;
pub use store::{Backoff, ThrottleEntry, ThrottleStore};
pub use table::CreateFsThrottle;

/// The throttle feature's keys (ours, not Flask-Security's).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ThrottleConfig {
    /// Count failed authentications and throttle them. _Default:_ `true`.
    throttle_enabled: bool,
    /// Consecutive failures on one account before it is locked (the attempt
    /// after this many failures gets 429). _Default:_ `10`.
    throttle_free_attempts: u32,
    /// The same for one client address, over every account and unknown
    /// identities; `0` does not count addresses. _Default:_ `0`.
    throttle_ip_free_attempts: u32,
    /// Seconds of the first lock; each further failure doubles it.
    /// _Default:_ `30`.
    throttle_base_delay: i64,
    /// Seconds of the longest lock. _Default:_ `900`.
    throttle_max_delay: i64,
    /// Seconds after the last failure when a key's failures are forgotten.
    /// _Default:_ `86400`.
    throttle_reset_after: i64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            throttle_enabled: true,
            throttle_free_attempts: 10,
            throttle_ip_free_attempts: 0,
            throttle_base_delay: 30,
            throttle_max_delay: 900,
            throttle_reset_after: 86400,
        }
    }
}

impl ThrottleConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::positive_secs("throttle_base_delay", self.throttle_base_delay)?;
        ConfigError::positive_secs("throttle_max_delay", self.throttle_max_delay)?;
        ConfigError::positive_secs("throttle_reset_after", self.throttle_reset_after)?;
        if self.throttle_free_attempts == 0 {
            return Err(ConfigError::new(
                "throttle_free_attempts",
                "must be at least 1 (set `throttle_enabled = false` to turn throttling off)",
            ));
        }
        if self.throttle_max_delay < self.throttle_base_delay {
            return Err(ConfigError::new(
                "throttle_max_delay",
                "must be at least `throttle_base_delay`",
            ));
        }
        if self.throttle_reset_after < self.throttle_max_delay {
            return Err(ConfigError::new(
                "throttle_reset_after",
                "must be at least `throttle_max_delay`",
            ));
        }
        Ok(())
    }

    fn backoff(&self, free_attempts: u32) -> Backoff {
        Backoff {
            free_attempts,
            base_delay: self.throttle_base_delay,
            max_delay: self.throttle_max_delay,
            reset_after: self.throttle_reset_after,
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(ThrottleConfig),
    templates: &[],
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: ThrottleConfig = setup.section()?;
    if !cfg.throttle_enabled {
        return Ok(());
    }
    cfg.validate()?;
    let Some(store) = setup
        .datastore()
        .clone()
        .extensions()
        .get::<dyn ThrottleStore>()
    else {
        log::warn!(
            "`security.throttle_enabled`: the datastore offers no `ThrottleStore`; \
             failed authentications are not throttled"
        );
        return Ok(());
    };
    let ip = cfg.throttle_ip_free_attempts;
    setup.login_hook(Throttle {
        store,
        account: cfg.backoff(cfg.throttle_free_attempts),
        address: (ip > 0).then(|| cfg.backoff(ip)),
        hide_unknown: setup.config.return_generic_responses,
        recorded: AtomicU64::new(0),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_values_sane() {
        let cfg = ThrottleConfig::default();
        assert_eq!(cfg.validate(), Ok(()));
        let b = cfg.backoff(cfg.throttle_free_attempts);
        assert_eq!(b.lock_secs(9), 0);
        assert_eq!(b.lock_secs(10), 30);
        assert_eq!(b.lock_secs(14), 480);
        assert_eq!(b.lock_secs(15), 900);
    }

    #[test]
    fn nonsense_is_refused() {
        let bad = |f: fn(&mut ThrottleConfig)| {
            let mut cfg = ThrottleConfig::default();
            f(&mut cfg);
            cfg.validate().map_err(|e| e.key().to_string())
        };
        assert_eq!(
            bad(|c| c.throttle_base_delay = 0),
            Err("throttle_base_delay".into())
        );
        assert_eq!(
            bad(|c| c.throttle_free_attempts = 0),
            Err("throttle_free_attempts".into())
        );
        assert_eq!(
            bad(|c| c.throttle_max_delay = 10),
            Err("throttle_max_delay".into())
        );
        assert_eq!(
            bad(|c| c.throttle_reset_after = 60),
            Err("throttle_reset_after".into())
        );
        assert_eq!(bad(|c| c.throttle_ip_free_attempts = 0), Ok(()));
    }
}
