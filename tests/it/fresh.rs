//! Freshness (`within`) and `/verify`.

use flask_security_rs::auth_required;
use rocket::http::Status;
use rocket::{get, routes};
use serde_json::json;

use crate::common::*;

#[auth_required("session", "token", within = 10)]
#[get("/fresh")]
fn fresh() -> &'static str {
    "fresh"
}

#[rocket::async_test]
async fn stale_sessions_must_reauthenticate() {
    let app = app_with(setup().await, |r| r.mount("/t", routes![fresh])).await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(app.text("/t/fresh").await, (Status::Ok, "fresh".into()));
    app.clock.advance(11 * 60);
    // The grace period set by the first check still covers this one.
    assert_eq!(app.text("/t/fresh").await.0, Status::Ok);
    app.clock.advance(61 * 60);
    let (s, b) = app.get_json("/t/fresh").await;
    assert_eq!(s, Status::Unauthorized);
    assert_eq!(
        b["errors"],
        json!(["You must reauthenticate to access this endpoint"])
    );
    assert_eq!(b["reauth_required"], json!(true));
    let r = app
        .client
        .get("/t/fresh")
        .header(rocket::http::Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(
        r.headers().get_one("Location"),
        Some("/verify?next=/t/fresh")
    );
    let (s, b) = app.get_json("/verify").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["has_webauthn_verify_credential"], json!(false));
    assert_eq!(
        app.post_json("/verify", json!({"password": "wrong"}))
            .await
            .1["field_errors"],
        json!({"password": ["Invalid password"]})
    );
    let (s, b) = app.post_json("/verify", json!({"password": pw})).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["user"], json!({}));
    assert_eq!(app.text("/t/fresh").await.0, Status::Ok);
}

#[rocket::async_test]
async fn verify_needs_authentication() {
    let app = app().await;
    assert_eq!(app.get_json("/verify").await.0, Status::Unauthorized);
    assert_eq!(
        app.post_json("/verify", json!({"password": "x"})).await.0,
        Status::Unauthorized
    );
}
