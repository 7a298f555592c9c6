//! CSRF for session-authenticated unsafe requests.

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn session_posts_need_the_csrf_header() {
    let app = app().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let (s, b) = app.post_json_no_csrf("/api/data", json!({})).await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
    let token = app.csrf_cookie().expect("cookie");
    let r = app
        .post_with_header("/api/data", "X-XSRF-Token", &token, json!({}))
        .await;
    assert_eq!(r.status(), Status::Ok);
    let garbage = app
        .post_with_header("/api/data", "X-XSRF-Token", "garbage", json!({}))
        .await;
    assert_eq!(
        json_of(garbage).await,
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is invalid."]})
        )
    );
    // The other accepted header names.
    let token = app.csrf_cookie().expect("cookie");
    for h in ["X-CSRFToken", "X-CSRF-Token"] {
        let r = app
            .client
            .post("/api/data")
            .header(ContentType::JSON)
            .header(Header::new(h, token.clone()))
            .body("{}")
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Ok, "{h}");
    }
    // A csrf_token in a JSON body does not count.
    let r = app
        .client
        .post("/api/data")
        .header(ContentType::JSON)
        .body(json!({"csrf_token": token}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::BadRequest);
}

#[rocket::async_test]
async fn token_of_another_session_does_not_match() {
    let a = app().await;
    assert_eq!(a.login(USER.0, USER.1).await.0, Status::Ok);
    let other = app_with(setup().await, |r| r).await;
    let (_, b) = other.get_json("/login").await;
    let foreign = b["csrf_token"].as_str().expect("token").to_string();
    // Both apps share the secret key, so the foreign token has a valid signature.
    let r = a
        .post_with_header("/api/data", "X-XSRF-Token", &foreign, json!({}))
        .await;
    assert_eq!(
        json_of(r).await,
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF tokens do not match."]})
        )
    );
}

#[rocket::async_test]
async fn anonymous_endpoints_and_token_requests_skip_csrf() {
    let app = app().await;
    let (s, _) = app
        .post_json_no_csrf("/login", json!({"email": USER.0, "password": USER.1}))
        .await;
    assert_eq!(s, Status::Ok);
    app.logout().await;
    let token = app.token(USER.0, USER.1).await;
    let r = app
        .post_with_header("/api/data", "X-Auth-Token", &token, json!({}))
        .await;
    assert_eq!(r.status(), Status::Ok);
}

#[rocket::async_test]
async fn logged_in_login_is_csrf_checked_first() {
    let app = app().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let (s, b) = app
        .post_json_no_csrf("/login", json!({"email": ADMIN.0, "password": ADMIN.1}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
}

#[rocket::async_test]
async fn csrf_token_of_a_session_is_dropped_at_logout() {
    let app = app().await;
    let (_, b) = app.login(USER.0, USER.1).await;
    let before = b["csrf_token"].as_str().expect("token").to_string();
    let r = app
        .client
        .post("/api/data")
        .header(ContentType::JSON)
        .header(Header::new("X-XSRF-Token", before.clone()))
        .body("{}")
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok, "the session's own token passes");
    app.logout().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let r = app
        .post_with_header("/api/data", "X-XSRF-Token", &before, json!({}))
        .await;
    assert_eq!(
        json_of(r).await,
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF tokens do not match."]})
        )
    );
}

#[rocket::async_test]
async fn csrf_token_is_rotated_at_login() {
    let app = app().await;
    let (_, before) = app.get_json("/login").await;
    let old = before["csrf_token"].as_str().expect("token").to_string();
    let (s, after) = app.login(USER.0, USER.1).await;
    assert_eq!(s, Status::Ok);
    let new = after["csrf_token"].as_str().expect("token").to_string();
    assert_ne!(old, new);
    assert_eq!(app.csrf_cookie().as_deref(), Some(new.as_str()));
    // The pre-login token no longer passes; the new one does.
    let r = app
        .post_with_header("/api/data", "X-XSRF-Token", &old, json!({}))
        .await;
    assert_eq!(r.status(), Status::BadRequest);
    let r = app
        .post_with_header("/api/data", "X-XSRF-Token", &new, json!({}))
        .await;
    assert_eq!(r.status(), Status::Ok);
}
