//! Input the reference app accepts, answered the way it answers it.

use rocket::http::{ContentType, Header, Method, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn empty_next_on_register_is_no_redirect() {
    let app = app().await;
    let email = unique_email();
    let (s, b) = app
        .post_json(
            "/register?next=",
            json!({"email": email, "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let (s, b) = app
        .post_json(
            "/register?next=https://evil.example/",
            json!({"email": unique_email(), "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"]["next"],
        json!(["Redirections outside the domain are forbidden"])
    );
}

#[rocket::async_test]
async fn username_length_is_counted_after_nfkd() {
    let app = app().await;
    // Two letters, four code points once decomposed: long enough (minimum 4).
    let name = "\u{00dd}\u{00cc}";
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "username": name, "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "username": "ab", "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"]["username"],
        json!(["Username must be at least 4 characters and less than 32 characters"])
    );
}

#[rocket::async_test]
async fn authentication_comes_before_the_body() {
    let app = app().await;
    for path in ["/change", "/change-email", "/change-username"] {
        let r = app
            .client
            .post(path)
            .header(ContentType::JSON)
            .body("[]")
            .dispatch()
            .await;
        let (s, b) = json_of(r).await;
        assert_eq!(s, Status::Unauthorized, "{path}: {b}");
    }
    // Signed in, the same body is a 400.
    app.login(USER.0, USER.1).await;
    let csrf = app.csrf_cookie().expect("csrf cookie");
    let r = app
        .client
        .post("/change")
        .header(ContentType::JSON)
        .header(Header::new("X-XSRF-Token", csrf))
        .body("[]")
        .dispatch()
        .await;
    let (s, b) = json_of(r).await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(
        b["errors"],
        json!(["Input not appropriate for requested API"])
    );
}

#[rocket::async_test]
async fn trace_is_405_with_allow() {
    let app = app().await;
    let r = app.client.req(Method::Trace, "/login").dispatch().await;
    assert_eq!(r.status(), Status::MethodNotAllowed);
    let allow = r.headers().get_one("Allow").unwrap_or_default().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

/// `auth_token` past the first 512 bytes of a JSON body (all Rocket lets a
/// fairing peek at) still authenticates: on the library's endpoints, and on
/// an application route taking `TokenJson`.
#[rocket::async_test]
async fn auth_token_deep_in_a_json_body_is_found() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    let padding = "x".repeat(4000);
    // /change: authenticated by the body's token, so the wrong current
    // password is what it reports (not a 401).
    let body = json!({"padding": padding, "password": "wrong-one", "new_password": "another-pass1", "new_password_confirm": "another-pass1", "auth_token": token});
    let (s, b) = app.post_json_no_csrf("/change", body).await;
    assert_eq!(
        (s, &b["field_errors"]["password"]),
        (Status::BadRequest, &json!(["Invalid password"])),
        "{b}"
    );
    // Without it, 401.
    let body = json!({"padding": padding, "password": "wrong-one", "new_password": "another-pass1", "new_password_confirm": "another-pass1"});
    assert_eq!(
        app.post_json_no_csrf("/change", body).await.0,
        Status::Unauthorized
    );
    // An app route.
    let r = app
        .client
        .post("/api/echo")
        .header(ContentType::JSON)
        .body(json!({"padding": padding, "note": "hi", "auth_token": token}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let v: serde_json::Value =
        serde_json::from_str(&r.into_string().await.unwrap_or_default()).unwrap();
    assert_eq!(v, json!({"user": email, "note": "hi"}));
    let tampered = format!("{}x", &token);
    let r = app
        .client
        .post("/api/echo")
        .header(ContentType::JSON)
        .header(rocket::http::Header::new("Accept", "application/json"))
        .body(json!({"padding": padding, "note": "hi", "auth_token": tampered}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
}
