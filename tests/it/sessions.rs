//! Server-side sessions: logout and revocation end copies of the cookies,
//! sign-in never reuses a session id, and an app can list and revoke a
//! user's sessions.

use rocket::http::{ContentType, Cookie, Header, Status};
use rocket::local::asynchronous::Client;
use serde_json::{Value, json};

use crate::common::*;

/// The cookies of `app`'s jar, as `name=value` pairs.
fn cookie_jar(app: &App) -> Vec<(String, String)> {
    app.client
        .cookies()
        .iter()
        .map(|c| (c.name().to_string(), c.value().to_string()))
        .collect()
}

/// GET /api/data with exactly these cookies, from a fresh untracked client.
async fn data_status_with(client: &Client, cookies: &[(String, String)]) -> Status {
    let mut req = client
        .get("/api/data")
        .header(Header::new("Accept", "application/json"));
    for (n, v) in cookies {
        req = req.cookie(Cookie::new(n.clone(), v.clone()));
    }
    req.dispatch().await.status()
}

/// Signs a new confirmed user in on `app`; its `session` cookie (one,
/// as a name-value pair in a list).
async fn signed_in_session(app: &App) -> Vec<(String, String)> {
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let session: Vec<_> = cookie_jar(app)
        .into_iter()
        .filter(|(n, _)| n == "session")
        .collect();
    assert_eq!(session.len(), 1);
    session
}

async fn login_remember(app: &App, email: &str, pw: &str) {
    let (s, b) = app
        .post_json(
            "/login",
            json!({"email": email, "password": pw, "remember": true}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
}

#[rocket::async_test]
async fn logout_revokes_copies_of_the_session_and_remember_cookies() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    login_remember(&app, &email, &pw).await;
    let jar = cookie_jar(&app);
    let session: Vec<_> = jar
        .iter()
        .filter(|(n, _)| n == "session")
        .cloned()
        .collect();
    let remember: Vec<_> = jar
        .iter()
        .filter(|(n, _)| n == "remember_token")
        .cloned()
        .collect();
    assert_eq!((session.len(), remember.len()), (1, 1), "{jar:?}");
    // A second browser holding copies is signed in by either cookie alone.
    let thief = Client::untracked(rocket_for(setup_like(&app)).await)
        .await
        .expect("client");
    assert_eq!(data_status_with(&thief, &session).await, Status::Ok);
    assert_eq!(data_status_with(&thief, &remember).await, Status::Ok);

    app.logout().await;
    assert_eq!(
        data_status_with(&thief, &session).await,
        Status::Unauthorized
    );
    assert_eq!(
        data_status_with(&thief, &remember).await,
        Status::Unauthorized
    );
    let both: Vec<_> = session.iter().chain(&remember).cloned().collect();
    assert_eq!(data_status_with(&thief, &both).await, Status::Unauthorized);
}

#[rocket::async_test]
async fn the_401_to_a_revoked_session_replaces_its_cookie() {
    let app = app().await;
    let session = signed_in_session(&app).await;
    let other = Client::untracked(rocket_for(setup_like(&app)).await)
        .await
        .expect("client");
    app.logout().await;
    let mut req = other
        .get("/api/data")
        .header(Header::new("Accept", "application/json"));
    req = req.cookie(Cookie::new(session[0].0.clone(), session[0].1.clone()));
    let res = req.dispatch().await;
    assert_eq!(res.status(), Status::Unauthorized);
    // The error answer still carries the session as the request left it:
    // without the user it no longer has.
    let sent = res
        .cookies()
        .get("session")
        .map(|c| c.value().to_string())
        .expect("a session cookie on the 401");
    assert_ne!(sent, session[0].1);
    let again = [("session".to_string(), sent)];
    assert_eq!(data_status_with(&other, &again).await, Status::Unauthorized);
}

/// Options for a second instance of `app`'s database (same keys).
fn setup_like(app: &App) -> fs_tests::app::Options {
    app.options.clone()
}

#[rocket::async_test]
async fn sign_in_starts_a_new_session_record() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let first = cookie_jar(&app);
    // Signing in again (another account's login, a reset...) replaces the
    // record: the earlier cookie is void.
    app.logout().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let other = Client::untracked(rocket_for(setup_like(&app)).await)
        .await
        .expect("client");
    let old: Vec<_> = first.into_iter().filter(|(n, _)| n == "session").collect();
    assert_eq!(data_status_with(&other, &old).await, Status::Unauthorized);
    let (s, _) = app.app_json("/api/data").await;
    assert_eq!(s, Status::Ok);
}

async fn login_as(app: &App, email: &str, pw: &str, agent: &'static str) {
    let r = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .header(Header::new("User-Agent", agent))
        .body(json!({"email": email, "password": pw, "remember": true}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
}

#[rocket::async_test]
async fn sessions_are_listed_and_revoked() {
    let s = setup().await;
    let (a, b) = twin_apps(s).await;
    let (email, pw) = a.confirmed_user().await;
    login_as(&a, &email, &pw, "browser-a").await;
    login_as(&b, &email, &pw, "browser-b").await;
    let (st, list) = a.app_json("/api/sessions").await;
    assert_eq!(st, Status::Ok, "{list}");
    let sessions = list["sessions"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 2, "{list}");
    let current: Vec<&Value> = sessions
        .iter()
        .filter(|s| s["current"] == json!(true))
        .collect();
    assert_eq!(current.len(), 1, "{list}");
    assert_eq!(current[0]["user_agent"], json!("browser-a"));
    assert!(sessions.iter().all(|s| s["remembered"] == json!(true)));
    assert!(
        sessions
            .iter()
            .all(|s| s["id"].as_str().is_some_and(|i| i.len() == 64)),
        "{list}"
    );

    // "Sign out everywhere else" from A ends B (its remember cookie too).
    let r = a
        .post_with_header(
            "/api/sessions/revoke-others",
            "X-XSRF-Token",
            &a.csrf_cookie().unwrap_or_default(),
            json!({}),
        )
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        r.into_string().await.unwrap_or_default(),
        r#"{"revoked":1}"#
    );
    assert_eq!(b.app_json("/api/data").await.0, Status::Unauthorized);
    assert_eq!(a.app_json("/api/data").await.0, Status::Ok);
    let (_, list) = a.app_json("/api/sessions").await;
    assert_eq!(list["sessions"].as_array().map(Vec::len), Some(1), "{list}");
}

#[rocket::async_test]
async fn a_session_ends_after_its_lifetime_even_when_the_cookie_is_replayed() {
    let mut s = setup().await;
    s.opts.extra =
        Some(rocket::figment::Figment::new().merge(("security.permanent_session_lifetime", 600)));
    let app = app_with(s, |r| r).await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let jar: Vec<_> = cookie_jar(&app)
        .into_iter()
        .filter(|(n, _)| n == "session")
        .collect();
    // In use, the session lives on: its record and cookie slide.
    app.clock.advance(500);
    assert_eq!(app.app_json("/api/data").await.0, Status::Ok);
    app.clock.advance(500);
    assert_eq!(
        app.app_json("/api/data").await.0,
        Status::Ok,
        "used: slides"
    );
    // After more than the lifetime idle, it has ended, and a copy of the
    // cookie from before cannot revive it.
    app.clock.advance(601);
    let other = Client::untracked(rocket_for(setup_like(&app)).await)
        .await
        .expect("client");
    assert_eq!(data_status_with(&other, &jar).await, Status::Unauthorized);
    assert_eq!(app.app_json("/api/data").await.0, Status::Unauthorized);
}

/// The session cookie is sealed under a key derived from `secret_key`:
/// after a rotation that keeps the old key in `secret_key_fallbacks`, a
/// browser stays signed in (and its cookie is sealed anew under the new key
/// when next written); without the fallback the cookie is void.
#[rocket::async_test]
async fn a_session_survives_a_secret_key_rotation_with_the_old_key_as_fallback() {
    let app = app().await;
    let session = signed_in_session(&app).await;
    // URL-safe base64: nothing to percent-encode in the header.
    assert!(
        session[0]
            .1
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{session:?}"
    );

    let old_key = app.options.secret_key.clone();
    let mut rotated = setup_like(&app);
    rotated.secret_key = "a-brand-new-secret-key".into();
    rotated.extra = Some(
        rocket::figment::Figment::new().merge(("security.secret_key_fallbacks", vec![old_key])),
    );
    let after = Client::untracked(rocket_for(rotated.clone()).await)
        .await
        .expect("client");
    assert_eq!(data_status_with(&after, &session).await, Status::Ok);

    let mut replaced = rotated;
    replaced.extra = None;
    let without = Client::untracked(rocket_for(replaced).await)
        .await
        .expect("client");
    assert_eq!(
        data_status_with(&without, &session).await,
        Status::Unauthorized
    );
}
