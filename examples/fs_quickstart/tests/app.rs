//! The quickstart's tests (Flask-Security's pytest tests for its quickstart,
//! plus the customisations), each against the app on a fresh SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use flask_security_rs::{Admin, Clock, NewUser};
use fs_quickstart::Nicknames;
use rocket::http::{Accept, ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};

const ADMIN: &str = "admin@me.com";
const USER: &str = "user@me.com";
const NOBODY: &str = "nobody@me.com";
const PASSWORD: &str = "password";

/// A tracked client on a fresh database, its clock and the database file
/// (removed when dropped).
struct App {
    client: Client,
    clock: Clock,
    _db: TempDb,
}

struct TempDb(PathBuf);

impl TempDb {
    fn remove(&self) {
        for ext in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{ext}", self.0.display()));
        }
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        self.remove();
    }
}

fn temp_db() -> TempDb {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!(
        "fs_quickstart-{}-{}-{nanos}.db",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let db = TempDb(std::env::temp_dir().join(name));
    db.remove();
    db
}

/// The app with cheap argon2 parameters, plus a plain `user` (role `user`) and
/// a user without roles.
async fn app() -> App {
    let db = temp_db();
    let clock = Clock::new();
    let rocket = fs_quickstart::build(&db.0.display().to_string(), clock.clone())
        .await
        .expect("database");
    let figment = rocket
        .figment()
        .clone()
        .merge(("log_level", "off"))
        .merge((
            "security.password_hash_passlib_options.argon2__memory_cost",
            1024,
        ))
        .merge(("security.password_hash_passlib_options.argon2__rounds", 1))
        .merge((
            "security.password_hash_passlib_options.argon2__parallelism",
            1,
        ));
    let client = Client::tracked(rocket.configure(figment))
        .await
        .expect("valid rocket");
    let admin = Admin::of(client.rocket()).expect("Security attached");
    let user = NewUser::new(USER).roles(["user"]);
    admin.create_user(user, PASSWORD).await.expect("user");
    admin
        .create_user(NewUser::new(NOBODY), PASSWORD)
        .await
        .expect("nobody");
    App {
        client,
        clock,
        _db: db,
    }
}

impl App {
    /// GET `path` asking for JSON: status and body.
    async fn get_json(&self, path: &str, token: Option<&str>) -> (Status, Value) {
        let mut req = self.client.get(path).header(Accept::JSON);
        if let Some(t) = token {
            req = req.header(Header::new("Authentication-Token", t.to_string()));
        }
        let resp = req.dispatch().await;
        let status = resp.status();
        let body = resp.into_string().await.unwrap_or_default();
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// GET `path` as a browser would: status, `Location` and body.
    async fn get_html(&self, path: &str) -> (Status, Option<String>, String) {
        let resp = self.client.get(path).header(Accept::HTML).dispatch().await;
        let status = resp.status();
        let location = resp.headers().get_one("Location").map(String::from);
        (
            status,
            location,
            resp.into_string().await.unwrap_or_default(),
        )
    }

    /// The session's CSRF token (from `GET /login`).
    async fn csrf_token(&self) -> String {
        let (status, body) = self.get_json("/login", None).await;
        assert_eq!(status, Status::Ok, "{body}");
        body["response"]["csrf_token"]
            .as_str()
            .expect("csrf_token")
            .to_string()
    }

    /// `POST /login?include_auth_token` with JSON `{"email", "password"}` and
    /// `extra` fields: status and the envelope's `response`.
    async fn login(&self, email: &str, extra: Value) -> (Status, Value) {
        let mut body = json!({"email": email, "password": PASSWORD});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        // Fetch the token first: a request takes the client's cookies when built.
        let csrf = self.csrf_token().await;
        let resp = self
            .client
            .post("/login?include_auth_token")
            .header(ContentType::JSON)
            .header(Header::new("X-CSRF-Token", csrf))
            .body(body.to_string())
            .dispatch()
            .await;
        let status = resp.status();
        let v: Value = serde_json::from_str(&resp.into_string().await.unwrap_or_default())
            .expect("JSON login answer");
        (status, v["response"].clone())
    }

    /// Logs in and returns the auth token.
    async fn token(&self, email: &str) -> String {
        let (status, body) = self.login(email, json!({})).await;
        assert_eq!(status, Status::Ok, "{body}");
        body["user"]["authentication_token"]
            .as_str()
            .expect("authentication_token")
            .to_string()
    }

    async fn logout(&self) {
        // Fetch the token first: a request takes the client's cookies when built.
        let csrf = self.csrf_token().await;
        let resp = self
            .client
            .post("/logout")
            .header(ContentType::JSON)
            .header(Header::new("X-CSRF-Token", csrf))
            .body("{}")
            .dispatch()
            .await;
        assert_eq!(resp.status(), Status::Ok);
    }
}

fn not_permitted() -> Value {
    json!({"status": 403, "msgs": ["Not permitted"]})
}

#[tokio::test]
async fn home_requires_login() {
    let app = app().await;
    let (status, body) = app.get_json("/", None).await;
    assert_eq!(status, Status::Unauthorized, "{body}");
    assert_eq!(body["meta"]["code"], 401);
    let (status, location, _) = app.get_html("/").await;
    assert_eq!(status, Status::Found);
    let location = location.expect("redirect");
    assert!(location.starts_with("/login?next="), "{location}");
}

#[tokio::test]
async fn admin_login_shows_the_profile_page() {
    let app = app().await;
    let (status, body) = app.login(ADMIN, json!({})).await;
    assert_eq!(status, Status::Ok, "{body}");
    let (status, _, html) = app.get_html("/").await;
    assert_eq!(status, Status::Ok, "{html}");
    assert!(html.contains("Hello Admin!"), "{html}");
    assert!(html.contains("admin@me.com"), "{html}");
    assert!(html.contains(r#"href="&#x2F;login""#), "{html}"); // Tera escapes '/'.
}

#[tokio::test]
async fn user_payload_has_the_names() {
    let app = app().await;
    let (status, body) = app.login(ADMIN, json!({})).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(body["user"]["first_name"], "Admin", "{body}");
    assert_eq!(body["user"]["last_name"], Value::Null, "{body}");
    app.logout().await;
    let (_, body) = app.login(USER, json!({})).await;
    assert_eq!(body["user"]["first_name"], Value::Null, "{body}");
    let (_, _, html) = app.get_html("/").await;
    assert!(html.contains("Hello there!"), "{html}");
}

#[tokio::test]
async fn admin_page_is_for_admins_only() {
    let app = app().await;
    assert_eq!(app.get_json("/admin", None).await.0, Status::Unauthorized);
    app.login(ADMIN, json!({})).await;
    let (status, _, body) = app.get_html("/admin").await;
    assert_eq!(
        (status, body.as_str()),
        (Status::Ok, "Hello admin admin@me.com!")
    );
    app.logout().await;

    app.login(USER, json!({})).await;
    let (status, body) = app.get_json("/admin", None).await;
    assert_eq!((status, body), (Status::Forbidden, not_permitted()));
    // The custom handler answers browsers too.
    let (status, _, body) = app.get_html("/admin").await;
    assert_eq!(status, Status::Forbidden);
    assert_eq!(
        serde_json::from_str::<Value>(&body).ok(),
        Some(not_permitted())
    );
}

#[tokio::test]
async fn user_data_needs_the_user_read_permission() {
    let app = app().await;
    assert_eq!(
        app.get_json("/user-data", None).await.0,
        Status::Unauthorized
    );
    app.login(USER, json!({})).await;
    let (status, _, body) = app.get_html("/user-data").await;
    assert_eq!(
        (status, body.as_str()),
        (Status::Ok, "Hello user@me.com you are a user!")
    );
    app.logout().await;

    app.login(ADMIN, json!({})).await;
    assert_eq!(app.get_html("/user-data").await.0, Status::Ok);
    app.logout().await;

    app.login(NOBODY, json!({})).await;
    let (status, body) = app.get_json("/user-data", None).await;
    assert_eq!((status, body), (Status::Forbidden, not_permitted()));
}

#[tokio::test]
async fn api_protected_takes_the_token_only() {
    let app = app().await;
    let token = app.token(USER).await;
    // Signed in by session, but no token: refused.
    let (status, body) = app.get_json("/api/protected", None).await;
    assert_eq!(status, Status::Unauthorized, "{body}");
    let (status, body) = app.get_json("/api/protected", Some(&token)).await;
    assert_eq!(status, Status::Ok, "{body}");
    assert_eq!(
        body,
        json!({"message": "Token authenticated", "user": USER})
    );

    // /api/data takes either.
    let expected = json!({"message": "API data", "user": USER});
    assert_eq!(
        app.get_json("/api/data", None).await,
        (Status::Ok, expected.clone())
    );
    app.logout().await;
    assert_eq!(
        app.get_json("/api/data", None).await.0,
        Status::Unauthorized
    );
    assert_eq!(
        app.get_json("/api/data", Some(&token)).await,
        (Status::Ok, expected)
    );
    let (status, _) = app.get_json("/api/protected", Some("not-a-token")).await;
    assert_eq!(status, Status::Unauthorized);
}

#[tokio::test]
async fn token_expiry_depends_on_the_role() {
    let app = app().await;
    let user_token = app.token(USER).await;
    app.logout().await;
    let admin_token = app.token(ADMIN).await;
    app.logout().await;
    let status = |(s, _): (Status, Value)| s;
    assert_eq!(
        status(app.get_json("/api/protected", Some(&user_token)).await),
        Status::Ok
    );
    assert_eq!(
        status(app.get_json("/api/protected", Some(&admin_token)).await),
        Status::Ok
    );

    app.clock.advance(3600 + 60);
    assert_eq!(
        status(app.get_json("/api/protected", Some(&user_token)).await),
        Status::Unauthorized,
        "a user's token lasts an hour"
    );
    assert_eq!(
        status(app.get_json("/api/protected", Some(&admin_token)).await),
        Status::Ok
    );

    app.clock.advance(23 * 3600);
    assert_eq!(
        status(app.get_json("/api/protected", Some(&admin_token)).await),
        Status::Unauthorized,
        "an admin's token lasts a day"
    );
}

#[tokio::test]
async fn extra_login_field_reaches_the_hook() {
    let app = app().await;
    let seen = app
        .client
        .rocket()
        .state::<Nicknames>()
        .expect("managed")
        .clone();
    app.login(ADMIN, json!({"nickname": "boss"})).await;
    app.logout().await;
    // Without the field, the hook records nothing.
    app.login(USER, json!({})).await;
    app.logout().await;
    // From an HTML form too.
    let csrf = app.csrf_token().await;
    let form = format!("email={USER}&password={PASSWORD}&nickname=Sam&csrf_token={csrf}");
    let resp = app
        .client
        .post("/login")
        .header(ContentType::Form)
        .body(form)
        .dispatch()
        .await;
    assert_eq!(resp.status(), Status::Found, "signed in and redirected");
    assert_eq!(*seen.0.lock().unwrap(), ["boss", "Sam"]);
}
