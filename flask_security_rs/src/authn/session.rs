//! The `session` cookie (sealed: encrypted and authenticated under a key
//! derived from `secret_key`, see [`crate::tokens::Sealer`]) and the
//! `remember_token` cookie.

use std::sync::Mutex;

use rocket::http::Cookie;
use rocket::request::Request;
use serde::{Deserialize, Serialize};

use crate::datastore::cache::Memo;
use crate::datastore::sessions::{SessionInfo, new_session_id, record_id};
use crate::datastore::{DatastoreError, User};
use crate::messages::Message;
use crate::state::SecurityState;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "session";
/// Name of the remember-me cookie.
pub(crate) const REMEMBER_COOKIE: &str = "remember_token";

/// What the session holds (the keys Flask-Security and Flask-Login use).
#[derive(Clone, Default, Serialize, Deserialize, PartialEq)]
pub(crate) struct SessionData {
    /// `fs_uniquifier` of the logged-in user.
    #[serde(rename = "_user_id", default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The session's id: its server-side record is `record_id(sid)`.
    #[serde(rename = "_sid", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Time of the last primary authentication (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_paa: Option<f64>,
    /// End of the freshness grace period (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_gexp: Option<f64>,
    /// Raw CSRF secret of this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// Reference of a ceremony in progress (a sign-in waiting for its
    /// second factor, a method being set up): its record is server-side,
    /// see [`crate::ceremony`].
    #[serde(rename = "fs_cer", default, skip_serializing_if = "Option::is_none")]
    pub ceremony: Option<String>,
    /// Messages for the next rendered page.
    #[serde(rename = "_flashes", default, skip_serializing_if = "Vec::is_empty")]
    pub flashes: Vec<Message>,
    /// When the cookie was last written (epoch seconds), for
    /// `permanent_session_lifetime`.
    #[serde(rename = "_iat", default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<i64>,
}

impl SessionData {
    fn is_empty(&self) -> bool {
        SessionData {
            issued_at: None,
            ..self.clone()
        } == SessionData::default()
    }
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

/// A session cookie as it opened: its data, the record id of its session
/// id (a SHA-256, worth keeping with the decrypted cookie), and the record
/// and user it named last time (see [`Memo`]).
pub(crate) struct Opened {
    data: SessionData,
    record: Option<String>,
    found: Memo,
}

impl Opened {
    fn new(data: SessionData) -> Opened {
        let record = data.sid.as_deref().map(record_id);
        Opened {
            data,
            record,
            found: Memo::default(),
        }
    }
}

struct Cached {
    data: Mutex<SessionData>,
    /// The cookie as it opened (its session id's record id is there).
    opened: Option<std::sync::Arc<Opened>>,
}

/// The session the request's cookie holds, decrypted (or, for a cookie
/// seen before, as it was decrypted then).
fn decode(req: &Request<'_>, state: Option<&SecurityState>) -> Option<std::sync::Arc<Opened>> {
    let jar = req.cookies();
    let sealed = jar.get(SESSION_COOKIE)?;
    let kept = state.and_then(|s| s.decoded.as_ref());
    if let Some(d) = kept.and_then(|k| k.sessions.get(sealed.value())) {
        return Some(d);
    }
    let plain = state
        .and_then(|s| s.sealer.open(SESSION_COOKIE, sealed.value()))
        // Sealed by Rocket under its own `secret_key` (before the library
        // sealed it itself).
        .or_else(|| {
            jar.get_private(SESSION_COOKIE)
                .map(|c| c.value().to_string())
        })?;
    let data = serde_json::from_str::<SessionData>(&plain).ok()?;
    let opened = std::sync::Arc::new(Opened::new(data));
    if let Some(k) = kept {
        k.sessions
            .insert(sealed.value().to_string(), opened.clone());
    }
    Some(opened)
}

fn cached<'r>(req: &'r Request<'_>) -> &'r Cached {
    req.local_cache(|| {
        let state = SecurityState::of(req);
        let opened = decode(req, state)
            // Like Flask's signed cookie: too old since its last write, it is void.
            .filter(|o| match (state, o.data.issued_at) {
                (Some(s), Some(iat)) => {
                    s.clock.now_secs() - iat <= s.config.permanent_session_lifetime
                }
                _ => true,
            });
        Cached {
            data: Mutex::new(opened.as_ref().map(|o| o.data.clone()).unwrap_or_default()),
            opened,
        }
    })
}

/// The server-side record id of the session id `sid`.
pub(crate) fn record_of(req: &Request<'_>, sid: &str) -> String {
    match cached(req).opened.as_deref() {
        Some(Opened {
            data,
            record: Some(record),
            ..
        }) if data.sid.as_deref() == Some(sid) => record.clone(),
        _ => record_id(sid),
    }
}

/// Where the record and user that the request's cookie names are
/// remembered, when `(uid, sid)` are the cookie's own.
pub(crate) fn memo<'r>(req: &'r Request<'_>, (uid, sid): (&str, &str)) -> Option<&'r Memo> {
    cached(req)
        .opened
        .as_deref()
        .filter(|o| o.data.user_id.as_deref() == Some(uid) && o.data.sid.as_deref() == Some(sid))
        .map(|o| &o.found)
}

/// Reads the request's session without copying it.
pub(crate) fn with<T>(req: &Request<'_>, f: impl FnOnce(&SessionData) -> T) -> T {
    match cached(req).data.lock() {
        Ok(g) => f(&g),
        Err(poisoned) => f(&poisoned.into_inner()),
    }
}

/// Whether the request's session (as this request left it) has a user.
pub(crate) fn signed_in(req: &Request<'_>) -> bool {
    cached(req).data.lock().is_ok_and(|s| s.user_id.is_some())
}

/// A copy of the request's session.
pub(crate) fn get(req: &Request<'_>) -> SessionData {
    cached(req)
        .data
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default()
}

/// Changes the session and sends the new cookie (or deletes it when empty).
pub(crate) fn update<T>(req: &Request<'_>, f: impl FnOnce(&mut SessionData) -> T) -> T {
    let cache = cached(req);
    let mut guard = match cache.data.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let before = guard.clone();
    let out = f(&mut guard);
    // Only a changed session is sent again.
    if *guard != before {
        if let Some(state) = SecurityState::of(req) {
            guard.issued_at = Some(state.clock.now_secs());
        }
        write(req, &guard);
    }
    out
}

/// Sends the session cookie again with a new issue time: a session in use
/// stays alive (`permanent_session_lifetime` counts idle time), as its
/// server-side record does.
pub(crate) fn refresh(req: &Request<'_>) {
    let cache = cached(req);
    let mut guard = match cache.data.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(state) = SecurityState::of(req) {
        guard.issued_at = Some(state.clock.now_secs());
    }
    write(req, &guard);
}

fn write(req: &Request<'_>, data: &SessionData) {
    if data.is_empty() {
        expire(req, SESSION_COOKIE);
        return;
    }
    let Ok(value) = serde_json::to_string(data) else {
        return;
    };
    let Some(state) = SecurityState::of(req) else {
        return;
    };
    let Some(sealed) = state.sealer.seal(SESSION_COOKIE, &value) else {
        return;
    };
    let cfg = &state.config;
    let mut cookie = Cookie::build((SESSION_COOKIE, sealed))
        // A browser-session cookie, as Flask sends it (Rocket would add a week).
        .expires(None::<rocket::time::OffsetDateTime>)
        .path("/")
        .http_only(cfg.session_cookie_httponly)
        .secure(cfg.session_cookie_secure);
    if let Some(s) = cfg.session_cookie_samesite {
        cookie = cookie.same_site(s.to_cookie());
    }
    crate::http::cookies::send(req, cookie.build());
}

/// Queues a message for the next HTML page (Flask's `flash`).
pub(crate) fn flash(req: &Request<'_>, state: &SecurityState, message: Message) {
    if state.config.flash_messages {
        update(req, |s| s.flashes.push(message));
    }
}

/// Takes the queued messages.
pub(crate) fn take_flashes(req: &Request<'_>) -> Vec<Message> {
    if get(req).flashes.is_empty() {
        return Vec::new();
    }
    update(req, |s| std::mem::take(&mut s.flashes))
}

/// Signs `user` in on this request's session: a new server-side record
/// (the previous one, if any, is deleted: a session id is never reused
/// across sign-ins), new `fs_paa`, a new CSRF secret (a token from before the
/// sign-in stops working) and cookie, and, when asked, the remember cookie.
pub(crate) async fn start(
    req: &Request<'_>,
    state: &SecurityState,
    user: &User,
    remember: bool,
) -> Result<(), DatastoreError> {
    let now = state.clock.now();
    let secs = state.clock.now_secs();
    let mut sid = None;
    if let Some(store) = &state.sessions {
        if let Some(old) = get(req).sid {
            store.delete_session(&record_id(&old), None).await?;
        }
        let id = new_session_id();
        let cfg = &state.config;
        store
            .create_session(SessionInfo {
                id: record_id(&id),
                user_id: user.id,
                created_at: secs,
                last_seen_at: secs,
                expires_at: secs + cfg.permanent_session_lifetime,
                remember_until: remember.then_some(secs + cfg.remember_cookie_duration),
                user_agent: req
                    .headers()
                    .get_one("User-Agent")
                    .map(|ua| ua.chars().take(512).collect()),
                ip: req.client_ip().map(|ip| ip.to_string()),
            })
            .await?;
        sid = Some(id);
    }
    update(req, |s| {
        s.user_id = Some(user.fs_uniquifier.clone());
        s.sid = sid.clone();
        s.fs_paa = Some(now);
        s.fs_gexp = None;
        s.csrf_token = None;
    });
    if remember {
        set_remember(
            req,
            state,
            &remember_payload(&user.fs_uniquifier, sid.as_deref()),
        );
    }
    super::csrf::refresh_cookie(req, state);
    Ok(())
}

/// What the remember cookie signs: the uniquifier and, with server-side
/// sessions, the session id (`uniquifier.sid`).
fn remember_payload(uid: &str, sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("{uid}.{sid}"),
        None => uid.to_string(),
    }
}

/// Ends the request's server-side session record, if any.
pub(crate) async fn revoke(req: &Request<'_>, state: &SecurityState) -> Result<(), DatastoreError> {
    let Some(store) = &state.sessions else {
        return Ok(());
    };
    let sid = get(req)
        .sid
        .or_else(|| remember_cookie(req, state).and_then(|(_, sid)| sid));
    if let Some(sid) = sid {
        store.delete_session(&record_id(&sid), None).await?;
    }
    Ok(())
}

/// Clears the session (logout), keeping queued flashes.
pub(crate) fn clear(req: &Request<'_>) {
    update(req, |s| {
        let flashes = std::mem::take(&mut s.flashes);
        *s = SessionData {
            flashes,
            ..SessionData::default()
        };
    });
}

/// The uniquifier and session id of a valid `remember_token` cookie.
pub(crate) fn remember_cookie(
    req: &Request<'_>,
    state: &SecurityState,
) -> Option<(String, Option<String>)> {
    let cookie = req.cookies().get(REMEMBER_COOKIE)?;
    let refs: Vec<&[u8]> = state.keys.iter().map(Vec::as_slice).collect();
    let payload = crate::tokens::verify_remember_cookie(&refs, cookie.value())?;
    Some(match payload.split_once('.') {
        Some((uid, sid)) => (uid.to_string(), Some(sid.to_string())),
        None => (payload, None),
    })
}

/// Whether the request carries a valid remember cookie.
pub(crate) fn has_remember(req: &Request<'_>, state: &SecurityState) -> bool {
    remember_cookie(req, state).is_some()
}

/// Sets the `remember_token` cookie for `uid`.
fn set_remember(req: &Request<'_>, state: &SecurityState, uid: &str) {
    let Some(key) = state.config.secret_key.as_ref() else {
        return;
    };
    let cfg = &state.config;
    let value = crate::tokens::remember_cookie_value(key.expose().as_bytes(), uid);
    let expires = rocket::time::OffsetDateTime::now_utc()
        + rocket::time::Duration::seconds(cfg.remember_cookie_duration);
    let mut cookie = Cookie::build((REMEMBER_COOKIE, value))
        .path("/")
        .http_only(cfg.remember_cookie_httponly)
        .secure(cfg.remember_secure())
        .expires(expires);
    if let Some(s) = cfg.remember_cookie_samesite {
        cookie = cookie.same_site(s.to_cookie());
    }
    crate::http::cookies::send(req, cookie.build());
}

/// Deletes the `remember_token` cookie.
pub(crate) fn clear_remember(req: &Request<'_>) {
    expire(req, REMEMBER_COOKIE);
}

/// Sends a cookie that deletes `name` (empty, `Max-Age=0`, expired), with the
/// attributes the cookie was set with, whether or not the request carried it.
pub(crate) fn expire(req: &Request<'_>, name: &str) {
    let cfg = SecurityState::of(req).map(|s| &s.config);
    let secure = cfg.is_some_and(|c| c.session_cookie_secure);
    let mut cookie = Cookie::build((name.to_string(), String::new()))
        .path("/")
        .http_only(true)
        .secure(secure)
        .max_age(rocket::time::Duration::ZERO)
        .expires(rocket::time::OffsetDateTime::UNIX_EPOCH);
    if let Some(s) = cfg.and_then(|c| c.session_cookie_samesite) {
        cookie = cookie.same_site(s.to_cookie());
    }
    crate::http::cookies::send(req, cookie.build());
}
