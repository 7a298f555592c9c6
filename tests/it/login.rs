//! `/login`, `/logout`, remember-me, trackable, rehashing.

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn get_login_gives_csrf_token_and_cookie() {
    let app = app().await;
    let r = app
        .client
        .get("/login")
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    let cookie = r
        .cookies()
        .get("XSRF-TOKEN")
        .map(|c| (c.value().to_string(), c.http_only(), c.secure()));
    let (status, body) = json_of(r).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["identity_attributes"], json!(["email", "username"]));
    let (value, http_only, secure) = cookie.expect("XSRF-TOKEN cookie");
    assert_eq!(body["csrf_token"].as_str(), Some(value.as_str()));
    assert_ne!(
        http_only,
        Some(true),
        "CSRF cookie must be readable by scripts"
    );
    assert_eq!(secure, Some(true));
}

#[rocket::async_test]
async fn login_success_then_logout() {
    let app = app().await;
    let (status, body) = app.login(USER.0, USER.1).await;
    assert_eq!(status, Status::Ok);
    assert_eq!(body["user"], json!({}));
    assert_eq!(body["tf_required"], json!(false));
    assert!(body["csrf_token"].is_string());
    assert_eq!(
        app.text("/").await,
        (Status::Ok, "Hello user@example.com!".to_string())
    );
    let r = app
        .client
        .post("/logout")
        .header(ContentType::JSON)
        .body("{}")
        .dispatch()
        .await;
    let removed: Vec<String> = r.headers().get("Set-Cookie").map(String::from).collect();
    let (status, body) = json_of(r).await;
    assert_eq!((status, body), (Status::Ok, json!({})));
    assert!(
        removed
            .iter()
            .any(|c| c.starts_with("session=") && c.contains("Max-Age=0")),
        "{removed:?}"
    );
    assert!(
        removed
            .iter()
            .any(|c| c.starts_with("XSRF-TOKEN=") && c.contains("Max-Age=0")),
        "{removed:?}"
    );
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn login_failures_use_flask_security_messages() {
    let app = app().await;
    let (s, b) = app.login(USER.0, "wrong-password").await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b,
        json!({"errors": ["Invalid password"], "field_errors": {"password": ["Invalid password"]}})
    );
    let (s, b) = app.login("nobody@example.com", "whatever1").await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Specified user does not exist"]})
    );
    // A disabled account says so only with the right password.
    let (_, b) = app.login(DISABLED.0, "wrong-password").await;
    assert_eq!(b["field_errors"], json!({"password": ["Invalid password"]}));
    let (_, b) = app.login(DISABLED.0, DISABLED.1).await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Account is disabled."]})
    );
    let (_, b) = app.post_json("/login", json!({"email": USER.0})).await;
    assert_eq!(
        b["field_errors"],
        json!({"password": ["Password not provided"]})
    );
    let (s, b) = app
        .post_json("/login", json!({"email": {"a": 1}, "password": "x"}))
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"]["email"],
        json!(["Input not appropriate for requested API"])
    );
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn login_by_username_case_insensitive_identity() {
    let app = app().await;
    let (s, _) = app
        .post_json("/login", json!({"username": "USER", "password": USER.1}))
        .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(app.text("/").await.1, "Hello user@example.com!");
}

#[rocket::async_test]
async fn unconfirmed_user_cannot_log_in() {
    let app = app().await;
    let (email, pw, _) = app.register().await;
    let (s, b) = app.login(&email, &pw).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Email requires confirmation."]})
    );
}

#[rocket::async_test]
async fn login_when_logged_in_is_refused() {
    let app = app().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let (s, b) = app.login(ADMIN.0, ADMIN.1).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b,
        json!({"errors": ["You can only access this endpoint when not logged in."]})
    );
    assert_eq!(app.text("/").await.1, "Hello user@example.com!");
}

#[rocket::async_test]
async fn remember_cookie_restores_the_session() {
    let app = app().await;
    let r = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({"email": USER.0, "password": USER.1, "remember": true}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let remember = r
        .cookies()
        .get("remember_token")
        .expect("remember cookie")
        .clone();
    assert_eq!(remember.http_only(), Some(true));
    assert!(remember.expires().is_some());
    // Only the remember cookie: it alone authenticates.
    let r = app
        .client
        .get("/")
        .cookie(remember.clone())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    // A forged one does not.
    let forged = rocket::http::Cookie::new("remember_token", format!("{}x", remember.value()));
    let fresh = app_with(setup().await, |r| r).await;
    let r = fresh
        .client
        .get("/")
        .header(Header::new("Accept", "application/json"))
        .cookie(forged)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized);
}

#[rocket::async_test]
async fn form_login_redirects_to_next_or_root() {
    let app = app().await;
    let r = app
        .client
        .post("/login?next=/user-data")
        .header(ContentType::Form)
        .header(Header::new("Accept", "text/html"))
        .body(format!("email={}&password={}", USER.0, USER.1))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(r.headers().get_one("Location"), Some("/user-data"));
    let bad = app_with(setup().await, |r| r).await;
    let r = bad
        .client
        .post("/login?next=//evil.example.com/")
        .header(ContentType::Form)
        .header(Header::new("Accept", "text/html"))
        .body(format!("email={}&password={}", USER.0, USER.1))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let html = r.into_string().await.unwrap_or_default();
    assert!(
        html.contains("Redirections outside the domain are forbidden"),
        "{html}"
    );
    assert_eq!(bad.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn json_login_rejects_offsite_next() {
    let app = app().await;
    for next in [
        "http://evil.example.com/",
        "//evil.com",
        "///evil.com",
        "javascript:alert(1)",
        "https://evil.com",
    ] {
        let (s, b) = app
            .post_json(
                "/login",
                json!({"email": USER.0, "password": USER.1, "next": next}),
            )
            .await;
        assert_eq!(s, Status::BadRequest, "{next}");
        assert_eq!(
            b["field_errors"],
            json!({"next": ["Redirections outside the domain are forbidden"]}),
            "{next}"
        );
    }
    let (s, _) = app
        .post_json(
            "/login",
            json!({"email": USER.0, "password": USER.1, "next": "/user-data"}),
        )
        .await;
    assert_eq!(s, Status::Ok);
}

#[rocket::async_test]
async fn login_updates_trackable_columns() {
    use flask_security_rs::Lookup;
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let state = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let before = state
        .datastore()
        .find_user(Lookup::Email(&email))
        .await
        .expect("db")
        .expect("user");
    assert_eq!(before.login_count, None);
    let r = app
        .client
        .post("/login")
        .remote("10.1.2.3:4567".parse().expect("addr"))
        .header(ContentType::JSON)
        .body(json!({"email": email, "password": pw}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let after = state
        .datastore()
        .find_user(Lookup::Email(&email))
        .await
        .expect("db")
        .expect("user");
    assert_eq!(after.login_count, Some(1));
    assert!(after.current_login_at.is_some());
    assert_eq!(after.current_login_ip.as_deref(), Some("10.1.2.3"));
}

#[rocket::async_test]
async fn legacy_bcrypt_hash_is_accepted_and_rehashed() {
    use flask_security_rs::{Lookup, NewUser};
    // Vector captured from Flask-Security (salt "salty-salt", password "password").
    const BCRYPT: &str = "$2b$12$34XxUHyeYYkRfP/90v5Sa.OsKdKr1ifjcdl5DfS5vwnWpGgOAUbv.";
    let mut s = setup().await;
    s.opts.password_salt = "salty-salt".into();
    let app = app_with(s, |r| r).await;
    let state = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let email = unique_email();
    let new = NewUser {
        email: email.clone(),
        password_hash: Some(BCRYPT.into()),
        active: true,
        confirmed_at: Some(flask_security_rs::Clock::new().naive_utc()),
        ..Default::default()
    };
    let user = state.datastore().create_user(new).await.expect("create");
    assert_eq!(app.login(&email, "wrong").await.0, Status::BadRequest);
    assert_eq!(app.login(&email, "password").await.0, Status::Ok);
    let after = state
        .datastore()
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert!(
        after.password_hash().starts_with("$argon2id$"),
        "rehashed: {}",
        after.password_hash()
    );
    app.logout().await;
    assert_eq!(app.login(&email, "password").await.0, Status::Ok);
}

#[rocket::async_test]
async fn bad_input_gets_an_envelope_not_a_500() {
    let app = app().await;
    for body in ["{not json", "[1,2]", "\"text\""] {
        let r = app
            .client
            .post("/login")
            .header(ContentType::JSON)
            .body(body)
            .dispatch()
            .await;
        let (s, b) = json_of(r).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(
            b,
            json!({"errors": ["Input not appropriate for requested API"]}),
            "{body}"
        );
    }
    let huge = format!("{{\"email\": \"{}\"}}", "a".repeat(70 * 1024));
    let r = app
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(huge)
        .dispatch()
        .await;
    let (s, _) = json_of(r).await;
    assert_eq!(s, Status::PayloadTooLarge);
    for (field, value) in [
        ("password", json!(12)),
        ("email", json!(["a"])),
        ("remember", json!({"x": 1})),
    ] {
        let mut body = json!({"email": USER.0, "password": USER.1});
        body[field] = value;
        let (s, b) = app.post_json("/login", body).await;
        assert_eq!(s, Status::BadRequest, "{field}");
        assert_eq!(
            b["field_errors"][field],
            json!(["Input not appropriate for requested API"]),
            "{field}"
        );
    }
}

#[rocket::async_test]
async fn wrong_method_is_405_with_allow() {
    let app = app().await;
    let r = app.client.get("/logout").dispatch().await;
    assert_eq!(r.status(), Status::MethodNotAllowed);
    assert_eq!(r.headers().get_one("Allow"), Some("OPTIONS, POST"));
    let r = app.client.delete("/login").dispatch().await;
    assert_eq!(r.status(), Status::MethodNotAllowed);
    let r = app.client.options("/login").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        r.headers().get_one("Allow"),
        Some("GET, HEAD, OPTIONS, POST")
    );
    // The app's own routes are untouched.
    assert_eq!(
        app.client.delete("/api/data").dispatch().await.status(),
        Status::NotFound
    );
}

#[rocket::async_test]
async fn identity_missing_null_or_blank() {
    let app = app().await;
    let (_, b) = app.post_json("/login", json!({"password": "x"})).await;
    assert_eq!(
        b["field_errors"],
        json!({"": ["Specified user does not exist"]})
    );
    let (_, b) = app
        .post_json("/login", json!({"email": null, "password": "x"}))
        .await;
    assert_eq!(b["field_errors"], json!({"email": ["Email not provided"]}));
    let (_, b) = app
        .post_json("/login", json!({"email": "  ", "password": "x"}))
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Specified user does not exist"]})
    );
    let (_, b) = app
        .post_json("/login", json!({"email": "not-an-email", "password": "x"}))
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Invalid email address"]})
    );
    let (_, b) = app
        .post_json("/login", json!({"username": "a@b", "password": "x"}))
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"username": ["Username can contain only letters and numbers"]})
    );
    let (s, _) = app
        .post_json(
            "/login",
            json!({"email": USER.0, "password": USER.1, "next": ""}),
        )
        .await;
    assert_eq!(s, Status::Ok, "an empty next is ignored");
}
