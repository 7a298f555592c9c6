//! Bounded property tests ("fuzzing") of the test app over HTTP: arbitrary
//! and tampered credentials (auth tokens in header, query and body;
//! `session` and `remember_token` cookies; HTTP basic), CSRF headers,
//! JSON and urlencoded bodies for every form, link tokens and `next`
//! targets.
//!
//! Every reply must be below 500; a JSON reply is Flask-Security's envelope
//! (`{"meta": {"code": status}, "response": {...}}`, errors as `errors` and
//! `field_errors`); tampered credentials never authenticate. One app (and
//! one untracked client, so no case leaks cookies into the next) per
//! property; proptest's runner is driven by hand so that each case can
//! await its round trips, and a failing input is shrunk before it is
//! reported.

use std::fmt::Debug;
use std::future::Future;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use fs_tests::SmtpSink;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use rocket::http::uri::{Authority, Host};
use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::{Client, LocalRequest, LocalResponse};
use serde_json::{Value, json};

use crate::common::*;

// ---------------------------------------------------------------- harness

/// Fails the case with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Runs the async property `test` on `cases` inputs of `strategy`. A
/// failing input is shrunk (at most 64 more runs) and reported.
async fn check<S, F, Fut>(name: &str, cases: u32, strategy: S, mut test: F)
where
    S: Strategy,
    S::Value: Debug,
    F: FnMut(S::Value) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    for _ in 0..cases {
        let mut tree = strategy.new_tree(&mut runner).expect("a strategy value");
        let Err(first) = test(tree.current()).await else {
            continue;
        };
        let mut failure = (format!("{:#?}", tree.current()), first);
        if tree.simplify() {
            for _ in 0..64 {
                match test(tree.current()).await {
                    Err(e) => {
                        failure = (format!("{:#?}", tree.current()), e);
                        if !tree.simplify() {
                            break;
                        }
                    }
                    Ok(()) if !tree.complicate() => break,
                    Ok(()) => {}
                }
            }
        }
        panic!(
            "{name}: {}\nminimal failing input: {}",
            failure.1, failure.0
        );
    }
}

/// The test app behind an untracked client (cookies are only what a case
/// sends), with its mail sink.
struct Fuzz {
    client: Client,
    sink: SmtpSink,
}

async fn fuzz_app() -> Fuzz {
    let s = setup().await;
    let client = Client::untracked(rocket_for(s.opts).await)
        .await
        .expect("valid rocket");
    Fuzz {
        client,
        sink: s.sink,
    }
}

/// What a real sign-in hands out.
struct Credentials {
    token: String,
    session: String,
    remember: String,
    csrf: String,
}

impl Fuzz {
    /// Registers and confirms a user of its own, so that no case can change
    /// a seeded user (with PostgreSQL, the tests share one database).
    async fn fresh_user(&self) -> (String, String) {
        // A password no fuzzed form carries: /change must not succeed.
        let (email, password) = (unique_email(), "fz-Pass-4417".to_string());
        let body = json!({"email": email, "password": password, "password_confirm": password});
        let r = self
            .client
            .post("/register")
            .header(ContentType::JSON)
            .body(body.to_string())
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Ok);
        let mail = self
            .sink
            .wait_for(&email, "Welcome", Duration::from_secs(10))
            .await
            .expect("welcome mail");
        follow_confirmation(&self.client, &mail).await;
        (email, password)
    }

    /// Signs a fresh user in (remember me, auth token) and checks each
    /// credential works untouched: the controls of the tampering properties.
    async fn sign_in(&self) -> Credentials {
        let (email, password) = self.fresh_user().await;
        self.sign_in_as(&email, &password).await
    }

    async fn sign_in_as(&self, email: &str, password: &str) -> Credentials {
        let resp = self
            .client
            .post("/login?include_auth_token")
            .header(ContentType::JSON)
            .body(json!({"email": email, "password": password, "remember": true}).to_string())
            .dispatch()
            .await;
        let cookie = |name: &str| {
            resp.cookies()
                .get(name)
                .map(|c| c.value().to_string())
                .unwrap_or_else(|| panic!("no {name} cookie"))
        };
        let (session, remember) = (cookie("session"), cookie("remember_token"));
        let (status, body) = json_of(resp).await;
        assert_eq!(status, Status::Ok, "{body}");
        let creds = Credentials {
            token: body["user"]["authentication_token"]
                .as_str()
                .expect("token")
                .into(),
            session,
            remember,
            csrf: body["csrf_token"].as_str().expect("csrf token").into(),
        };
        assert_eq!(self.token_status(&creds.token).await, Status::Ok);
        assert_eq!(
            self.cookie_status("session", &creds.session).await,
            Status::Ok
        );
        assert_eq!(
            self.cookie_status("remember_token", &creds.remember).await,
            Status::Ok
        );
        creds
    }

    async fn token_status(&self, token: &str) -> Status {
        let r = self
            .client
            .get("/api/protected")
            .header(Header::new("X-Auth-Token", token.to_string()))
            .dispatch()
            .await;
        r.status()
    }

    async fn cookie_status(&self, name: &str, value: &str) -> Status {
        let r = self
            .client
            .get("/api/data")
            .cookie(Cookie::new(name.to_string(), value.to_string()))
            .dispatch()
            .await;
        r.status()
    }
}

/// A request as a server on `localhost` sees it (the local client takes the
/// host apart from the headers).
fn on_localhost(mut req: LocalRequest<'_>) -> LocalRequest<'_> {
    let authority = Authority::parse("localhost").expect("authority");
    req.inner_mut().set_host(Host::new(authority));
    req.header(Header::new("Host", "localhost"))
}

/// A reply, read.
struct Answer {
    status: Status,
    content_type: String,
    location: Option<String>,
    body: String,
}

async fn answer(resp: LocalResponse<'_>) -> Answer {
    let status = resp.status();
    let content_type = resp
        .content_type()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let location = resp.headers().get_one("Location").map(String::from);
    let body = resp.into_string().await.unwrap_or_default();
    Answer {
        status,
        content_type,
        location,
        body,
    }
}

fn is_string_list(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string))
}

impl Answer {
    /// Never a server error.
    fn not_5xx(&self, what: &str) -> Result<(), String> {
        ensure!(
            self.status.code < 500,
            "{what}: {} {}",
            self.status,
            self.body
        );
        Ok(())
    }

    /// Not 5xx, and Flask-Security's JSON envelope: `meta.code` is the
    /// status; an error has a non-empty `errors` list of strings, and its
    /// `field_errors`, when there are any, are exactly those errors by field.
    fn envelope(&self, what: &str) -> Result<Value, String> {
        self.not_5xx(what)?;
        ensure!(
            self.content_type == "application/json",
            "{what}: {} with {:?}: {}",
            self.status,
            self.content_type,
            self.body
        );
        let v: Value = serde_json::from_str(&self.body)
            .map_err(|e| format!("{what}: not JSON ({e}): {}", self.body))?;
        ensure!(
            v["meta"]["code"] == json!(self.status.code),
            "{what}: meta.code: {v}"
        );
        let response = &v["response"];
        ensure!(response.is_object(), "{what}: response: {v}");
        if self.status.class() != rocket::http::StatusClass::Success {
            ensure!(is_string_list(&response["errors"]), "{what}: errors: {v}");
            if let Some(fields) = response.get("field_errors") {
                let fields = fields
                    .as_object()
                    .ok_or_else(|| format!("{what}: field_errors: {v}"))?;
                ensure!(
                    fields.values().all(is_string_list),
                    "{what}: field_errors: {v}"
                );
                let flat: Vec<&Value> = fields
                    .values()
                    .flat_map(|m| m.as_array().into_iter().flatten())
                    .collect();
                let errors: Vec<&Value> = response["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .collect();
                ensure!(flat == errors, "{what}: errors vs field_errors: {v}");
            }
        }
        Ok(response.clone())
    }

    /// A 401 JSON refusal.
    fn unauthenticated(&self, what: &str) -> Result<(), String> {
        let r = self.envelope(what)?;
        ensure!(
            self.status == Status::Unauthorized
                && r == json!({"errors": ["You must sign in to view this resource."]}),
            "{what}: expected 401, got {} {r}",
            self.status
        );
        Ok(())
    }
}

// ------------------------------------------------------------- strategies

#[path = "../fuzz_strategies.rs"]
mod strategies;
use strategies::{any_text, edits, json_value, mutate, redirect_target, token_text};

/// A credential to present: noise, or an edited copy of the real one.
fn tampered(real: &str) -> impl Strategy<Value = String> + use<> {
    let real = real.to_string();
    prop_oneof![
        1 => any_text(120),
        1 => token_text(160),
        4 => edits().prop_map(move |e| mutate(&real, &e)),
    ]
}

/// Whether `b` is the itsdangerous token `a` up to the encoding of its
/// signature (padding, unused trailing bits), which Python's decoder and
/// ours ignore alike.
fn same_signed_token(a: &str, b: &str) -> bool {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    match (a.rsplit_once('.'), b.rsplit_once('.')) {
        (Some((va, sa)), Some((vb, sb))) => {
            va == vb && matches!((LENIENT.decode(sa), LENIENT.decode(sb)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}

/// Percent-encodes everything but unreserved characters (a path segment or
/// a query value that decodes back to `s`).
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Form values: spellings forms treat specially, emails, anything.
fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => prop::sample::select(vec![
            "", " ", "false", "off", "on", "y", "true", "0", "null", "user", "admin",
            USER.0, ADMIN.0, "disabled@example.com", "USER@EXAMPLE.COM", "user123", "s3cret-pass",
            "not-an-email", "a@b", "@example.com", "x@localhost", "/", "//evil.example",
            "https://evil.example/", "\u{0}", "\u{fb01}ne", "\u{3000}",
        ])
        .prop_map(String::from),
        1 => "fz-[a-z0-9]{1,12}@example\\.com",
        2 => any_text(24),
    ]
}

/// Fields of the library's forms.
const FIELDS: &[&str] = &[
    "email",
    "password",
    "password_confirm",
    "new_password",
    "new_password_confirm",
    "username",
    "remember",
    "next",
    "csrf_token",
    "identity",
    "",
];

/// A form field's name: a real one mostly.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
        1 => any_text(8),
    ]
}

/// JSON values of the right and the wrong type for a field.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => word().prop_map(Value::String),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        2 => json_value(2, 4, 16),
    ]
}

/// The form endpoints (POST), and whether they need a signed-in caller.
const ENDPOINTS: &[(&str, bool)] = &[
    ("/login", false),
    ("/register", false),
    ("/reset", false),
    ("/confirm", false),
    ("/recover-username", false),
    ("/logout", false),
    ("/change", true),
    ("/verify", true),
    ("/change-email", true),
    ("/change-username", true),
];

fn endpoint() -> impl Strategy<Value = (&'static str, bool)> {
    prop::sample::select(ENDPOINTS.to_vec())
}

/// JSON bodies: objects of the forms' fields with right and wrong types,
/// any JSON at all, truncated JSON, bytes.
fn json_body() -> impl Strategy<Value = Vec<u8>> {
    let object = prop::collection::vec((field(), field_value()), 0..6)
        .prop_map(|kv| {
            Value::Object(kv.into_iter().collect())
                .to_string()
                .into_bytes()
        })
        .boxed();
    prop_oneof![
        4 => object.clone(),
        1 => json_value(2, 4, 16).prop_map(|v| v.to_string().into_bytes()),
        2 => (object, any::<prop::sample::Index>())
            .prop_map(|(b, i)| b[..i.index(b.len())].to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..100),
        1 => prop::sample::select(vec![
            "", " ", "null", "[]", "{", "{\"email\":", "\"x\"", "{}}", "{\"a\":1,}",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

/// Urlencoded bodies of the forms' fields, or raw bytes.
fn form_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::vec((field(), word()), 0..6).prop_map(|kv| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in kv {
                s.append_pair(&k, &v);
            }
            s.finish().into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..100),
        1 => "[=&%+a-z0-9_]{0,60}".prop_map(String::into_bytes),
    ]
}

/// Whether a browser following `location` (from `http://localhost/<path>`)
/// stays on localhost; an unparsable `Location` leads nowhere.
fn stays_on_localhost(location: &str) -> bool {
    let base = url::Url::parse("http://localhost/login").expect("base");
    match base.join(location) {
        Ok(u) => u.host_str() == Some("localhost") && u.port().is_none(),
        Err(_) => true,
    }
}

// -------------------------------------------------------------- properties

/// Auth tokens in the header, the query or a JSON body: noise and edited
/// copies of a real one are refused with a 401 envelope.
#[rocket::async_test]
async fn tampered_auth_tokens_never_authenticate() {
    let app = fuzz_app().await;
    let real = app.sign_in().await.token;
    let strategy = (tampered(&real), 0..3u8);
    let (app, real) = (&app, &real);
    check("auth tokens", 64, strategy, |(token, place)| async move {
        let resp = match place {
            0 => {
                app.client
                    .get("/api/protected")
                    .header(Header::new("X-Auth-Token", token.clone()))
                    .header(Header::new("Accept", "application/json"))
                    .dispatch()
                    .await
            }
            1 => {
                app.client
                    .get(format!("/api/protected?auth_token={}", pct(&token)))
                    .header(Header::new("Accept", "application/json"))
                    .dispatch()
                    .await
            }
            _ => {
                app.client
                    .post("/api/data")
                    .header(ContentType::JSON)
                    .body(json!({"auth_token": token}).to_string())
                    .dispatch()
                    .await
            }
        };
        let a = answer(resp).await;
        if token == *real || same_signed_token(real, &token) {
            ensure!(a.status == Status::Ok, "the real token: {}", a.status);
        } else {
            a.unauthenticated(&format!("token {token:?} in place {place}"))?;
        }
        Ok(())
    })
    .await;
}

/// `session` and `remember_token` cookies: noise and edited copies of real
/// ones are refused.
#[rocket::async_test]
async fn tampered_cookies_never_authenticate() {
    let app = fuzz_app().await;
    let creds = app.sign_in().await;
    let strategy = prop_oneof![
        tampered(&creds.session).prop_map(|v| ("session", v)),
        tampered(&creds.remember).prop_map(|v| ("remember_token", v)),
    ];
    let (app, creds) = (&app, &creds);
    check("cookies", 64, strategy, |(name, value)| async move {
        let real = if name == "session" {
            &creds.session
        } else {
            &creds.remember
        };
        let resp = app
            .client
            .get("/api/data")
            .cookie(Cookie::new(name, value.clone()))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await;
        let a = answer(resp).await;
        if value == *real {
            ensure!(a.status == Status::Ok, "the real {name}: {}", a.status);
        } else {
            a.unauthenticated(&format!("{name}={value:?}"))?;
        }
        Ok(())
    })
    .await;
}

/// CSRF tokens of a signed-in session, in each accepted header: only the
/// session's own token passes; the rest is a 400 naming the CSRF problem.
#[rocket::async_test]
async fn tampered_csrf_tokens_are_refused() {
    let app = fuzz_app().await;
    let (email, password) = app.fresh_user().await;
    let creds = app.sign_in_as(&email, &password).await;
    // A well-signed token of another session of the same user.
    let foreign = app.sign_in_as(&email, &password).await.csrf;
    let values = prop_oneof![
        4 => tampered(&creds.csrf),
        1 => Just(foreign),
        1 => Just(String::new()),
    ];
    let header = prop::sample::select(vec!["X-XSRF-Token", "X-CSRFToken", "X-CSRF-Token"]);
    let (app, creds) = (&app, &creds);
    check("csrf", 64, (values, header), |(value, header)| async move {
        let resp = app
            .client
            .post("/api/data")
            .cookie(Cookie::new("session", creds.session.clone()))
            .header(ContentType::JSON)
            .header(Header::new(header, value.clone()))
            .body("{}")
            .dispatch()
            .await;
        let a = answer(resp).await;
        if value == creds.csrf || same_signed_token(&creds.csrf, &value) {
            ensure!(a.status == Status::Ok, "the real token: {}", a.status);
            return Ok(());
        }
        let r = a.envelope(&format!("{header}: {value:?}"))?;
        let csrf_errors = [
            "The CSRF token is missing.",
            "The CSRF token is invalid.",
            "The CSRF tokens do not match.",
            "The CSRF token has expired.",
        ];
        ensure!(
            a.status == Status::BadRequest
                && r["errors"]
                    .as_array()
                    .is_some_and(|e| e.len() == 1 && csrf_errors.iter().any(|m| e[0] == json!(m))),
            "{header}: {value:?}: {} {r}",
            a.status
        );
        Ok(())
    })
    .await;
}

/// JSON bodies of every shape to every form: a reply in the envelope,
/// never a 5xx.
#[rocket::async_test]
async fn json_bodies_get_enveloped_replies() {
    let app = fuzz_app().await;
    let token = app.sign_in().await.token;
    let (app, token) = (&app, &token);
    let strategy = (endpoint(), json_body(), any::<bool>());
    check(
        "json bodies",
        64,
        strategy,
        |((path, authed), body, next)| async move {
            let uri = if next {
                format!("{path}?next=%2Fhere")
            } else {
                path.to_string()
            };
            let mut req = on_localhost(app.client.post(uri))
                .header(ContentType::JSON)
                .body(&body);
            if authed {
                req = req.header(Header::new("X-Auth-Token", token.clone()));
            }
            let a = answer(req.dispatch().await).await;
            a.envelope(&format!("{path} {:?}", String::from_utf8_lossy(&body)))?;
            // A body that is no JSON object is refused as such.
            let object = body.iter().all(u8::is_ascii_whitespace)
                || serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.is_object());
            if !object {
                ensure!(
                    a.status == Status::BadRequest,
                    "{path}: non-object body got {}",
                    a.status
                );
            }
            Ok(())
        },
    )
    .await;
}

/// Urlencoded bodies (and bytes) to every form, as a browser or as an API
/// client: never a 5xx; with `Accept: application/json`, the envelope.
#[rocket::async_test]
async fn urlencoded_bodies_never_fail_the_server() {
    let app = fuzz_app().await;
    let token = app.sign_in().await.token;
    let (app, token) = (&app, &token);
    let accept = prop::sample::select(vec![None, Some("text/html"), Some("application/json")]);
    let strategy = (endpoint(), form_body(), accept);
    check(
        "urlencoded bodies",
        64,
        strategy,
        |((path, authed), body, accept)| async move {
            let mut req = on_localhost(app.client.post(path))
                .header(ContentType::Form)
                .body(&body);
            if let Some(accept) = accept {
                req = req.header(Header::new("Accept", accept));
            }
            if authed {
                req = req.header(Header::new("X-Auth-Token", token.clone()));
            }
            let a = answer(req.dispatch().await).await;
            let what = format!("{path} {:?}", String::from_utf8_lossy(&body));
            if accept == Some("application/json") {
                a.envelope(&what)?;
            } else {
                a.not_5xx(&what)?;
            }
            if let Some(l) = &a.location {
                ensure!(stays_on_localhost(l), "{what}: Location {l:?}");
            }
            Ok(())
        },
    )
    .await;
}

/// `next` on logout, on a successful login and on the login page: a
/// redirect never leaves the host, a page never echoes markup, an API
/// client gets the envelope.
#[rocket::async_test]
async fn next_never_redirects_off_the_host() {
    let app = fuzz_app().await;
    let app = &app;
    check("next", 64, redirect_target(), |next| async move {
        let form = |pairs: &[(&str, &str)]| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            s.extend_pairs(pairs);
            s.finish()
        };
        // Logout (no session needed) and a real HTML login.
        for (path, body) in [
            ("/logout", form(&[("next", next.as_str())])),
            (
                "/login",
                form(&[
                    ("email", USER.0),
                    ("password", USER.1),
                    ("next", next.as_str()),
                ]),
            ),
        ] {
            let resp = on_localhost(app.client.post(path))
                .header(ContentType::Form)
                .header(Header::new("Accept", "text/html"))
                .body(body)
                .dispatch()
                .await;
            let a = answer(resp).await;
            a.not_5xx(&format!("{path} next={next:?}"))?;
            if let Some(l) = &a.location {
                ensure!(
                    l.bytes().all(|b| b.is_ascii_graphic()),
                    "{path}: Location {l:?} for next={next:?}"
                );
                ensure!(
                    stays_on_localhost(l),
                    "{path}: Location {l:?} for next={next:?}"
                );
            }
            ensure!(
                !a.body.contains("<fz>"),
                "{path}: markup echoed: {}",
                a.body
            );
        }
        // The login page with next in the query.
        let resp = on_localhost(app.client.get(format!("/login?next={}", pct(&next))))
            .header(Header::new("Accept", "text/html"))
            .dispatch()
            .await;
        let a = answer(resp).await;
        a.not_5xx(&format!("GET /login?next={next:?}"))?;
        ensure!(
            !a.body.contains("<fz>"),
            "login page echoes markup: {}",
            a.body
        );
        // An API login: 200, or a 400 envelope.
        let resp = on_localhost(app.client.post(format!("/login?next={}", pct(&next))))
            .header(ContentType::JSON)
            .body(json!({"email": USER.0, "password": USER.1}).to_string())
            .dispatch()
            .await;
        answer(resp)
            .await
            .envelope(&format!("JSON login next={next:?}"))?;
        Ok(())
    })
    .await;
}

/// HTTP basic credentials: only the real ones authenticate; the rest is a
/// 401 with a Basic challenge.
#[rocket::async_test]
async fn tampered_basic_credentials_never_authenticate() {
    let app = fuzz_app().await;
    let real = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", USER.0, USER.1))
    );
    let r = app
        .client
        .get("/api/basic")
        .header(Header::new("Authorization", real.clone()))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let basic = |bytes: Vec<u8>| format!("Basic {}", STANDARD.encode(bytes));
    let strategy = prop_oneof![
        3 => tampered(&real),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(basic),
        1 => word().prop_map(move |p| basic(format!("{}:{p}", USER.0).into_bytes())),
        1 => (word(), any_text(10)).prop_map(move |(u, p)| basic(format!("{u}:{p}").into_bytes())),
    ];
    let app = &app;
    let real_pair = (USER.0.to_string(), USER.1.to_string());
    let real_pair = &real_pair;
    check("basic", 64, strategy, |header| async move {
        let resp = app
            .client
            .get("/api/basic")
            .header(Header::new("Authorization", header.clone()))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await;
        let challenge = resp.headers().get_one("WWW-Authenticate").map(String::from);
        let a = answer(resp).await;
        // What the header says, decoded the way RFC 7617 reads it.
        let pair = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
            .and_then(|(_, rest)| STANDARD.decode(rest.trim()).ok())
            .and_then(|raw| String::from_utf8(raw).ok())
            .and_then(|t| {
                t.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            });
        let genuine = pair
            .as_ref()
            .is_some_and(|(u, p)| (u == &real_pair.0 || u == "user") && p == &real_pair.1);
        if genuine {
            ensure!(a.status == Status::Ok, "{header:?}: {}", a.status);
        } else {
            a.unauthenticated(&format!("Authorization: {header:?}"))?;
            ensure!(
                challenge
                    .as_deref()
                    .is_some_and(|c| c.starts_with("Basic realm=")),
                "{header:?}: challenge {challenge:?}"
            );
        }
        Ok(())
    })
    .await;
}

/// Signed link tokens (reset, confirm): edited copies of real ones and
/// noise land on the error view, never on the form.
#[rocket::async_test]
async fn tampered_link_tokens_land_on_the_error_view() {
    let app = fuzz_app().await;
    // A real reset link and a real confirmation link.
    let r = app
        .client
        .post("/reset")
        .header(ContentType::JSON)
        .body(json!({"email": USER.0}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let mail = app
        .sink
        .wait_for(USER.0, "reset", Duration::from_secs(10))
        .await
        .expect("reset mail");
    let reset = link_token(&mail.text, "/reset");
    let email = unique_email();
    let r = app
        .client
        .post("/register")
        .header(ContentType::JSON)
        .body(
            json!({"email": email, "password": "s3cret-pass", "password_confirm": "s3cret-pass"})
                .to_string(),
        )
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let mail = app
        .sink
        .wait_for(&email, "Welcome", Duration::from_secs(10))
        .await
        .expect("welcome mail");
    let confirm = link_token(&mail.text, "/confirm");
    // Controls: the real reset link opens the form.
    let r = app.client.get(format!("/reset/{reset}")).dispatch().await;
    let loc = r
        .headers()
        .get_one("Location")
        .unwrap_or_default()
        .to_string();
    assert!(loc.starts_with("/reset-password?"), "{loc}");

    let strategy = prop_oneof![
        tampered(&reset).prop_map(|t| ("reset", t)),
        tampered(&confirm).prop_map(|t| ("confirm", t)),
    ]
    .prop_filter("a path segment", |(_, t)| !t.is_empty());
    let (app, reset, confirm) = (&app, &reset, &confirm);
    check("link tokens", 64, strategy, |(kind, token)| async move {
        let (real, error_view) = match kind {
            "reset" => (reset, "/reset-password-error"),
            _ => (confirm, "/confirm-error"),
        };
        let resp = app
            .client
            .get(format!("/{kind}/{}", pct(&token)))
            .dispatch()
            .await;
        let a = answer(resp).await;
        a.not_5xx(&format!("/{kind}/{token:?}"))?;
        if token == *real || same_signed_token(real, &token) {
            return Ok(());
        }
        let loc = a.location.clone().unwrap_or_default();
        ensure!(
            a.status == Status::Found && loc.split('?').next() == Some(error_view),
            "/{kind}/{token:?}: {} to {loc:?}",
            a.status
        );
        Ok(())
    })
    .await;
}

/// Raw query strings on a protected page: the login redirect's `next` is
/// re-encoded (no header injection) and stays on the host.
#[rocket::async_test]
async fn protected_page_redirects_stay_well_formed() {
    let app = fuzz_app().await;
    let piece = prop::sample::select(vec![
        "a",
        "=",
        "&",
        "+",
        "%",
        "%2",
        "%zz",
        "%41",
        "%e9",
        "%C3%A9",
        "%FF",
        "%0d%0a",
        "%00",
        "%25",
        "%23",
        "%2F",
        "/",
        "?",
        ":",
        "@",
        "!",
        "$",
        "'",
        "(",
        ")",
        "*",
        ",",
        ";",
        "~",
        "next",
        "//evil.example",
    ]);
    let query = prop::collection::vec(piece, 0..10).prop_map(|p| p.concat());
    let app = &app;
    check("protected queries", 64, query, |query| async move {
        let resp = on_localhost(app.client.get(format!("/api/data?{query}")))
            .header(Header::new("Accept", "text/html"))
            .dispatch()
            .await;
        let a = answer(resp).await;
        a.not_5xx(&format!("?{query}"))?;
        if a.status == Status::Found {
            let l = a.location.clone().unwrap_or_default();
            ensure!(l.starts_with("/login?next="), "?{query}: Location {l:?}");
            ensure!(
                l.bytes().all(|b| b.is_ascii_graphic()),
                "?{query}: Location {l:?}"
            );
            ensure!(stays_on_localhost(&l), "?{query}: Location {l:?}");
        }
        Ok(())
    })
    .await;
}
