//! One-time codes as a credential of the login pipeline: RFC 6238 codes of
//! a user's secret (an authenticator app's, or one whose codes are mailed
//! or texted), checked through the throttling hook, and single use.
//!
//! A code that signed someone in is *claimed* (a record in the ceremony
//! table under `totp:<user>:<scope>:<step>`), so it cannot sign in again,
//! on any instance, while it would still be accepted. A mailed or texted
//! code is the code of the first step that is not claimed yet, so a code
//! sent after one was used is a new one. (Flask-Security accepts a code
//! again within its window.) Checking a code while setting a method up
//! claims nothing.

use super::{Attempt, CredentialError, failed, gate};
use crate::ceremony::{self, CeremonyStore};
use crate::datastore::{DatastoreError, User};
use crate::state::SecurityState;
use crate::totp::{STEP, TotpKey};

/// What a code is checked for.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Purpose<'a> {
    /// Signing in (or re-authenticating): the code is claimed, under this
    /// scope (`tf`, `us:email`, ...).
    SignIn(&'a str),
    /// Setting a method up: no claim.
    Setup,
}

fn claim_key(user: &User, scope: &str, step: i64) -> String {
    format!("totp:{}:{scope}:{step}", user.id)
}

fn store(state: &SecurityState) -> Result<&dyn CeremonyStore, DatastoreError> {
    state
        .ceremonies
        .as_deref()
        .ok_or(DatastoreError::Unsupported("ceremonies (CeremonyStore)"))
}

/// Checks `code` against `key` within `window` seconds either side of now:
/// the throttling hook first, then the code, then (signing in) its claim.
/// `Ok(false)` for a wrong or used code (reported to the hooks).
pub(crate) async fn check(
    state: &SecurityState,
    attempt: &Attempt<'_>,
    user: &User,
    key: &TotpKey,
    code: &str,
    window: i64,
    purpose: Purpose<'_>,
) -> Result<bool, CodeError> {
    gate(state, attempt, Some(user))
        .await
        .map_err(CodeError::Refused)?;
    let good = matches(state, user, key, code, window, purpose).await?;
    if !good {
        failed(state, attempt, Some(user)).await;
    }
    Ok(good)
}

/// Whether `code` is right for `key` (and, signing in, not used yet: it is
/// claimed now), without the hooks: the caller runs the throttling gate
/// first and reports a failure (see [`check`], which does both).
pub(crate) async fn matches(
    state: &SecurityState,
    user: &User,
    key: &TotpKey,
    code: &str,
    window: i64,
    purpose: Purpose<'_>,
) -> Result<bool, DatastoreError> {
    let now = state.clock.now_secs();
    Ok(match key.verify(code, now, window) {
        None => false,
        Some(step) => match purpose {
            Purpose::Setup => true,
            Purpose::SignIn(scope) => {
                // Claimed until the step can no longer be accepted.
                let until = (step + 1) * STEP + window + 1;
                ceremony::claim(
                    store(state)?,
                    &claim_key(user, scope, step),
                    user.id,
                    now,
                    until,
                )
                .await?
            }
        },
    })
}

/// The code to send `user` for signing in under `scope`: that of the first
/// step from now on that is not claimed yet (at most `window` ahead).
pub(crate) async fn to_send(
    state: &SecurityState,
    user: &User,
    key: &TotpKey,
    scope: &str,
    window: i64,
) -> Result<String, DatastoreError> {
    let now = state.clock.now_secs();
    let first = now.div_euclid(STEP);
    let store = store(state)?;
    for step in first..=first + (window / STEP).max(0) {
        if !ceremony::claimed(store, &claim_key(user, scope, step), now).await? {
            return Ok(key.code_at(step * STEP));
        }
    }
    Ok(key.code_at(now))
}

/// Why a code could not be checked.
#[derive(Debug)]
pub(crate) enum CodeError {
    /// The throttling hook refused (or held back) the attempt.
    Refused(CredentialError),
    /// The datastore failed.
    Backend(DatastoreError),
}

impl From<DatastoreError> for CodeError {
    fn from(e: DatastoreError) -> Self {
        CodeError::Backend(e)
    }
}

/// Texts `code` to `phone` (`USE_CODE`) through the application's sender;
/// whether it went (failures, and a missing sender or number, logged).
pub(crate) async fn text(
    state: &SecurityState,
    sms: Option<&std::sync::Arc<dyn crate::sms::SmsSender>>,
    phone: Option<&str>,
    code: &str,
) -> bool {
    let (Some(sms), Some(to)) = (sms, phone) else {
        log::error!("no SMS sender or phone number: the code was not sent");
        return false;
    };
    let body = crate::messages::Message::new(crate::messages::Msg::UseCode)
        .arg("code", code)
        .render(&state.messages);
    match sms.send(to, &body).await {
        Ok(()) => true,
        Err(e) => {
            log::error!("sending an SMS failed: {e}");
            false
        }
    }
}

/// The context of a mail carrying `code`: `token`, `username` (else the
/// email) and `within` (the window, in words).
pub(crate) fn mail_context(
    user: &User,
    code: &str,
    window: i64,
) -> rocket_dyn_templates::tera::Context {
    let mut c = rocket_dyn_templates::tera::Context::new();
    c.insert("token", code);
    c.insert("username", user.username.as_deref().unwrap_or(&user.email));
    c.insert("within", &crate::messages::within_text(window));
    c
}
