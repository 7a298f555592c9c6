//! Test harness: the test app (`fs_tests::app`) on a fresh database, a real SMTP sink, a
//! movable clock, and helpers for Flask-Security's JSON envelope.

use std::sync::Arc;
use std::time::Duration;

use flask_security_rs::{Clock, SmtpMailer};
use fs_tests::{SentMail, SmtpSink};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use rocket::{Build, Rocket};
use serde_json::{Value, json};

pub const ADMIN: (&str, &str) = ("admin@example.com", "admin123");
pub const USER: (&str, &str) = ("user@example.com", "user123");
pub const DISABLED: (&str, &str) = ("disabled@example.com", "disabled123");

/// Serialises app construction when tests share one PostgreSQL database.
static BUILD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `FS_TEST_DATABASE_URL` (PostgreSQL in CI), else a fresh SQLite file.
pub fn database_url() -> String {
    match std::env::var("FS_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let dir = std::env::temp_dir().join("fs_rs_tests");
            let _ = std::fs::create_dir_all(&dir);
            dir.join(format!("{}.db", uuid())).display().to_string()
        }
    }
}

pub fn uuid() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unique_email() -> String {
    format!("t-{}@example.com", uuid())
}

pub struct App {
    pub client: Client,
    pub sink: SmtpSink,
    pub clock: Clock,
    /// What the app was built with (for a second instance on its database).
    pub options: fs_tests::app::Options,
}

pub struct Setup {
    pub opts: fs_tests::app::Options,
    pub sink: SmtpSink,
}

pub async fn setup() -> Setup {
    let sink = SmtpSink::start().await;
    let opts = fs_tests::app::Options {
        database_url: database_url(),
        mailer: Arc::new(SmtpMailer::plain("127.0.0.1", sink.port())),
        secret_key: "test-secret-key".into(),
        password_salt: "test-password-salt".into(),
        generic_responses: false,
        fast_hash: true,
        spa: true,
        extra: None,
        clock: Clock::new(),
        login_hooks: Vec::new(),
        sms: None,
        tf_rule: None,
        migrate: true,
        outbox_queue: uuid(),
    };
    Setup { opts, sink }
}

pub async fn rocket_for(opts: fs_tests::app::Options) -> Rocket<Build> {
    let _guard = BUILD_LOCK.lock().await;
    match fs_tests::app::build(opts).await {
        Ok(r) => r,
        Err(e) => panic!("building the app failed: {e}"),
    }
}

pub async fn app() -> App {
    let s = setup().await;
    app_with(s, |r| r).await
}

pub async fn app_with(s: Setup, f: impl FnOnce(Rocket<Build>) -> Rocket<Build>) -> App {
    let clock = s.opts.clock.clone();
    let options = s.opts.clone();
    let rocket = f(rocket_for(s.opts).await);
    let client = Client::tracked(rocket).await.expect("valid rocket");
    App {
        client,
        sink: s.sink,
        clock,
        options,
    }
}

pub async fn json_of(resp: LocalResponse<'_>) -> (Status, Value) {
    let status = resp.status();
    let ct = resp
        .content_type()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let body = resp.into_string().await.unwrap_or_default();
    let v: Value =
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON ({ct}): {body}"));
    assert_eq!(ct, "application/json", "content type");
    assert_eq!(
        v["meta"]["code"],
        json!(status.code),
        "meta.code mismatch: {v}"
    );
    (status, v["response"].clone())
}

impl App {
    pub async fn get_json(&self, path: &str) -> (Status, Value) {
        json_of(
            self.client
                .get(path)
                .header(ContentType::JSON)
                .header(Header::new("Accept", "application/json"))
                .dispatch()
                .await,
        )
        .await
    }

    pub async fn post_json(&self, path: &str, body: Value) -> (Status, Value) {
        match self.csrf_cookie() {
            Some(t) => json_of(self.post_with_header(path, "X-XSRF-Token", &t, body).await).await,
            None => self.post_json_no_csrf(path, body).await,
        }
    }

    /// POST `body` as JSON with one extra header.
    pub async fn post_with_header(
        &self,
        path: &str,
        name: &'static str,
        value: &str,
        body: Value,
    ) -> LocalResponse<'_> {
        self.client
            .post(path.to_string())
            .header(ContentType::JSON)
            .header(Header::new(name, value.to_string()))
            .body(body.to_string())
            .dispatch()
            .await
    }

    /// An app route's plain JSON (no envelope).
    pub async fn app_json(&self, path: &str) -> (Status, Value) {
        let r = self
            .client
            .get(path)
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await;
        let status = r.status();
        let body = r.into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub async fn post_json_no_csrf(&self, path: &str, body: Value) -> (Status, Value) {
        json_of(
            self.client
                .post(path)
                .header(ContentType::JSON)
                .body(body.to_string())
                .dispatch()
                .await,
        )
        .await
    }

    pub fn csrf_cookie(&self) -> Option<String> {
        self.client
            .cookies()
            .get("XSRF-TOKEN")
            .map(|c| c.value().to_string())
    }

    pub async fn login(&self, email: &str, password: &str) -> (Status, Value) {
        self.post_json("/login", json!({"email": email, "password": password}))
            .await
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let t = client_token(&self.client, email, password).await;
        // Logging out ends the session but not the token.
        self.logout().await;
        t
    }

    pub async fn text(&self, path: &str) -> (Status, String) {
        let r = self
            .client
            .get(path)
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await;
        (r.status(), r.into_string().await.unwrap_or_default())
    }

    pub async fn mail(&self, to: &str, subject: &str) -> SentMail {
        // Delivered first, so the newest match is the latest mail queued.
        self.settle_mail().await;
        self.sink
            .wait_for(to, subject, Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no mail {subject:?} to {to}"))
    }

    /// Registers a new user and returns (email, password, welcome mail).
    pub async fn register(&self) -> (String, String, SentMail) {
        let email = unique_email();
        let pw = "s3cret-pass".to_string();
        let (status, body) = self
            .post_json(
                "/register",
                json!({"email": email, "password": pw, "password_confirm": pw}),
            )
            .await;
        assert_eq!(status, Status::Ok, "{body}");
        let mail = self.mail(&email, "Welcome").await;
        (email, pw, mail)
    }

    /// Registers and confirms a user.
    pub async fn confirmed_user(&self) -> (String, String) {
        let (email, pw, mail) = self.register().await;
        follow_confirmation(&self.client, &mail).await;
        (email, pw)
    }
}

/// Follows the confirmation link of `mail` with `client` (a redirect).
pub async fn follow_confirmation(client: &Client, mail: &SentMail) {
    let token = link_token(&mail.text, "/confirm");
    let r = client.get(format!("/confirm/{token}")).dispatch().await;
    assert_eq!(r.status(), Status::Found);
}

/// The token of a `http://host<path>/<token>` link in a mail body.
pub fn link_token(text: &str, path: &str) -> String {
    let needle = format!("{path}/");
    let start = text
        .find(&needle)
        .unwrap_or_else(|| panic!("no {path} link in {text}"))
        + needle.len();
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_-.".contains(*c))
        .collect()
}

/// Query parameters of a Location header.
pub fn location(resp: &LocalResponse<'_>) -> (String, Vec<(String, String)>) {
    let loc = resp
        .headers()
        .get_one("Location")
        .expect("Location header")
        .to_string();
    let (path, q) = loc.split_once('?').unwrap_or((&loc, ""));
    let params = url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (path.to_string(), params)
}

// ---- Helpers for the account-lifecycle tests (recoverable, changeable, ...) ----

/// A second instance of `app`: same options and database, its own client
/// (cookie jar) and mail sink.
pub async fn another_instance(app: &App) -> App {
    let sink = SmtpSink::start().await;
    let mut opts = app.options.clone();
    opts.mailer = Arc::new(SmtpMailer::plain("127.0.0.1", sink.port()));
    opts.outbox_queue = uuid();
    app_with(Setup { opts, sink }, |r| r).await
}

/// Waits until every instance has heard of the writes made so far by
/// another one: within the poll interval on SQLite, on `NOTIFY` on PostgreSQL.
pub async fn settle_changes() {
    let polls = std::time::Duration::from_secs_f64(fs_tests::app::CHANGE_POLL_SECS * 6.0);
    tokio::time::sleep(polls).await;
}

/// Two "browsers" (separate clients and cookie jars) on one database and one
/// clock, each with its own mail sink; `s` configures both.
pub async fn twin_apps(s: Setup) -> (App, App) {
    let sink2 = SmtpSink::start().await;
    let mut opts2 = s.opts.clone();
    opts2.mailer = Arc::new(SmtpMailer::plain("127.0.0.1", sink2.port()));
    opts2.outbox_queue = uuid();
    let a = app_with(s, |r| r).await;
    let b = app_with(
        Setup {
            opts: opts2,
            sink: sink2,
        },
        |r| r,
    )
    .await;
    (a, b)
}

impl App {
    /// POST /logout (JSON).
    pub async fn logout(&self) {
        let r = self
            .client
            .post("/logout")
            .header(ContentType::JSON)
            .body("{}")
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Ok);
    }

    /// The status of GET /api/protected with `token` in the auth header.
    pub async fn token_status(&self, token: &str) -> Status {
        self.token_get(token).await.0
    }

    /// GET /api/protected with `token` in the auth header: status and body.
    pub async fn token_get(&self, token: &str) -> (Status, Value) {
        let r = self
            .client
            .get("/api/protected")
            .header(Header::new("X-Auth-Token", token.to_string()))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
            .await;
        let status = r.status();
        let body = r.into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or_default())
    }

    /// A login attempt that leaves the browser logged out: the status only.
    pub async fn try_login(&self, email: &str, password: &str) -> Status {
        let (s, _) = self.login(email, password).await;
        if s == Status::Ok {
            self.logout().await;
        }
        s
    }

    /// Every mail the sink has received so far, once this app's outbox has
    /// nothing left to deliver (so "no mail" really means none was queued).
    pub async fn all_mail(&self) -> Vec<SentMail> {
        self.settle_mail().await;
        self.sink.messages().await
    }

    /// Waits (up to 10 s) until this app's outbox is empty.
    pub async fn settle_mail(&self) {
        let admin = flask_security_rs::Admin::of(self.client.rocket()).expect("admin");
        for _ in 0..400 {
            match admin.pending_mails().await {
                Ok(0) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                Err(e) => panic!("outbox: {e}"),
            }
        }
        panic!("the outbox still has mail after 10 s");
    }
}

/// The absolute `http(s)://…<path>/<token>` link of a mail body.
pub fn link_url(text: &str, path: &str) -> String {
    let needle = format!("{path}/");
    let at = text
        .find(&needle)
        .unwrap_or_else(|| panic!("no {path} link in {text}"));
    let start = text[..at]
        .rfind(|c: char| c.is_whitespace() || c == '"')
        .map_or(0, |i| i + 1);
    text[start..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// `{"errors": [msg], "field_errors": {field: [msg]}}`: one field error.
pub fn field_error(field: &str, msg: &str) -> Value {
    json!({"errors": [msg], "field_errors": {field: [msg]}})
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

/// A migrated database connection (the test app's tables, so the same
/// PostgreSQL database serves every test). Schema
/// work happens under the build lock; `extra` runs there too.
pub async fn migrated_db<F, Fut>(extra: F) -> flask_security_rs::sea_orm::DatabaseConnection
where
    F: FnOnce(flask_security_rs::sea_orm::DatabaseConnection) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let _guard = BUILD_LOCK.lock().await;
    let db = fs_tests::app::open_database(&database_url())
        .await
        .expect("db");
    extra(db.clone()).await;
    db
}

/// An auth token for `email`, from `client` signing in by JSON (the client
/// keeps the session cookie of that sign-in).
pub async fn client_token(client: &Client, email: &str, password: &str) -> String {
    let resp = client
        .post("/login?include_auth_token")
        .header(ContentType::JSON)
        .body(json!({"email": email, "password": password}).to_string())
        .dispatch()
        .await;
    let (status, body) = json_of(resp).await;
    assert_eq!(status, Status::Ok, "{body}");
    body["user"]["authentication_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// `fig` with cheap argon2 parameters (for apps the tests build by hand).
pub fn cheap_hashing(fig: rocket::figment::Figment) -> rocket::figment::Figment {
    fig.merge((
        "security.password_hash_passlib_options.argon2__memory_cost",
        1024,
    ))
    .merge(("security.password_hash_passlib_options.argon2__rounds", 1))
    .merge((
        "security.password_hash_passlib_options.argon2__parallelism",
        1,
    ))
}

/// RFC 6238 (SHA1, 6 digits, 30 s) code of base32 `key` at unix `t`,
/// computed here, independently of the library.
pub fn totp(key: &str, t: i64) -> String {
    use hmac::{Hmac, Mac};
    let raw = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, key).expect("base32");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&raw).expect("key");
    mac.update(&(t.div_euclid(30) as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The six-digit code after `code: ` in a mail's text.
pub fn code_in(text: &str) -> String {
    let i = text.find("code: ").expect("a code in the mail") + 6;
    text[i..i + 6].to_string()
}
