//! 400/401/403/429 catchers answering the way Flask-Security's default handlers do.

use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder};
use rocket::{Catcher, catch, catchers};
use serde_json::Value;

use super::{Reply, want_json};
use crate::guards::{Refusal, refusal};
use crate::messages::Msg;
use crate::state::SecurityState;

/// The library's catchers; the fairing registers them at `/` unless told not to.
pub fn catchers() -> Vec<Catcher> {
    catchers![
        bad_request,
        unauthorized,
        forbidden,
        too_large,
        unprocessable,
        too_many,
        unavailable
    ]
}

/// A reply plus an optional `WWW-Authenticate` challenge.
struct Challenge(Reply, Option<String>);

impl<'r> Responder<'r, 'static> for Challenge {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let mut res = self.0.respond_to(req)?;
        if let Some(realm) = self.1 {
            res.set_header(Header::new(
                "WWW-Authenticate",
                format!("Basic realm=\"{realm}\""),
            ));
        }
        Ok(res)
    }
}

/// Percent-encodes a path-and-query for a `next` parameter, keeping `/` and `?`.
fn quote_next(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/?:@!$'()*,;".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The request's path (decoded) and query (as sent, but with escaped
/// non-ASCII characters decoded), like werkzeug's `request.full_path`.
fn full_path(req: &Request<'_>) -> String {
    let path = req.uri().path().percent_decode_lossy().into_owned();
    match req.uri().query() {
        Some(q) => format!("{path}?{}", iri_query(q.as_str())),
        None => path,
    }
}

/// Decodes `%XX` escapes except those whose character would change the
/// query's meaning (`%`, `#`, `&`, `=`, `+`, space) or is a control character,
/// as werkzeug does for `request.full_path`.
fn iri_query(raw: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let v = h * 16 + l;
            if v >= 0x80 || (v > 0x20 && v < 0x7f && !b"%#&=+".contains(&v)) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn login_redirect(req: &Request<'_>, state: Option<&SecurityState>) -> Reply {
    let login = state
        .map(|s| s.config.url("/login"))
        .unwrap_or_else(|| "/login".into());
    Reply::redirect(format!("{login}?next={}", quote_next(&full_path(req))))
}

#[catch(401)]
fn unauthorized(req: &Request<'_>) -> Challenge {
    let state = SecurityState::of(req);
    match refusal(req) {
        Some(Refusal::Reauthenticate) => {
            if want_json(req) {
                let mut body = serde_json::Map::new();
                if let Some(s) = state {
                    body.extend(s.hooks.reauth_options.clone());
                }
                body.insert("reauth_required".into(), Value::Bool(true));
                body.insert(
                    "unified_signin_enabled".into(),
                    Value::Bool(state.is_some_and(|s| s.hooks.unified_signin)),
                );
                let reply = Reply::error_with(
                    Status::Unauthorized,
                    Msg::ReauthenticationRequired.into(),
                    body,
                );
                return Challenge(reply, None);
            }
            let path = if state.is_some_and(|s| s.hooks.unified_signin && s.config.freshness >= 0) {
                "/us-verify"
            } else {
                "/verify"
            };
            let verify = state
                .map(|s| s.config.url(path))
                .unwrap_or_else(|| path.into());
            Challenge(
                Reply::redirect(format!("{verify}?next={}", quote_next(&full_path(req)))),
                None,
            )
        }
        other => {
            if let Some(h) = state.and_then(|s| s.unauthn_handler.clone()) {
                return Challenge(h(req), None);
            }
            let basic = matches!(other, Some(Refusal::Unauthenticated { basic: true }));
            let realm = if basic {
                state.map(|s| s.config.default_http_auth_realm.clone())
            } else {
                None
            };
            if want_json(req) {
                return Challenge(
                    Reply::error(Status::Unauthorized, Msg::Unauthenticated),
                    realm,
                );
            }
            if realm.is_some() {
                return Challenge(
                    Reply::html(Status::Unauthorized, text(state, Msg::Unauthenticated)),
                    realm,
                );
            }
            Challenge(login_redirect(req, state), None)
        }
    }
}

/// The text of `msg` in the configured catalogue.
fn text(state: Option<&SecurityState>, msg: Msg) -> String {
    match state {
        Some(s) => s.messages.text(msg).to_string(),
        None => msg.default_text().to_string(),
    }
}

#[catch(403)]
fn forbidden(req: &Request<'_>) -> Reply {
    let state = SecurityState::of(req);
    if let Some(h) = state.and_then(|s| s.unauthz_handler.clone()) {
        return h(req);
    }
    if want_json(req) {
        return Reply::error(Status::Forbidden, Msg::Unauthorized);
    }
    Reply::html(
        Status::Forbidden,
        format!(
            "<h1>Forbidden</h1><p>{}</p>",
            text(state, Msg::Unauthorized)
        ),
    )
}

#[catch(400)]
fn bad_request(req: &Request<'_>) -> Reply {
    let state = SecurityState::of(req);
    let msg = match refusal(req) {
        Some(Refusal::Csrf(m)) => m,
        Some(Refusal::AnonymousRequired) => {
            if !want_json(req) {
                let to = state
                    .map(|s| s.config.post_login_view.clone())
                    .unwrap_or_else(|| "/".into());
                return Reply::redirect(to);
            }
            Msg::AnonymousUserRequired
        }
        _ => Msg::ApiError,
    };
    if want_json(req) {
        Reply::error(Status::BadRequest, msg)
    } else {
        Reply::html(
            Status::BadRequest,
            format!("<h1>Bad Request</h1><p>{}</p>", text(state, msg)),
        )
    }
}

fn input_error(req: &Request<'_>, status: Status) -> Reply {
    if want_json(req) {
        Reply::error(status, Msg::ApiError)
    } else {
        Reply::html(
            status,
            format!(
                "<h1>{}</h1><p>{}</p>",
                status.reason_lossy(),
                text(SecurityState::of(req), Msg::ApiError)
            ),
        )
    }
}

#[catch(413)]
fn too_large(req: &Request<'_>) -> Reply {
    input_error(req, Status::PayloadTooLarge)
}

#[catch(422)]
fn unprocessable(req: &Request<'_>) -> Reply {
    input_error(req, Status::UnprocessableEntity)
}

/// 429: HTTP basic credentials of a throttled account or address.
#[catch(429)]
fn too_many(req: &Request<'_>) -> Reply {
    match refusal(req) {
        Some(Refusal::Throttled {
            retry_after,
            message,
        }) => Reply::throttled(retry_after, message, None),
        _ if want_json(req) => Reply::error(
            Status::TooManyRequests,
            crate::messages::Message::text("Too Many Requests", crate::messages::Category::Error),
        ),
        _ => Reply::html(Status::TooManyRequests, "<h1>Too Many Requests</h1>"),
    }
}

#[catch(503)]
fn unavailable(req: &Request<'_>) -> Reply {
    let wait =
        SecurityState::of(req).map_or(std::time::Duration::from_secs(1), |s| s.passwords.wait());
    Reply::busy(wait)
}
