//! Where a reply may send the browser: Flask-Security's `next` validation
//! (open-redirect defence) and escaping for `Location`.

use rocket::request::Request;

use super::{FormErrors, FormInput, text};

/// Flask-Security's `validate_redirect_url`: relative targets, or absolute
/// ones on this request's host only.
pub(crate) fn redirect_allowed(req: &Request<'_>, target: &str) -> bool {
    if target.trim().is_empty() {
        return false;
    }
    let url = target;
    if url.starts_with("///") || url.replace('\\', "/").starts_with("///") {
        return false;
    }
    // Split like Python's urlsplit: leading C0/space stripped, tabs and newlines removed.
    let cleaned: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let (scheme, rest) = match cleaned.find(':') {
        Some(i)
            if i > 0
                && cleaned[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && cleaned[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (&cleaned[..i], &cleaned[i + 1..])
        }
        _ => ("", cleaned.as_str()),
    };
    let netloc = rest
        .strip_prefix("//")
        .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    if scheme.is_empty() && netloc.is_empty() {
        return true;
    }
    match req.host() {
        Some(h) => !netloc.is_empty() && netloc.eq_ignore_ascii_case(&h.to_string()),
        None => false,
    }
}

/// `next` from the form, else the query string; empty means absent.
pub(crate) fn next_param(
    form: &FormInput,
    req: &Request<'_>,
    errors: &mut FormErrors,
) -> Option<String> {
    text(form, "next", errors)
        .or_else(|| super::query_value(req, "next"))
        .filter(|n| !n.trim().is_empty())
}

/// A validated `next` made safe to put in `Location`: characters a browser
/// would reinterpret (backslashes, spaces, controls, non-ASCII) are
/// percent-encoded, so `\\evil.com` stays a relative path.
pub(crate) fn redirect_target(next: &str) -> String {
    let mut out = String::with_capacity(next.len());
    for b in next.bytes() {
        if b.is_ascii_graphic() && !b"\\\"<>^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
