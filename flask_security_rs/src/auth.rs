//! Who the caller is: session, remember cookie, auth token or HTTP basic;
//! logging users in and out; auth tokens; freshness.

use rocket::request::Request;
use serde_json::{Value, json};

use crate::datastore::{Lookup, User, UserField};
use crate::{SecurityState, csrf, session};

/// How a request was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `session` cookie (or remember cookie).
    Session,
    /// Auth token.
    Token,
    /// HTTP basic.
    Basic,
}

impl Mechanism {
    /// Flask-Security's name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Session => "session",
            Mechanism::Token => "token",
            Mechanism::Basic => "basic",
        }
    }
}

struct SessionUser(Option<User>);
struct TokenUser(Option<(User, f64)>);
struct BasicUser(Option<User>);

/// A token found in the request body by the fairing (JSON `auth_token`).
pub(crate) struct BodyFields {
    pub auth_token: Option<String>,
    pub csrf_token: Option<String>,
}

pub(crate) fn body_fields<'r>(req: &'r Request<'_>) -> &'r BodyFields {
    req.local_cache(|| BodyFields {
        auth_token: None,
        csrf_token: None,
    })
}

fn state<'r>(req: &'r Request<'_>) -> Option<&'r SecurityState> {
    req.rocket().state::<SecurityState>()
}

async fn load(state: &SecurityState, by: Lookup<'_>) -> Option<User> {
    match state.datastore.find_user(by).await {
        Ok(u) => u.filter(|u| u.active),
        Err(e) => {
            log::error!("loading user failed: {e}");
            None
        }
    }
}

/// The user of the session cookie (or of a valid remember cookie, which then
/// restores the session). Looked up once per request.
pub async fn session_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return SessionUser(None);
            };
            if let Some(uid) = session::get(req).user_id {
                let user = load(state, Lookup::Uniquifier(&uid)).await;
                if user.is_none() {
                    session::update(req, |s| {
                        s.user_id = None;
                        s.fs_paa = None;
                        s.fs_gexp = None;
                    });
                }
                return SessionUser(user);
            }
            if let Some(uid) = session::remember_uid(req, state) {
                let user = load(state, Lookup::Uniquifier(&uid)).await;
                match &user {
                    Some(u) => {
                        session::update(req, |s| s.user_id = Some(u.fs_uniquifier.clone()));
                        refresh_csrf_cookie(req, state);
                    }
                    None => session::clear_remember(req),
                }
                return SessionUser(user);
            }
            SessionUser(None)
        })
        .await;
    cached.0.as_ref()
}

fn presented_token(req: &Request<'_>, state: &SecurityState) -> Option<String> {
    if let Some(t) = &body_fields(req).auth_token {
        return Some(t.clone());
    }
    if let Some(t) = crate::reply::query_value(req, &state.config.token_authentication_key) {
        return Some(t);
    }
    req.headers()
        .get_one(&state.config.token_authentication_header)
        .map(String::from)
}

/// The uid and `fs_paa` of a valid auth token (v5 object, or legacy v4/v3 list).
pub fn parse_auth_token(state: &SecurityState, token: &str) -> Option<(String, f64)> {
    let max_age = if state.config.token_max_age > 0 {
        Some(state.config.token_max_age)
    } else {
        None
    };
    let data = state
        .serializer(&state.config.remember_salt)
        .loads_at(token, max_age, state.clock.now_secs())
        .ok()?;
    match data {
        Value::Object(m) => {
            let uid = m.get("uid")?.as_str()?.to_string();
            m.get("ver")?;
            let exp = m.get("exp")?.as_f64()?;
            if exp > 0.0 && exp < state.clock.now() {
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

/// The user of a valid auth token in the request, with the token's `fs_paa`.
pub async fn token_user<'r>(req: &'r Request<'_>) -> Option<&'r (User, f64)> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return TokenUser(None);
            };
            let Some(token) = presented_token(req, state) else {
                return TokenUser(None);
            };
            let Some((uid, paa)) = parse_auth_token(state, &token) else {
                return TokenUser(None);
            };
            TokenUser(
                load(state, Lookup::TokenUniquifier(&uid))
                    .await
                    .map(|u| (u, paa)),
            )
        })
        .await;
    cached.0.as_ref()
}

/// The user of valid HTTP basic credentials.
pub async fn basic_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    let cached = req
        .local_cache_async(async {
            let Some(state) = state(req) else {
                return BasicUser(None);
            };
            let Some((ident, password)) = basic_credentials(req) else {
                return BasicUser(None);
            };
            let Some(user) = find_by_identity(state, &ident).await else {
                state.dummy_verify().await;
                return BasicUser(None);
            };
            if !user.active {
                return BasicUser(None);
            }
            match state.verify_password(&user, &password).await {
                true => BasicUser(Some(user)),
                false => BasicUser(None),
            }
        })
        .await;
    cached.0.as_ref()
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
pub async fn find_by_identity(state: &SecurityState, ident: &str) -> Option<User> {
    let by_email = state
        .datastore
        .find_user(Lookup::Email(ident))
        .await
        .ok()
        .flatten();
    if by_email.is_some() || !state.config.username_enable {
        return by_email;
    }
    state
        .datastore
        .find_user(Lookup::Username(ident))
        .await
        .ok()
        .flatten()
}

/// The current user: the session's, else the token's (a session user wins over
/// a token of someone else, as in Flask-Security).
pub async fn current_user<'r>(req: &'r Request<'_>) -> Option<&'r User> {
    if let Some(u) = session_user(req).await {
        return Some(u);
    }
    token_user(req).await.map(|(u, _)| u)
}

/// Logs `user` in on this request's session: new `fs_paa`, optional remember
/// cookie, trackable columns.
pub async fn login_user(req: &Request<'_>, state: &SecurityState, user: &User, remember: bool) {
    let now = state.clock.now();
    session::update(req, |s| {
        s.user_id = Some(user.fs_uniquifier.clone());
        s.fs_paa = Some(now);
        s.fs_gexp = None;
    });
    if remember {
        session::set_remember(req.cookies(), state, &user.fs_uniquifier);
    }
    refresh_csrf_cookie(req, state);
    if state.config.trackable {
        let ip = req.client_ip().map(|ip| ip.to_string());
        let stamp = state.clock.naive_utc();
        let changes = vec![
            (
                UserField::LastLoginAt,
                sea_orm::Value::ChronoDateTime(user.current_login_at.or(Some(stamp))),
            ),
            (
                UserField::CurrentLoginAt,
                sea_orm::Value::ChronoDateTime(Some(stamp)),
            ),
            (
                UserField::LastLoginIp,
                sea_orm::Value::String(user.current_login_ip.clone().or(ip.clone())),
            ),
            (UserField::CurrentLoginIp, sea_orm::Value::String(ip)),
            (
                UserField::LoginCount,
                sea_orm::Value::BigInt(Some(user.login_count.unwrap_or(0) + 1)),
            ),
        ];
        if let Err(e) = state.datastore.update_user(user.id, changes).await {
            log::error!("updating login tracking failed: {e}");
        }
    }
}

/// Logs the caller out: session, remember cookie and CSRF cookie go.
/// Cookies are deleted only where the browser has them, as Flask does.
pub fn logout_user(req: &Request<'_>, state: &SecurityState) {
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
}

/// Sends a fresh CSRF cookie (after a login, as Flask-Security does).
fn refresh_csrf_cookie(req: &Request<'_>, state: &SecurityState) {
    if state.config.csrf_cookie_name.is_some() {
        let token = csrf::generate(req, state);
        csrf::set_cookie(req, state, &token);
    }
}

/// A new auth token for `user` (Flask-Security v5 format).
pub fn auth_token(state: &SecurityState, user: &User) -> String {
    let exp = state.token_expiry.as_ref().map(|f| f(user)).unwrap_or(0);
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

/// Flask-Security's freshness check (`check_and_update_authn_fresh`).
/// `within`/`grace` in seconds; `within < 0` means always fresh.
pub fn check_fresh(
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
    let sess = session::get(req);
    let paa = match via {
        Mechanism::Session => sess.fs_paa,
        Mechanism::Token if state.config.freshness_allow_auth_token => {
            token_paa.filter(|p| *p > 0.0)
        }
        _ => None,
    };
    let Some(paa) = paa else { return false };
    if via == Mechanism::Session && sess.fs_gexp.is_some_and(|g| now < g) {
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
