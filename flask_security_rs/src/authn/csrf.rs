//! CSRF protection the way Flask-Security does it for SPAs (Flask-WTF's
//! signed session token, presented in a header or the `csrf_token` form field).

use rocket::http::{Cookie, Method};
use rocket::request::Request;
use serde_json::Value;

use super::session;
use crate::messages::Msg;
use crate::state::SecurityState;
use crate::tokens::{Serializer, TokenError};

/// Salt Flask-WTF signs CSRF tokens with.
pub(crate) const CSRF_SALT: &str = "wtf-csrf-token";

/// Why a request failed the CSRF check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CsrfError {
    /// No token presented.
    Missing,
    /// The session holds no token.
    SessionMissing,
    /// Bad signature.
    Invalid,
    /// Too old.
    Expired,
    /// Signed token of another session.
    NoMatch,
}

impl CsrfError {
    /// The message the caller sees.
    pub(crate) fn message(self) -> Msg {
        match self {
            CsrfError::Missing => Msg::CsrfMissing,
            CsrfError::SessionMissing => Msg::CsrfSessionMissing,
            CsrfError::Invalid => Msg::CsrfInvalid,
            CsrfError::Expired => Msg::CsrfExpired,
            CsrfError::NoMatch => Msg::CsrfNoMatch,
        }
    }
}

/// Whether `method` changes state (and so needs a token).
pub(crate) fn is_unsafe(method: Method) -> bool {
    !matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Trace
    )
}

fn raw_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    crate::util::hex(&bytes)
}

/// The token signed for this request, and the secret it signs: the cookie
/// and the JSON body of one response carry the same token, even when a
/// second ticks over between the two.
struct Signed(std::sync::Mutex<Option<(String, String)>>);

/// The signed CSRF token of this session, creating the session secret when needed.
pub(crate) fn generate(req: &Request<'_>, state: &SecurityState) -> String {
    let raw = session::update(req, |s| s.csrf_token.get_or_insert_with(raw_secret).clone());
    let signed = req.local_cache(|| Signed(std::sync::Mutex::new(None)));
    let mut slot = match signed.0.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some((secret, token)) = slot.as_ref()
        && *secret == raw
    {
        return token.clone();
    }
    let token = sign_secret(&state.serializer(CSRF_SALT), &raw, state.clock.now_secs());
    *slot = Some((raw, token.clone()));
    token
}

fn presented(req: &Request<'_>, state: &SecurityState, form_token: Option<&str>) -> Option<String> {
    if let Some(t) = form_token.filter(|t| !t.is_empty()) {
        return Some(t.to_string());
    }
    let names = [
        state.config.csrf_header.as_str(),
        "X-CSRFToken",
        "X-CSRF-Token",
    ];
    names.iter().find_map(|h| {
        req.headers()
            .get_one(h)
            .filter(|v| !v.is_empty())
            .map(String::from)
    })
}

/// Checks the token presented with `req` against the session.
pub(crate) fn validate(
    req: &Request<'_>,
    state: &SecurityState,
    form_token: Option<&str>,
) -> Result<(), CsrfError> {
    let token = presented(req, state, form_token).ok_or(CsrfError::Missing)?;
    let secret = session::with(req, |s| s.csrf_token.clone()).ok_or(CsrfError::SessionMissing)?;
    check_token(
        &state.serializer(CSRF_SALT),
        &token,
        &secret,
        state.config.csrf_time_limit,
        state.clock.now_secs(),
    )
}

/// The CSRF token for the session secret `raw`, signed at `now` (Unix
/// seconds) by `ser` (the CSRF salt's): the request-free core of [`generate`].
///
/// Not compressed: the payload, a quoted 40-hex-digit secret, does not
/// shrink under zlib (43 bytes at the least over 300,000 random secrets,
/// against 42 plain), and Flask-WTF reads either form.
pub(crate) fn sign_secret(ser: &Serializer, raw: &str, now: i64) -> String {
    ser.dumps_plain_at(&Value::String(raw.to_string()), now)
}

/// Checks `token` against the session secret `secret` as of `now`: the
/// request-free core of [`validate`].
pub(crate) fn check_token(
    ser: &Serializer,
    token: &str,
    secret: &str,
    time_limit: Option<i64>,
    now: i64,
) -> Result<(), CsrfError> {
    let value = ser.loads_at(token, time_limit, now).map_err(|e| match e {
        TokenError::Expired { .. } => CsrfError::Expired,
        _ => CsrfError::Invalid,
    })?;
    let signed = value.as_str().ok_or(CsrfError::Invalid)?;
    if crate::util::ct_eq(signed.as_bytes(), secret.as_bytes()) {
        Ok(())
    } else {
        Err(CsrfError::NoMatch)
    }
}

/// Sends the JavaScript-readable CSRF cookie, when configured.
pub(crate) fn set_cookie(req: &Request<'_>, state: &SecurityState, token: &str) {
    let Some(name) = state.config.csrf_cookie_name.clone() else {
        return;
    };
    let c = &state.config.csrf_cookie;
    let mut cookie = Cookie::build((name, token.to_string()))
        .path("/")
        .http_only(c.httponly)
        .secure(c.secure);
    if let Some(s) = c.samesite {
        cookie = cookie.same_site(s.to_cookie());
    }
    crate::http::cookies::send(req, cookie.build());
}

/// Deletes the CSRF cookie (logout).
pub(crate) fn clear_cookie(req: &Request<'_>, state: &SecurityState) {
    let Some(name) = state.config.csrf_cookie_name.clone() else {
        return;
    };
    let c = &state.config.csrf_cookie;
    let mut cookie = Cookie::build((name, String::new()))
        .path("/")
        .http_only(c.httponly)
        .secure(c.secure)
        .max_age(rocket::time::Duration::ZERO)
        .expires(rocket::time::OffsetDateTime::UNIX_EPOCH);
    if let Some(s) = c.samesite {
        cookie = cookie.same_site(s.to_cookie());
    }
    crate::http::cookies::send(req, cookie.build());
}

/// Sends a fresh CSRF cookie (after a login, as Flask-Security does).
pub(crate) fn refresh_cookie(req: &Request<'_>, state: &SecurityState) {
    if state.config.csrf_cookie_name.is_some() {
        let token = generate(req, state);
        set_cookie(req, state, &token);
    }
}
