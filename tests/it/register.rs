//! `/register`, `/confirm`, and the mails they send over SMTP.

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

#[rocket::async_test]
async fn register_sends_welcome_mail_and_confirm_link_works() {
    let app = app().await;
    let (email, pw, mail) = app.register().await;
    assert_eq!(mail.to, vec![email.clone()]);
    assert!(mail.from.contains("no-reply@example.com"));
    assert!(mail.text.contains(&email));
    let token = link_token(&mail.text, "/confirm");
    assert!(
        mail.text
            .contains(&format!("http://localhost/confirm/{token}"))
            || mail.text.contains("/confirm/")
    );
    assert!(
        mail.html.contains(&format!("/confirm/{token}")),
        "{}",
        mail.html
    );
    assert_eq!(
        app.text("/").await.0,
        Status::Unauthorized,
        "registering does not log in"
    );
    let r = app.client.get(format!("/confirm/{token}")).dispatch().await;
    assert_eq!(r.status(), Status::Found);
    let (path, q) = location(&r);
    assert_eq!(path, "/confirmed");
    assert_eq!(
        q,
        vec![
            (
                "success".into(),
                "Thank you. Your email has been confirmed.".into()
            ),
            ("email".into(), email.clone()),
            ("identity".into(), email.clone())
        ]
    );
    assert_eq!(
        app.text("/").await.0,
        Status::Unauthorized,
        "no auto-login after confirm"
    );
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    // Re-using the link says so.
    let r = app.client.get(format!("/confirm/{token}")).dispatch().await;
    let (path, q) = location(&r);
    assert_eq!(
        (path.as_str(), q),
        (
            "/confirm-error",
            vec![(
                "info".into(),
                "Your email has already been confirmed.".into()
            )]
        )
    );
}

#[rocket::async_test]
async fn invalid_and_expired_confirm_tokens() {
    let app = app().await;
    let r = app
        .client
        .get("/confirm/not-a-valid-token")
        .dispatch()
        .await;
    assert_eq!(
        location(&r),
        (
            "/confirm-error".into(),
            vec![("error".into(), "Invalid confirmation token.".into())]
        )
    );
    let (email, _pw, mail) = app.register().await;
    let token = link_token(&mail.text, "/confirm");
    app.sink.clear().await;
    app.clock.advance(2 * 24 * 3600 + 60);
    let r = app.client.get(format!("/confirm/{token}")).dispatch().await;
    assert_eq!(
        location(&r),
        (
            "/confirm-error".into(),
            vec![(
                "error".into(),
                "You did not confirm your email within 2 days.".into()
            )]
        )
    );
    // A fresh link is sent.
    let again = app.mail(&email, "Please confirm your email").await;
    assert_ne!(link_token(&again.text, "/confirm"), token);
}

#[rocket::async_test]
async fn confirming_logs_out_another_user() {
    let app = app().await;
    let (_email, _pw, mail) = app.register().await;
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let token = link_token(&mail.text, "/confirm");
    let r = app.client.get(format!("/confirm/{token}")).dispatch().await;
    assert_eq!(location(&r).0, "/confirmed");
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn resend_confirmation() {
    let app = app().await;
    let (email, pw, _) = app.register().await;
    let (s, b) = app.post_json("/confirm", json!({"email": email})).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(
        b.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["csrf_token".to_string()])
    );
    let mail = app.mail(&email, "Please confirm your email").await;
    let r = app
        .client
        .get(format!("/confirm/{}", link_token(&mail.text, "/confirm")))
        .dispatch()
        .await;
    assert_eq!(location(&r).0, "/confirmed");
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.logout().await;
    let (s, b) = app.post_json("/confirm", json!({"email": email})).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Your email has already been confirmed."]})
    );
    let (_, b) = app
        .post_json("/confirm", json!({"email": "nobody@example.com"}))
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Specified user does not exist"]})
    );
}

#[rocket::async_test]
async fn register_validation_errors() {
    let app = app().await;
    let pw = "s3cret-pass";
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "password": "abc", "password_confirm": "abc"}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b,
        json!({"errors": ["Password must be at least 6 characters"], "field_errors": {"password": ["Password must be at least 6 characters"]}})
    );
    let (_, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "password": pw}),
        )
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"password_confirm": ["Password not provided"]})
    );
    let (_, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "password": pw, "password_confirm": "other-pass"}),
        )
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"password_confirm": ["Passwords do not match"]})
    );
    let (_, b) = app
        .post_json(
            "/register",
            json!({"email": "not-an-email", "password": pw, "password_confirm": pw}),
        )
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["Invalid email address"]})
    );
    let (_, b) = app
        .post_json("/register", json!({"password": pw, "password_confirm": pw}))
        .await;
    assert_eq!(b["field_errors"], json!({"email": ["Email not provided"]}));
    let (_, b) = app
        .post_json(
            "/register",
            json!({"email": "USER@example.com", "password": pw, "password_confirm": pw}),
        )
        .await;
    assert_eq!(
        b["field_errors"],
        json!({"email": ["USER@example.com is already associated with an account."]})
    );
    for (name, msg) in [
        (
            "abc",
            "Username must be at least 4 characters and less than 32 characters",
        ),
        ("bad name!", "Username can contain only letters and numbers"),
        ("<b>bold</b>", "Value entered is not valid for the field"),
    ] {
        let (_, b) = app.post_json("/register", json!({"email": unique_email(), "password": pw, "password_confirm": pw, "username": name})).await;
        assert_eq!(b["field_errors"], json!({"username": [msg]}), "{name}");
    }
    let (_, b) = app.post_json("/register", json!({"email": unique_email(), "password": pw, "password_confirm": pw, "username": "admin"})).await;
    assert_eq!(
        b["field_errors"],
        json!({"username": ["admin is already associated with an account."]})
    );
    // Nothing half-written: none of the failed attempts left a user behind.
    let (_, b) = app.post_json("/register", json!({"email": unique_email(), "password": pw, "password_confirm": pw, "username": "freshname1"})).await;
    assert_eq!(b["user"], json!({}));
}

#[rocket::async_test]
async fn register_get_and_while_logged_in() {
    let app = app().await;
    let (s, b) = app.get_json("/register").await;
    assert_eq!(s, Status::Ok);
    assert!(b["csrf_token"].is_string());
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let (s, b) = app.get_json("/register").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["You can only access this endpoint when not logged in."]})
        )
    );
}

#[rocket::async_test]
async fn html_forms_render() {
    let app = app().await;
    for path in ["/login", "/register", "/confirm"] {
        let r = app
            .client
            .get(path)
            .header(Header::new("Accept", "text/html"))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Ok, "{path}");
        assert_eq!(r.content_type(), Some(rocket::http::ContentType::HTML));
        let html = r.into_string().await.unwrap_or_default();
        assert!(html.contains("name=\"csrf_token\""), "{path}: {html}");
        assert!(html.contains("<form"), "{path}");
    }
}
