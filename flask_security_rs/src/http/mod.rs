//! The HTTP kernel: content negotiation, forms, replies in Flask-Security's
//! wire format, templates, catchers and the per-request context handlers use.

pub(crate) mod catchers;
pub(crate) mod cookies;
mod ctx;
mod form;
mod methods;
pub(crate) mod redirect;
mod reply;
pub(crate) mod templates;

use rocket::request::Request;

pub use catchers::catchers;
pub(crate) use ctx::Ctx;
pub(crate) use form::{BadBody, FormErrors, FormInput};
pub(crate) use form::{code_text, password_pair, text};
pub(crate) use methods::method_routes;
pub use reply::Reply;
pub(crate) use reply::{Page, Param};

/// Whether the caller wants JSON back: a JSON body, or an `Accept` header
/// whose highest-quality entry is `application/json` (`*/*` counts as HTML).
pub fn want_json(req: &Request<'_>) -> bool {
    if is_json_body(req) {
        return true;
    }
    let Some(accept) = req.headers().get_one("Accept") else {
        return false;
    };
    let mut best: Option<(f32, &str)> = None;
    for part in accept.split(',') {
        let mut bits = part.split(';');
        let media = bits.next().unwrap_or("").trim();
        if media.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in bits {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, media));
        }
    }
    best.is_some_and(|(q, m)| q > 0.0 && m.eq_ignore_ascii_case("application/json"))
}

/// Whether the request body is JSON (`application/json` or `*/*+json`).
pub(crate) fn is_json_body(req: &Request<'_>) -> bool {
    req.content_type()
        .is_some_and(|ct| ct.is_json() || ct.sub().as_str().ends_with("+json"))
}

/// Whether the query string has `key` (any value, or none).
pub(crate) fn query_has(req: &Request<'_>, key: &str) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.segments().any(|(k, _)| k == key))
}

/// The first value of `key` in the query string, decoded.
pub(crate) fn query_value(req: &Request<'_>, key: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.segments()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}
