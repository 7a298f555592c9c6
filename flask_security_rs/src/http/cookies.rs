//! The cookies the library sets (session, remember, CSRF), sent as
//! `Set-Cookie` headers by the fairing when the response goes out.
//!
//! They bypass Rocket's cookie jar, which formats every cookie through
//! `Display` with percent-encoding on the way out: the library's own values
//! are URL-safe, so the common cookie is written directly. What the browser
//! gets is what the jar would have sent: the same defaults (`Path=/`,
//! `SameSite=Strict`, `Secure` under TLS when unset), the same attribute
//! order, and a cookie set twice in one request is sent once, as last set.
//! Unlike the jar's, these cookies are also sent with an error page (as Flask
//! saves the session with every response).

use std::fmt::Write as _;
use std::sync::Mutex;

use rocket::http::{Cookie, SameSite};
use rocket::{Request, Response};

/// The cookies this request sets: name, `Set-Cookie` value.
#[derive(Default)]
struct Outgoing(Mutex<Vec<(String, String)>>);

/// Sends `cookie` with the response (replacing one of the same name that
/// this request set before).
pub(crate) fn send(req: &Request<'_>, mut cookie: Cookie<'static>) {
    if cookie.path().is_none() {
        cookie.set_path("/");
    }
    if cookie.same_site().is_none() {
        cookie.set_same_site(SameSite::Strict);
    }
    if cookie.secure().is_none() && req.rocket().config().tls_enabled() {
        cookie.set_secure(true);
    }
    let header = set_cookie_value(&cookie);
    let out = req.local_cache(Outgoing::default);
    let mut list = match out.0.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    match list.iter_mut().find(|(n, _)| n == cookie.name()) {
        Some(slot) => slot.1 = header,
        None => list.push((cookie.name().to_string(), header)),
    }
}

/// Adds the `Set-Cookie` headers of what [`send`] queued to `res`.
pub(crate) fn apply(req: &Request<'_>, res: &mut Response<'_>) {
    let out = req.local_cache(Outgoing::default);
    let list = match out.0.lock() {
        Ok(mut g) => std::mem::take(&mut *g),
        Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
    };
    for (_, header) in list {
        res.adjoin_raw_header("Set-Cookie", header);
    }
}

/// The bytes sent as they are under percent-encoding (and needing no
/// quoting): letters, digits and `-._~`.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    t
};

/// Whether `s` is all [`PLAIN`] bytes (no early exit: a cookie value is
/// nearly always plain, and the branch-free loop is several times faster).
fn plain(s: &str) -> bool {
    s.bytes().fold(true, |ok, b| ok & PLAIN[usize::from(b)])
}

/// The `Set-Cookie` value of `cookie`: what the cookie crate's encoded
/// `Display` writes, written directly when nothing needs encoding or a date.
fn set_cookie_value(cookie: &Cookie<'_>) -> String {
    if cookie.expires_datetime().is_some() || !plain(cookie.name()) || !plain(cookie.value()) {
        return cookie.encoded().to_string();
    }
    let mut s = String::with_capacity(cookie.name().len() + cookie.value().len() + 64);
    s.push_str(cookie.name());
    s.push('=');
    s.push_str(cookie.value());
    if cookie.http_only() == Some(true) {
        s.push_str("; HttpOnly");
    }
    if let Some(same_site) = cookie.same_site() {
        s.push_str(match same_site {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        });
    }
    let partitioned = cookie.partitioned() == Some(true);
    if partitioned {
        s.push_str("; Partitioned");
    }
    if cookie.secure() == Some(true)
        || partitioned
        || cookie.secure().is_none() && cookie.same_site() == Some(SameSite::None)
    {
        s.push_str("; Secure");
    }
    if let Some(path) = cookie.path() {
        s.push_str("; Path=");
        s.push_str(path);
    }
    if let Some(domain) = cookie.domain() {
        s.push_str("; Domain=");
        s.push_str(domain);
    }
    if let Some(max_age) = cookie.max_age() {
        let _ = write!(s, "; Max-Age={}", max_age.whole_seconds());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocket::time::{Duration, OffsetDateTime};

    #[test]
    fn written_as_the_cookie_crate_writes_it() {
        let values = ["F3jaOMG_-1.x~", "a|b", "with space", ""];
        let sites = [
            None,
            Some(SameSite::Strict),
            Some(SameSite::Lax),
            Some(SameSite::None),
        ];
        for value in values {
            for site in sites {
                for flags in 0..32u8 {
                    let mut c = Cookie::new("session", value.to_string());
                    if let Some(s) = site {
                        c.set_same_site(s);
                    }
                    if flags & 1 != 0 {
                        c.set_http_only(true);
                    }
                    if flags & 2 != 0 {
                        c.set_secure(flags & 16 == 0);
                    }
                    if flags & 4 != 0 {
                        c.set_path("/");
                        c.set_domain("example.com");
                    }
                    if flags & 8 != 0 {
                        c.set_max_age(Duration::ZERO);
                    }
                    if flags & 16 != 0 {
                        c.set_partitioned(true);
                    }
                    assert_eq!(set_cookie_value(&c), c.encoded().to_string(), "{c:?}");
                    c.set_expires(OffsetDateTime::UNIX_EPOCH);
                    assert_eq!(set_cookie_value(&c), c.encoded().to_string(), "{c:?}");
                }
            }
        }
    }
}
