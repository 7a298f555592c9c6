//! Flask-Security's auth tokens (v5: `{"ver": "5", "uid", "fs_paa", "exp"}`
//! signed with `remember_salt`; legacy v3/v4 lists still verify).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::datastore::User;
use crate::datastore::cache::Memo;
use crate::state::SecurityState;
use crate::tokens::Serializer;

/// What a validly signed auth token says. Verified tokens are kept (see
/// [`VerifiedTokens`]), so a token seen again skips the signature check and
/// the decoding; its age and `exp` are checked on every use.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claims {
    /// The uid (the token uniquifier).
    pub uid: String,
    /// `fs_paa`: when the user last authenticated (0 in legacy tokens).
    pub paa: f64,
    /// `exp` (0: none).
    pub exp: f64,
    /// When the token was signed (Unix seconds).
    pub signed_at: i64,
}

impl Claims {
    /// The claims of `token` if its signature is good (v5 object, or legacy
    /// v4/v3 list), whatever its age.
    pub(crate) fn verify(serializer: &Serializer, token: &str) -> Option<Claims> {
        let (data, signed_at) = serializer.loads_signed(token).ok()?;
        let (uid, paa, exp) = match data {
            Value::Object(m) => {
                let uid = m.get("uid")?.as_str()?.to_string();
                m.get("ver")?;
                let exp = m.get("exp")?.as_f64()?;
                let paa = m.get("fs_paa").and_then(Value::as_f64).unwrap_or(0.0);
                (uid, paa, exp)
            }
            Value::Array(items) => (items.last()?.as_str()?.to_string(), 0.0, 0.0),
            _ => return None,
        };
        Some(Claims {
            uid,
            paa,
            exp,
            signed_at,
        })
    }

    /// Whether the token may be used at `now` (Unix time): not older than
    /// `max_age` seconds (nor dated in the future) when set, not past `exp`.
    pub(crate) fn usable(&self, max_age: Option<i64>, now: f64) -> bool {
        let age = (now.floor() as i64).saturating_sub(self.signed_at);
        if max_age.is_some_and(|m| age > m || age < 0) {
            return false;
        }
        !(self.exp > 0.0 && self.exp < now)
    }
}

/// A token whose signature was found good: its claims, and the user its
/// uid named last time (see [`Memo`]).
pub(crate) struct Verified {
    pub claims: Claims,
    pub user: Memo,
}

/// Auth tokens whose signature was found good, by token: a bounded cache,
/// since verifying (HMAC, base64, zlib, JSON) costs more than the rest of an
/// authenticated request. Only validly signed tokens are kept.
pub(crate) type VerifiedTokens = crate::datastore::cache::Cache<String, Arc<Verified>>;

/// A valid auth token (v5 object, or legacy v4/v3 list): its claims (the uid
/// and `fs_paa`), and where the user it names may be remembered.
pub(crate) fn parse_auth_token(state: &SecurityState, token: &str) -> Option<Arc<Verified>> {
    let max_age = (state.config.token_max_age > 0).then_some(state.config.token_max_age);
    let verify = || {
        Claims::verify(&state.serializer(&state.config.remember_salt), token).map(|claims| {
            Arc::new(Verified {
                claims,
                user: Memo::default(),
            })
        })
    };
    let verified = match &state.decoded {
        Some(d) => match d.tokens.get(token) {
            Some(v) => v,
            None => {
                let v = verify()?;
                d.tokens.insert(token.to_string(), v.clone());
                v
            }
        },
        None => verify()?,
    };
    verified
        .claims
        .usable(max_age, state.clock.now())
        .then_some(verified)
}

/// [`parse_auth_token`] without the state or the cache: `serializer` over
/// the signing keys and `remember_salt`, as of `now` (Unix time).
pub(crate) fn parse_auth_token_at(
    serializer: &Serializer,
    token: &str,
    max_age: Option<i64>,
    now: f64,
) -> Option<(String, f64)> {
    let claims = Claims::verify(serializer, token)?;
    claims
        .usable(max_age, now)
        .then_some((claims.uid, claims.paa))
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
