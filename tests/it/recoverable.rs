//! Recoverable: `/reset` (forgot password) and `/reset/<token>`.

use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

const NEW_PW: &str = "brand-new-pw1";
const INVALID: &str = "Invalid reset password token.";
const EXPIRED: &str = "You did not reset your password within 1 day.";
const DAY: i64 = 24 * 3600;

/// Asks for a reset mail for `email` and returns the link's token.
async fn request_reset(app: &App, email: &str) -> String {
    let (s, b) = app.post_json("/reset", json!({"email": email})).await;
    assert_eq!(s, Status::Ok, "{b}");
    let mail = app.mail(email, "Password reset instructions").await;
    link_token(&mail.text, "/reset")
}

async fn post_reset(
    app: &App,
    token: &str,
    pw: &str,
    confirm: &str,
) -> (Status, serde_json::Value) {
    app.post_json(
        &format!("/reset/{token}"),
        json!({"password": pw, "password_confirm": confirm}),
    )
    .await
}

#[rocket::async_test]
async fn forgot_password_mails_an_absolute_reset_link() {
    let app = app().await;
    let (email, _) = app.confirmed_user().await;
    app.sink.clear().await;
    let (s, b) = app.post_json("/reset", json!({"email": email})).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"], "anonymous endpoint: no user info");
    let mail = app.mail(&email, "Password reset instructions").await;
    assert_eq!(mail.subject, "Password reset instructions");
    assert_eq!(mail.to, vec![email.clone()]);
    assert!(mail.from.contains("no-reply@example.com"), "{}", mail.from);
    let token = link_token(&mail.text, "/reset");
    assert_eq!(
        link_url(&mail.text, "/reset"),
        format!("http://localhost/reset/{token}")
    );
    assert!(
        mail.html.contains(&format!("/reset/{token}")),
        "{}",
        mail.html
    );
    assert_eq!(app.all_mail().await.len(), 1, "exactly one mail");
    // The link leads to the SPA's reset view with the token.
    let r = app.client.get(format!("/reset/{token}")).dispatch().await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        r.headers().get_one("Cache-Control"),
        Some("private, no-store")
    );
    assert_eq!(
        location(&r),
        (
            "/reset-password".into(),
            vec![("token".into(), token.clone())]
        )
    );
    // The email is matched case-insensitively on the domain.
    let upper = email.replace("@example.com", "@EXAMPLE.COM");
    let (s, _) = app.post_json("/reset", json!({"email": upper})).await;
    assert_eq!(s, Status::Ok);
}

#[rocket::async_test]
async fn forgot_password_errors() {
    let app = app().await;
    let (unconfirmed, _, _) = app.register().await;
    app.sink.clear().await;
    let cases = [
        (
            json!({"email": unique_email()}),
            "Specified user does not exist",
        ),
        (
            json!({"email": unconfirmed}),
            "Email requires confirmation.",
        ),
        (json!({"email": DISABLED.0}), "Account is disabled."),
        (json!({}), "Email not provided"),
        (json!({"email": ""}), "Email not provided"),
        (json!({"email": "not-an-email"}), "Invalid email address"),
        (
            json!({"email": ["a@example.com"]}),
            "Input not appropriate for requested API",
        ),
    ];
    for (body, msg) in cases {
        let (s, b) = app.post_json("/reset", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error("email", msg), "{body}");
    }
    assert!(
        app.all_mail().await.is_empty(),
        "no mail for failed requests"
    );
    let (s, b) = app.get_json("/reset").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"]);
}

#[rocket::async_test]
async fn invalid_reset_tokens() {
    let app = app().await;
    let r = app.client.get("/reset/not-a-token").dispatch().await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/reset-password-error".into(),
            vec![("error".into(), INVALID.into())]
        )
    );
    let (s, b) = post_reset(&app, "not-a-token", NEW_PW, NEW_PW).await;
    assert_eq!((s, b), (Status::BadRequest, field_error("", INVALID)));
    // A token of another kind (a confirmation token) is not a reset token.
    let (_, _, mail) = app.register().await;
    let confirm = link_token(&mail.text, "/confirm");
    let r = app.client.get(format!("/reset/{confirm}")).dispatch().await;
    assert_eq!(location(&r).1, vec![("error".into(), INVALID.into())]);
    assert_eq!(
        post_reset(&app, &confirm, NEW_PW, NEW_PW).await.1,
        field_error("", INVALID)
    );
    // A tampered signature.
    let (email, _) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    // A character inside the signature (the last one may carry only padding bits).
    let at = token.len() - 5;
    let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
    assert_eq!(
        post_reset(&app, &tampered, NEW_PW, NEW_PW).await.1,
        field_error("", INVALID)
    );
    assert_eq!(
        post_reset(&app, &token, NEW_PW, NEW_PW).await.0,
        Status::Ok,
        "the genuine token still works"
    );
}

#[rocket::async_test]
async fn reset_password_full_flow() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    app.sink.clear().await;
    let (s, b) = post_reset(&app, &token, NEW_PW, NEW_PW).await;
    assert_eq!(
        (s, b),
        (Status::Ok, json!({})),
        "no auto-login: empty response"
    );
    assert_eq!(app.text("/").await.0, Status::Unauthorized, "not logged in");
    let notice = app.mail(&email, "Your password has been reset").await;
    assert_eq!(notice.to, vec![email.clone()]);
    assert_eq!(
        app.login(&email, &pw).await.1,
        field_error("password", "Invalid password")
    );
    let (s, b) = app.login(&email, NEW_PW).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(app.text("/").await.1, format!("Hello {email}!"));
}

#[rocket::async_test]
async fn reset_token_is_single_use_and_supersedes_older_links() {
    let app = app().await;
    let (email, _) = app.confirmed_user().await;
    let first = request_reset(&app, &email).await;
    app.clock.advance(2);
    let second = request_reset(&app, &email).await;
    assert_ne!(first, second);
    assert_eq!(
        post_reset(&app, &second, NEW_PW, NEW_PW).await.0,
        Status::Ok
    );
    // The used link is dead...
    let (s, b) = post_reset(&app, &second, "other-pass-9", "other-pass-9").await;
    assert_eq!((s, b), (Status::BadRequest, field_error("", INVALID)));
    let r = app.client.get(format!("/reset/{second}")).dispatch().await;
    assert_eq!(
        location(&r),
        (
            "/reset-password-error".into(),
            vec![("error".into(), INVALID.into())]
        )
    );
    // ...and so is the older, unused one.
    assert_eq!(
        post_reset(&app, &first, "other-pass-9", "other-pass-9")
            .await
            .1,
        field_error("", INVALID)
    );
    assert_eq!(
        app.login(&email, NEW_PW).await.0,
        Status::Ok,
        "the password is the one set by the first reset"
    );
}

#[rocket::async_test]
async fn reset_link_expires_after_one_day() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    app.clock.advance(DAY - 60);
    let r = app.client.get(format!("/reset/{token}")).dispatch().await;
    assert_eq!(
        location(&r).0,
        "/reset-password",
        "still valid just before a day"
    );
    app.clock.advance(120);
    app.sink.clear().await;
    let r = app.client.get(format!("/reset/{token}")).dispatch().await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/reset-password-error".into(),
            vec![("error".into(), EXPIRED.into())]
        )
    );
    let (s, b) = post_reset(&app, &token, NEW_PW, NEW_PW).await;
    assert_eq!((s, b), (Status::BadRequest, field_error("", EXPIRED)));
    assert!(
        app.all_mail().await.is_empty(),
        "an expired reset link sends nothing"
    );
    assert_eq!(
        app.login(&email, &pw).await.0,
        Status::Ok,
        "password unchanged"
    );
}

#[rocket::async_test]
async fn reset_ends_existing_sessions_and_auth_tokens() {
    let (a, b) = twin_apps(setup().await).await;
    let (email, pw) = a.confirmed_user().await;
    let token = a.token(&email, &pw).await;
    let (s, _) = a
        .post_json(
            "/login",
            json!({"email": email, "password": pw, "remember": true}),
        )
        .await;
    assert_eq!(s, Status::Ok);
    let remember = a
        .client
        .cookies()
        .get("remember_token")
        .expect("remember cookie")
        .clone();
    assert_eq!(a.text("/").await.0, Status::Ok);
    assert_eq!(a.token_status(&token).await, Status::Ok);
    // Another browser resets the password.
    let reset = request_reset(&b, &email).await;
    assert_eq!(post_reset(&b, &reset, NEW_PW, NEW_PW).await.0, Status::Ok);
    settle_changes().await;
    assert_eq!(a.text("/").await.0, Status::Unauthorized, "session ended");
    assert_eq!(
        a.token_status(&token).await,
        Status::Unauthorized,
        "token ended"
    );
    let r = b
        .client
        .get("/")
        .header(Header::new("Accept", "application/json"))
        .cookie(remember)
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Unauthorized, "remember cookie ended");
    assert_eq!(b.login(&email, NEW_PW).await.0, Status::Ok);
}

#[rocket::async_test]
async fn forgot_password_while_logged_in_needs_csrf() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app
        .post_json_no_csrf("/reset", json!({"email": email}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
    assert!(app.all_mail().await.is_empty());
    // Allowed for an authenticated user (who may have forgotten the password).
    let token = request_reset(&app, &email).await;
    assert_eq!(
        post_reset(&app, &token, NEW_PW, NEW_PW).await,
        (Status::Ok, json!({}))
    );
    assert_eq!(
        app.text("/").await.0,
        Status::Unauthorized,
        "the reset ended this session too"
    );
}

#[rocket::async_test]
async fn blank_passwords_are_not_provided() {
    // WTForms' DataRequired strips: whitespace-only counts as missing.
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    let blank = "        ";
    let (s, b) = post_reset(&app, &token, blank, blank).await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert_eq!(
        b["field_errors"],
        json!({"password": ["Password not provided"], "password_confirm": ["Password not provided"]}),
        "a whitespace-only password must not be accepted"
    );
    assert_eq!(
        app.try_login(&email, &pw).await,
        Status::Ok,
        "password unchanged"
    );
    let (s, b) = app.post_json("/reset", json!({"email": "   "})).await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("email", "Email not provided")
        )
    );
}

#[rocket::async_test]
async fn expired_link_reports_expiry_even_after_use() {
    // Flask-Security checks expiry before looking the user up
    // (views.reset_password: `if expired: PASSWORD_RESET_EXPIRED`), so a used
    // (uniquifier rotated) link that has also expired says it expired.
    let app = app().await;
    let (email, _) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    assert_eq!(post_reset(&app, &token, NEW_PW, NEW_PW).await.0, Status::Ok);
    app.clock.advance(DAY + 60);
    let r = app.client.get(format!("/reset/{token}")).dispatch().await;
    assert_eq!(
        location(&r),
        (
            "/reset-password-error".into(),
            vec![("error".into(), EXPIRED.into())]
        )
    );
    assert_eq!(
        post_reset(&app, &token, "other-pass-9", "other-pass-9")
            .await
            .1,
        field_error("", EXPIRED)
    );
}

#[rocket::async_test]
async fn reset_validation_errors_leave_the_token_usable() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = request_reset(&app, &email).await;
    let (s, b) = post_reset(&app, &token, NEW_PW, "something-else").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password_confirm", "Passwords do not match")
        )
    );
    let (s, b) = post_reset(&app, &token, "abc", "abc").await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password must be at least 6 characters")
        )
    );
    let (_, b) = app
        .post_json(&format!("/reset/{token}"), json!({"password": NEW_PW}))
        .await;
    assert_eq!(b, field_error("password_confirm", "Password not provided"));
    let (_, b) = app
        .post_json(
            &format!("/reset/{token}"),
            json!({"password_confirm": NEW_PW}),
        )
        .await;
    assert_eq!(
        b["field_errors"]["password"],
        json!(["Password not provided"])
    );
    let (_, b) = app
        .post_json(
            &format!("/reset/{token}"),
            json!({"password": 12345678, "password_confirm": NEW_PW}),
        )
        .await;
    assert_eq!(
        b["field_errors"]["password"],
        json!(["Input not appropriate for requested API"])
    );
    assert_eq!(
        app.login(&email, &pw).await.0,
        Status::Ok,
        "failed attempts changed nothing"
    );
    app.logout().await;
    assert_eq!(
        post_reset(&app, &token, NEW_PW, NEW_PW).await,
        (Status::Ok, json!({}))
    );
    assert_eq!(app.login(&email, NEW_PW).await.0, Status::Ok);
}

#[rocket::async_test]
async fn server_rendered_reset_flow() {
    let mut s = setup().await;
    s.opts.spa = false;
    let app = app_with(s, |r| r).await;
    let (email, _) = app.confirmed_user().await;
    let html_get = |path: String| {
        app.client
            .get(path)
            .header(Header::new("Accept", "text/html"))
            .dispatch()
    };

    // Forgot-password form post: the page says where the mail went.
    let r = app
        .client
        .post("/reset")
        .header(ContentType::Form)
        .header(Header::new("Accept", "text/html"))
        .body(format!("email={}", email.replace('@', "%40")))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    let html = r.into_string().await.unwrap_or_default();
    assert!(
        html.contains(&format!(
            "Instructions to reset your password have been sent to {email}."
        )),
        "{html}"
    );
    let token = link_token(
        &app.mail(&email, "Password reset instructions").await.text,
        "/reset",
    );

    let r = html_get(format!("/reset/{token}")).await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(r.content_type(), Some(ContentType::HTML));
    let html = r.into_string().await.unwrap_or_default();
    assert!(html.contains("name=\"password\""), "{html}");
    assert!(html.contains("name=\"password_confirm\""), "{html}");
    assert!(
        html.contains(&format!("reset&#x2F;{token}\"")),
        "form posts back to the link: {html}"
    );

    // A mismatch re-renders the form with the error.
    let post = |body: String| {
        app.client
            .post(format!("/reset/{token}"))
            .header(ContentType::Form)
            .header(Header::new("Accept", "text/html"))
            .body(body)
            .dispatch()
    };
    let r = post(format!("password={NEW_PW}&password_confirm=nope-nope")).await;
    assert_ne!(
        r.status(),
        Status::Found,
        "no redirect on a validation error"
    );
    assert!(
        r.into_string()
            .await
            .unwrap_or_default()
            .contains("Passwords do not match")
    );

    let r = post(format!("password={NEW_PW}&password_confirm={NEW_PW}")).await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(r.headers().get_one("Location"), Some("/login"));
    let html = html_get("/login".into())
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(
        html.contains(
            "You successfully reset your password. Please authenticate using your new password."
        ),
        "{html}"
    );
    assert_eq!(app.login(&email, NEW_PW).await.0, Status::Ok);
    app.logout().await;

    // A bad link sends the browser back to the forgot-password page with the error.
    let r = html_get(format!("/reset/{token}")).await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(r.headers().get_one("Location"), Some("/reset"));
    let html = html_get("/reset".into())
        .await
        .into_string()
        .await
        .unwrap_or_default();
    assert!(html.contains(INVALID), "{html}");
}

#[rocket::async_test]
async fn reset_mail_states_when_the_link_expires() {
    // Flask-Security 5.9 (PR 1249) passes `within` to reset_instructions:
    // "This link will expire in 1 day."
    let app = app().await;
    let (email, _) = app.confirmed_user().await;
    request_reset(&app, &email).await;
    let mail = app.mail(&email, "Password reset instructions").await;
    assert!(mail.text.contains("1 day"), "{}", mail.text);
}
