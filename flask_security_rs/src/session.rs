//! The `session` cookie (private: encrypted and authenticated with Rocket's
//! `secret_key`) and the `remember_token` cookie.

use std::sync::Mutex;

use rocket::http::{Cookie, CookieJar, SameSite};
use rocket::request::Request;
use serde::{Deserialize, Serialize};

use crate::SecurityState;

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "session";
/// Name of the remember-me cookie.
pub const REMEMBER_COOKIE: &str = "remember_token";

/// What the session holds (the keys Flask-Security and Flask-Login use).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionData {
    /// `fs_uniquifier` of the logged-in user.
    #[serde(rename = "_user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Time of the last primary authentication (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_paa: Option<f64>,
    /// End of the freshness grace period (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_gexp: Option<f64>,
    /// Raw CSRF secret of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Messages for the next rendered page: (category, text).
    #[serde(rename = "_flashes", default, skip_serializing_if = "Vec::is_empty")]
    pub flashes: Vec<(String, String)>,
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionData")
            .field("logged_in", &self.user_id.is_some())
            .field("fs_paa", &self.fs_paa)
            .field("fs_gexp", &self.fs_gexp)
            .finish_non_exhaustive()
    }
}

struct Cached(Mutex<SessionData>);

fn cached<'r>(req: &'r Request<'_>) -> &'r Cached {
    req.local_cache(|| {
        let data = req
            .cookies()
            .get_private(SESSION_COOKIE)
            .and_then(|c| serde_json::from_str::<SessionData>(c.value()).ok())
            .unwrap_or_default();
        Cached(Mutex::new(data))
    })
}

/// A copy of the request's session.
pub fn get(req: &Request<'_>) -> SessionData {
    cached(req).0.lock().map(|s| s.clone()).unwrap_or_default()
}

/// Changes the session and sends the new cookie (or deletes it when empty).
pub fn update<T>(req: &Request<'_>, f: impl FnOnce(&mut SessionData) -> T) -> T {
    let cache = cached(req);
    let mut guard = match cache.0.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let before = guard.clone();
    let out = f(&mut guard);
    // Only a changed session is sent again.
    if *guard != before {
        write(req, &guard);
    }
    out
}

fn write(req: &Request<'_>, data: &SessionData) {
    let jar = req.cookies();
    if *data == SessionData::default() {
        expire(req, SESSION_COOKIE);
        return;
    }
    let Ok(value) = serde_json::to_string(data) else {
        return;
    };
    let cfg = req.rocket().state::<SecurityState>().map(|s| &s.config);
    let same_site = same_site(
        cfg.map(|c| c.session_cookie_samesite.as_str())
            .unwrap_or("Strict"),
    );
    let secure = cfg.is_some_and(|c| c.session_cookie_secure);
    let mut cookie = Cookie::build((SESSION_COOKIE, value))
        // A browser-session cookie, as Flask sends it (Rocket would add a week).
        .expires(None::<rocket::time::OffsetDateTime>)
        .path("/")
        .http_only(true)
        .secure(secure);
    if let Some(s) = same_site {
        cookie = cookie.same_site(s);
    }
    jar.add_private(cookie);
}

/// Parses a `SameSite` setting.
pub fn same_site(v: &str) -> Option<SameSite> {
    match v.to_ascii_lowercase().as_str() {
        "strict" => Some(SameSite::Strict),
        "lax" => Some(SameSite::Lax),
        "none" => Some(SameSite::None),
        _ => None,
    }
}

/// Queues a message for the next HTML page (Flask's `flash`).
pub fn flash(req: &Request<'_>, category: &str, text: impl Into<String>) {
    let enabled = req
        .rocket()
        .state::<SecurityState>()
        .is_none_or(|s| s.config.flash_messages);
    if enabled {
        let text = text.into();
        update(req, |s| s.flashes.push((category.to_string(), text)));
    }
}

/// Takes the queued messages.
pub fn take_flashes(req: &Request<'_>) -> Vec<(String, String)> {
    if get(req).flashes.is_empty() {
        return Vec::new();
    }
    update(req, |s| std::mem::take(&mut s.flashes))
}

/// Clears the session (logout).
pub fn clear(req: &Request<'_>) {
    update(req, |s| {
        let flashes = std::mem::take(&mut s.flashes);
        *s = SessionData {
            flashes,
            ..SessionData::default()
        };
    });
}

/// The uid in a valid `remember_token` cookie.
pub fn remember_uid(req: &Request<'_>, state: &SecurityState) -> Option<String> {
    let cookie = req.cookies().get(REMEMBER_COOKIE)?;
    let keys = state.config.signing_keys();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    crate::token::verify_remember_cookie(&refs, cookie.value())
}

/// Sets the `remember_token` cookie for `uid`.
pub fn set_remember(jar: &CookieJar<'_>, state: &SecurityState, uid: &str) {
    let Some(key) = state.config.secret_key.as_ref() else {
        return;
    };
    let value = crate::token::remember_cookie_value(key.expose().as_bytes(), uid);
    let expires = rocket::time::OffsetDateTime::now_utc()
        + rocket::time::Duration::seconds(state.config.remember_cookie_duration);
    let cookie = Cookie::build((REMEMBER_COOKIE, value))
        .path("/")
        .http_only(true)
        .secure(state.config.session_cookie_secure)
        .expires(expires);
    jar.add(cookie);
}

/// Deletes the `remember_token` cookie.
pub fn clear_remember(req: &Request<'_>) {
    expire(req, REMEMBER_COOKIE);
}

/// Sends a cookie that deletes `name` (empty, `Max-Age=0`, expired), with the
/// attributes the cookie was set with, whether or not the request carried it.
pub fn expire(req: &Request<'_>, name: &str) {
    let cfg = req.rocket().state::<SecurityState>().map(|s| &s.config);
    let secure = cfg.is_some_and(|c| c.session_cookie_secure);
    let mut cookie = Cookie::build((name.to_string(), String::new()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .max_age(rocket::time::Duration::ZERO)
        .expires(rocket::time::OffsetDateTime::UNIX_EPOCH);
    if let Some(s) = same_site(
        cfg.map(|c| c.session_cookie_samesite.as_str())
            .unwrap_or("Strict"),
    ) {
        cookie = cookie.same_site(s);
    }
    req.cookies().add(cookie);
}
