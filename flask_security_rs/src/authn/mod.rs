//! Authentication mechanisms: who the caller is, by session cookie (or
//! remember cookie), auth token or HTTP basic, each looked up at most once
//! per request; the session and CSRF cookies; auth tokens; freshness.
//!
//! Mechanisms only *recognise* a caller. Signing in (issuing a session or a
//! token) happens in the login pipeline ([`crate::login`]).

pub(crate) mod csrf;
pub(crate) mod session;
pub(crate) mod token;

use std::sync::Arc;

use rocket::request::Request;

use crate::config::Mechanism;
use crate::datastore::SessionStore;
use crate::datastore::{Lookup, User};
use crate::login::{self, Attempt, AuthnMethod};
use crate::state::SecurityState;

pub(crate) use token::{auth_token, parse_auth_token};

/// What decoding credentials gave, kept across requests while the identity
/// cache is on: verified auth tokens, and decrypted session cookies, each by
/// its exact text (the same text always decodes the same way). Only what
/// verified is kept; ages and expiry are checked on every use.
pub(crate) struct Decoded {
    pub tokens: token::VerifiedTokens,
    pub sessions: crate::datastore::cache::Cache<String, Arc<session::Opened>>,
}

impl Decoded {
    /// The caches `config` asks for (none with the identity cache off).
    pub(crate) fn new(config: &crate::config::CacheConfig) -> Option<Decoded> {
        if !config.identity_cache {
            return None;
        }
        let ttl = std::time::Duration::from_secs_f64(config.identity_cache_max_staleness);
        let capacity = config.identity_cache_capacity;
        Some(Decoded {
            tokens: crate::datastore::cache::bounded(capacity, ttl),
            sessions: crate::datastore::cache::bounded(capacity, ttl),
        })
    }
}

/// A backend (the database) failed while recognising the caller: the answer
/// is a generic 503, never a 401 that would make a client drop its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unavailable;

struct SessionUser(Result<Option<Arc<User>>, Unavailable>);
struct TokenUser(Result<Option<(Arc<User>, f64)>, Unavailable>);
/// The user of HTTP basic credentials; `Err` when they could not be checked
/// (hashing too busy, the database failed, or the attempt throttled).
struct BasicUser(Result<Option<User>, crate::guards::Refusal>);

/// The first bytes of a JSON or form body, kept by the fairing (Rocket lets
/// it see at most 512) and read only when a guard asks for a token in them.
#[derive(Default)]
pub(crate) struct BodyPeek {
    /// Whether the body is JSON (else a form).
    pub json: bool,
    pub bytes: Vec<u8>,
}

/// What the start of the body carries: a JSON `auth_token`, a form's
/// `csrf_token` (tokens come from a JSON body, the query or a header; forms
/// carry CSRF only).
pub(crate) struct BodyFields {
    pub auth_token: Option<String>,
    pub csrf_token: Option<String>,
}

pub(crate) fn body_fields<'r>(req: &'r Request<'_>) -> &'r BodyFields {
    req.local_cache(|| {
        let peek = req.local_cache(BodyPeek::default);
        let mut fields = BodyFields {
            auth_token: None,
            csrf_token: None,
        };
        if peek.bytes.is_empty() {
            return fields;
        }
        if peek.json {
            if let Ok(serde_json::Value::Object(m)) =
                serde_json::from_slice::<serde_json::Value>(&peek.bytes)
            {
                fields.auth_token = m
                    .get("auth_token")
                    .and_then(|v| v.as_str())
                    .map(String::from);
            }
        } else {
            fields.csrf_token = url::form_urlencoded::parse(&peek.bytes)
                .find(|(k, _)| k == "csrf_token")
                .map(|(_, v)| v.into_owned());
        }
        fields
    })
}

fn state<'r>(req: &'r Request<'_>) -> Option<&'r SecurityState> {
    SecurityState::of(req)
}

fn unavailable(what: &str, e: &dyn std::fmt::Display) -> Unavailable {
    log::error!("{what} failed: {e}");
    Unavailable
}

async fn load(state: &SecurityState, by: Lookup<'_>) -> Result<Option<Arc<User>>, Unavailable> {
    active(state.identities.user(by).await)
}

/// The user a lookup found, when active.
fn active(
    found: Result<Option<Arc<User>>, crate::datastore::DatastoreError>,
) -> Result<Option<Arc<User>>, Unavailable> {
    match found {
        Ok(u) => Ok(u.filter(|u| u.active)),
        Err(e) => Err(unavailable("loading the user", &e)),
    }
}

/// How often a live session's record is marked used (and its end moved).
const TOUCH_EVERY: i64 = 60;

/// The active user of the live server-side record `sid` names, when the
/// record is `uid`'s; the record is marked used at most once a minute (which
/// slides its end, and the cookie's: the session cookie is sent again).
/// `None` when it was revoked or has ended.
async fn live_session(
    req: &Request<'_>,
    state: &SecurityState,
    store: &dyn SessionStore,
    (uid, sid): (&str, &str),
    by_remember: bool,
) -> Result<Option<Arc<User>>, Unavailable> {
    let id = session::record_of(req, sid);
    let now = state.clock.now_secs();
    let memo = (!by_remember)
        .then(|| session::memo(req, (uid, sid)))
        .flatten();
    let (record, user) = state
        .identities
        .session_user(&id, uid, memo)
        .await
        .map_err(|e| unavailable("loading the session", &e))?;
    let (Some(record), Some(user)) = (record, user.filter(|u| u.active)) else {
        return Ok(None);
    };
    if !record.is_live(now, by_remember) {
        return Ok(None);
    }
    if now - record.last_seen_at >= TOUCH_EVERY || by_remember {
        let end = now + state.config.permanent_session_lifetime;
        if let Err(e) = store.touch_session(&id, now, end).await {
            return Err(unavailable("updating the session", &e));
        }
        if !by_remember {
            session::refresh(req);
        }
    }
    Ok(Some(user))
}

/// Whether the request has (or this request set) a session or remember
/// cookie: without one there is no session to look up.
fn may_have_session(req: &Request<'_>) -> bool {
    // (`get_pending` would decrypt the cookie: the session's own copy says
    // whether this request signed someone in.)
    let jar = req.cookies();
    jar.get(session::SESSION_COOKIE).is_some()
        || jar.get(session::REMEMBER_COOKIE).is_some()
        || session::signed_in(req)
}

/// The user of the session cookie (or of a valid remember cookie, which then
/// restores the session). With server-side sessions, the cookie's record must
/// still exist (logout and revocation delete it). Looked up once per request.
pub(crate) async fn session_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    session_lookup(req)
        .await
        .as_ref()
        .ok()
        .and_then(Option::as_deref)
}

async fn session_lookup<'r>(req: &'r Request<'_>) -> &'r Result<Option<Arc<User>>, Unavailable> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return SessionUser(Ok(None));
            };
            SessionUser(find_session_user(req, state).await)
        })
        .await;
    &cached.0
}

async fn find_session_user(
    req: &Request<'_>,
    state: &SecurityState,
) -> Result<Option<Arc<User>>, Unavailable> {
    let (uid, sid) = session::with(req, |s| (s.user_id.clone(), s.sid.clone()));
    if let Some(uid) = uid {
        let user = match (&state.sessions, &sid) {
            (None, _) => load(state, Lookup::Uniquifier(&uid)).await?,
            (Some(store), Some(sid)) => {
                live_session(req, state, &**store, (&uid, sid), false).await?
            }
            // A cookie from before server-side sessions: void.
            (Some(_), None) => None,
        };
        if user.is_none() {
            end_session(req);
        }
        return Ok(user);
    }
    let Some((uid, sid)) = session::remember_cookie(req, state) else {
        return Ok(None);
    };
    let user = match (&state.sessions, &sid) {
        (None, _) => load(state, Lookup::Uniquifier(&uid)).await?,
        (Some(store), Some(sid)) => live_session(req, state, &**store, (&uid, sid), true).await?,
        // Without a session id (logged out, revoked, or a cookie without
        // one) the remember cookie is void.
        (Some(_), None) => None,
    };
    match &user {
        Some(u) => {
            session::update(req, |s| {
                s.user_id = Some(u.fs_uniquifier.clone());
                s.sid = sid.clone();
            });
            csrf::refresh_cookie(req, state);
        }
        None => session::clear_remember(req),
    }
    Ok(user)
}

/// Drops the signed-in part of the cookie session.
fn end_session(req: &Request<'_>) {
    session::update(req, |s| {
        s.user_id = None;
        s.sid = None;
        s.fs_paa = None;
        s.fs_gexp = None;
    });
}

/// `auth_token` of a JSON body read in full by a data guard (the fairing
/// sees only the first 512 bytes Rocket lets it peek at).
pub(crate) struct FullBodyToken(pub Option<String>);

/// Records the `auth_token` of a JSON body read in full, before the token is
/// looked up.
pub(crate) fn note_body_token(
    req: &Request<'_>,
    body: &serde_json::Map<String, serde_json::Value>,
) {
    let token = body
        .get("auth_token")
        .and_then(|v| v.as_str())
        .map(String::from);
    req.local_cache(|| FullBodyToken(token));
}

fn presented_token(req: &Request<'_>, state: &SecurityState) -> Option<String> {
    // (Only a typed body was peeked at.)
    if req.content_type().is_some()
        && let Some(t) = &body_fields(req).auth_token
    {
        return Some(t.clone());
    }
    if let Some(t) = &req.local_cache(|| FullBodyToken(None)).0 {
        return Some(t.clone());
    }
    if let Some(t) = crate::http::query_value(req, &state.config.token_authentication_key) {
        return Some(t);
    }
    req.headers()
        .get_one(&state.config.token_authentication_header)
        .map(String::from)
}

/// The user of a valid auth token in the request, with the token's `fs_paa`.
pub(crate) async fn token_user<'r>(req: &'r Request<'_>) -> Option<(&'r User, f64)> {
    token_lookup(req)
        .await
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|(u, paa)| (&**u, *paa))
}

async fn token_lookup<'r>(
    req: &'r Request<'_>,
) -> &'r Result<Option<(Arc<User>, f64)>, Unavailable> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return TokenUser(Ok(None));
            };
            let Some(token) = presented_token(req, state) else {
                return TokenUser(Ok(None));
            };
            let Some(verified) = parse_auth_token(state, &token) else {
                return TokenUser(Ok(None));
            };
            let by = Lookup::TokenUniquifier(&verified.claims.uid);
            let user = active(state.identities.user_memo(by, &verified.user).await);
            TokenUser(user.map(|u| u.map(|u| (u, verified.claims.paa))))
        })
        .await;
    &cached.0
}

/// Whether recognising the caller by `mechanisms` (bits of
/// [`Mechanism::bit`]) failed on our side, rather than the caller having no
/// valid credentials.
pub(crate) async fn backend_failed(req: &Request<'_>, mechanisms: u8) -> bool {
    (mechanisms & Mechanism::Session.bit() != 0 && session_lookup(req).await.is_err())
        || (mechanisms & Mechanism::Token.bit() != 0 && token_lookup(req).await.is_err())
}

/// The user of valid HTTP basic credentials.
pub(crate) async fn basic_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    basic(req).await.as_ref().ok().and_then(Option::as_ref)
}

/// Why HTTP basic credentials could not be checked: no hashing slot (503),
/// or throttled (429).
pub(crate) async fn basic_refusal(req: &Request<'_>) -> Option<crate::guards::Refusal> {
    basic(req).await.as_ref().err().cloned()
}

async fn basic<'r>(req: &'r Request<'_>) -> &'r Result<Option<User>, crate::guards::Refusal> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return BasicUser(Ok(None));
            };
            let Some((ident, password)) = basic_credentials(req) else {
                return BasicUser(Ok(None));
            };
            let Ok(user) = find_by_identity(state, &ident).await else {
                return BasicUser(Err(crate::guards::Refusal::Busy));
            };
            let attempt = Attempt::new(req, AuthnMethod::Basic).identity(&ident);
            match login::check_password(state, &attempt, user.as_ref(), &password).await {
                Ok(()) => BasicUser(Ok(user.filter(|u| u.active))),
                Err(login::CredentialError::Busy) => BasicUser(Err(crate::guards::Refusal::Busy)),
                Err(login::CredentialError::Throttled(retry_after, message)) => {
                    BasicUser(Err(crate::guards::Refusal::Throttled {
                        retry_after,
                        message,
                    }))
                }
                Err(_) => BasicUser(Ok(None)),
            }
        })
        .await;
    &cached.0
}

fn basic_credentials(req: &Request<'_>) -> Option<(String, String)> {
    use base64::Engine;
    let h = req.headers().get_one("Authorization")?;
    let (scheme, rest) = h.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Finds a user by any identity attribute (email, then username when enabled).
pub(crate) async fn find_by_identity(
    state: &SecurityState,
    ident: &str,
) -> Result<Option<User>, Unavailable> {
    let by_email = state
        .datastore
        .find_user(Lookup::Email(ident))
        .await
        .map_err(|e| unavailable("identity lookup", &e))?;
    if by_email.is_some() || !state.config.username_enable {
        return Ok(by_email);
    }
    state
        .datastore
        .find_user(Lookup::Username(ident))
        .await
        .map_err(|e| unavailable("identity lookup", &e))
}

/// The current user: the session's, else the token's (a session user wins over
/// a token of someone else, as in Flask-Security).
pub(crate) async fn current_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    current_shared(req).await.map(|u| &**u)
}

/// [`current_user`], shared (no copy of the user).
pub(crate) async fn current_shared<'r>(req: &'r Request<'_>) -> Option<&'r Arc<User>> {
    if may_have_session(req)
        && let Ok(Some(u)) = session_lookup(req).await
    {
        return Some(u);
    }
    match token_lookup(req).await {
        Ok(Some((u, _))) => Some(u),
        _ => None,
    }
}

/// Logs the caller out: the server-side session record (so copies of the
/// cookies stop working too), then the session, remember cookie and CSRF
/// cookie. Cookies are deleted only where the browser has them, as Flask
/// does. `Err` when the record could not be deleted (the cookies still go).
pub(crate) async fn logout_user(
    req: &Request<'_>,
    state: &SecurityState,
) -> Result<(), crate::datastore::DatastoreError> {
    let revoked = session::revoke(req, state).await;
    let jar = req.cookies();
    let had_session = jar.get(session::SESSION_COOKIE).is_some();
    let had_remember = jar.get(session::REMEMBER_COOKIE).is_some();
    session::clear(req);
    if had_session {
        session::expire(req, session::SESSION_COOKIE);
        csrf::clear_cookie(req, state);
    }
    if had_remember {
        session::clear_remember(req);
    }
    revoked
}

/// Flask-Security's freshness check (`check_and_update_authn_fresh`).
/// `within`/`grace` in seconds; `within < 0` means always fresh.
pub(crate) fn check_fresh(
    req: &Request<'_>,
    state: &SecurityState,
    within: i64,
    grace: i64,
    via: Mechanism,
    token_paa: Option<f64>,
) -> bool {
    if via == Mechanism::Basic || within < 0 {
        return true;
    }
    let now = state.clock.now();
    let (fs_paa, fs_gexp) = session::with(req, |s| (s.fs_paa, s.fs_gexp));
    let paa = match via {
        Mechanism::Session => fs_paa,
        Mechanism::Token if state.config.freshness_allow_auth_token => {
            token_paa.filter(|p| *p > 0.0)
        }
        _ => None,
    };
    let Some(paa) = paa else { return false };
    if via == Mechanism::Session && fs_gexp.is_some_and(|g| now < g) {
        session::update(req, |s| s.fs_gexp = Some(now + grace as f64));
        return true;
    }
    let age = now - paa;
    if -(within as f64) < age && age < within as f64 {
        if via == Mechanism::Session {
            session::update(req, |s| s.fs_gexp = Some(now + grace as f64));
        }
        return true;
    }
    false
}

/// Marks the session freshly authenticated (after `/verify`).
pub(crate) fn reauthenticated(req: &Request<'_>, state: &SecurityState) {
    let now = state.clock.now();
    session::update(req, |s| {
        if s.user_id.is_some() {
            s.fs_paa = Some(now);
            s.fs_gexp = None;
        }
    });
}
