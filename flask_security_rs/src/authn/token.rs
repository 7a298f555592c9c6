//! Flask-Security's auth tokens (v5: `{"ver": "5", "uid", "fs_paa", "exp"}`
//! signed with `remember_salt`; legacy v3/v4 lists still verify).

use serde_json::{Value, json};

use crate::datastore::User;
use crate::state::SecurityState;
use crate::tokens::Serializer;

/// The uid and `fs_paa` of a valid auth token (v5 object, or legacy v4/v3 list).
pub(crate) fn parse_auth_token(state: &SecurityState, token: &str) -> Option<(String, f64)> {
    let max_age = if state.config.token_max_age > 0 {
        Some(state.config.token_max_age)
    } else {
        None
    };
    parse_auth_token_at(
        &state.serializer(&state.config.remember_salt),
        token,
        max_age,
        state.clock.now_secs(),
        state.clock.now(),
    )
}

/// [`parse_auth_token`] without the state: `serializer` over the signing keys
/// and `remember_salt`, as of `now` (Unix time; `now_secs` truncated).
pub(crate) fn parse_auth_token_at(
    serializer: &Serializer,
    token: &str,
    max_age: Option<i64>,
    now_secs: i64,
    now: f64,
) -> Option<(String, f64)> {
    let data = serializer.loads_at(token, max_age, now_secs).ok()?;
    match data {
        Value::Object(m) => {
            let uid = m.get("uid")?.as_str()?.to_string();
            m.get("ver")?;
            let exp = m.get("exp")?.as_f64()?;
            if exp > 0.0 && exp < now {
                return None;
            }
            let paa = m.get("fs_paa").and_then(Value::as_f64).unwrap_or(0.0);
            Some((uid, paa))
        }
        Value::Array(items) => {
            let uid = items.last()?.as_str()?.to_string();
            Some((uid, 0.0))
        }
        _ => None,
    }
}

/// A new auth token for `user` (Flask-Security v5 format).
pub(crate) fn auth_token(state: &SecurityState, user: &User) -> String {
    let exp = state
        .token_expiry
        .as_ref()
        .map(|f| f(user, state.clock.now_secs()))
        .unwrap_or(0);
    let payload = json!({
        "ver": "5",
        "uid": user.token_uniquifier(),
        "fs_paa": state.clock.now(),
        "exp": exp,
    });
    state
        .serializer(&state.config.remember_salt)
        .dumps_at(&payload, state.clock.now_secs())
}
