//! `security.return_generic_responses = true`: nothing reveals whether an
//! identity exists.

use rocket::http::Status;
use serde_json::json;

use crate::common::*;

const GENERIC: &str = "Authentication failed - identity or password/passcode invalid";
const PW: &str = "s3cret-pass";

async fn generic_app() -> App {
    let mut s = setup().await;
    s.opts.generic_responses = true;
    app_with(s, |r| r).await
}

#[rocket::async_test]
async fn login_failures_are_generic() {
    let app = generic_app().await;
    let (unconfirmed, unconfirmed_pw, _) = app.register().await;
    let cases = [
        json!({"email": USER.0, "password": "wrong-password"}),
        json!({"email": "nobody-generic@example.com", "password": "whatever1"}),
        json!({"username": "nosuchuser77", "password": "whatever1"}),
        json!({"username": "user", "password": "wrong-password"}),
        json!({"email": DISABLED.0, "password": DISABLED.1}),
        json!({"email": DISABLED.0, "password": "wrong-password"}),
        json!({"email": unconfirmed, "password": unconfirmed_pw}),
    ];
    for body in cases {
        let (s, b) = app.post_json("/login", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error("", GENERIC), "{body}");
    }
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
    // Success is unchanged.
    let (s, b) = app.login(USER.0, USER.1).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["tf_required"], json!(false));
    assert_eq!(app.text("/").await.1, "Hello user@example.com!");
}

#[rocket::async_test]
async fn reset_and_confirm_answer_200_for_unknown_addresses() {
    let app = generic_app().await;
    let (unconfirmed, _, _) = app.register().await;
    app.sink.clear().await;
    for path in ["/reset", "/confirm"] {
        let (s, b) = app.post_json(path, json!({"email": unique_email()})).await;
        assert_eq!(s, Status::Ok, "{path}: {b}");
        assert_eq!(keys(&b), ["csrf_token"], "{path}");
    }
    // Neither do disabled / unconfirmed accounts get a reset mail, nor confirmed ones a confirmation.
    assert_eq!(
        app.post_json("/reset", json!({"email": DISABLED.0}))
            .await
            .0,
        Status::Ok
    );
    assert_eq!(
        app.post_json("/reset", json!({"email": unconfirmed}))
            .await
            .0,
        Status::Ok
    );
    assert_eq!(
        app.post_json("/confirm", json!({"email": USER.0})).await.0,
        Status::Ok
    );
    assert!(
        app.all_mail().await.is_empty(),
        "nothing sent: {:?}",
        app.all_mail().await
    );

    // Known addresses: same shape, and the mail goes out.
    let (email, _) = app.confirmed_user().await;
    let (s, b) = app.post_json("/reset", json!({"email": email})).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"]);
    assert!(
        !link_token(
            &app.mail(&email, "Password reset instructions").await.text,
            "/reset"
        )
        .is_empty()
    );
    let (s, b) = app
        .post_json("/confirm", json!({"email": unconfirmed}))
        .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"]);
    app.mail(&unconfirmed, "Please confirm your email").await;
}

#[rocket::async_test]
async fn register_existing_confirmed_email_mails_the_owner() {
    let app = generic_app().await;
    let (email, pw) = app.confirmed_user().await;
    app.sink.clear().await;
    let attempt = "attempted-pass-2";
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": attempt, "password_confirm": attempt}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token"], "no user key");
    let mail = app.mail(&email, "Welcome").await;
    assert!(mail.text.contains("already in our system"), "{}", mail.text);
    let token = link_token(&mail.text, "/reset");
    assert!(
        !mail.text.contains("/confirm/"),
        "a confirmed owner gets no confirm link: {}",
        mail.text
    );
    assert_eq!(app.all_mail().await.len(), 1);
    // The offered reset link is a working one.
    let r = app.client.get(format!("/reset/{token}")).dispatch().await;
    assert_eq!(
        location(&r),
        ("/reset-password".into(), vec![("token".into(), token)])
    );
    // The account is untouched.
    assert_eq!(app.try_login(&email, &pw).await, Status::Ok);
    assert_eq!(app.try_login(&email, attempt).await, Status::BadRequest);
}

#[rocket::async_test]
async fn register_existing_unconfirmed_email_offers_a_confirm_link() {
    let app = generic_app().await;
    let (email, pw, _) = app.register().await;
    app.sink.clear().await;
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token"]);
    let mail = app.mail(&email, "Welcome").await;
    assert!(mail.text.contains("already in our system"), "{}", mail.text);
    link_token(&mail.text, "/reset");
    let confirm = link_token(&mail.text, "/confirm");
    let r = app
        .client
        .get(format!("/confirm/{confirm}"))
        .dispatch()
        .await;
    assert_eq!(location(&r).0, "/confirmed");
    assert_eq!(
        app.try_login(&email, &pw).await,
        Status::Ok,
        "the original password"
    );
}

#[rocket::async_test]
async fn register_taken_username_mails_the_new_address() {
    let app = generic_app().await;
    let email = unique_email();
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "username": "admin", "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token"], "no user key");
    let mail = app.mail(&email, "Welcome").await;
    assert_eq!(mail.to, vec![email.clone()]);
    assert!(mail.text.contains("admin"), "{}", mail.text);
    assert!(
        !mail.text.contains("/confirm/"),
        "no account, no confirm link: {}",
        mail.text
    );
    assert!(
        app.all_mail().await.iter().all(|m| !m.is_to(ADMIN.0)),
        "the owner of the name is not told"
    );
    // No account was created for the address: registering it again works.
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(b["user"], json!({}), "a real registration this time: {b}");
}

#[rocket::async_test]
async fn password_errors_are_still_reported() {
    let app = generic_app().await;
    let (email, _) = app.confirmed_user().await;
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "password": "abc", "password_confirm": "abc"}),
        )
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password must be at least 6 characters")
        )
    );
    // Even for an existing address, which must not change the answer's shape.
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "password": "abc", "password_confirm": "abc"}),
        )
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Password must be at least 6 characters")
        )
    );
    let (_, b) = app
        .post_json(
            "/register",
            json!({"email": unique_email(), "password": PW, "password_confirm": "other-pass"}),
        )
        .await;
    assert_eq!(b, field_error("password_confirm", "Passwords do not match"));
}

#[rocket::async_test]
async fn change_email_to_an_existing_address_is_silent() {
    let app = generic_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let (s, b) = app
        .post_json("/change-email", json!({"email": ADMIN.0}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token", "current_email", "user"]);
    assert_eq!(b["current_email"], json!(email));
    assert!(
        app.all_mail().await.is_empty(),
        "no mail: {:?}",
        app.all_mail().await
    );
    // A free address still gets its confirmation mail.
    let new = unique_email();
    assert_eq!(
        app.post_json("/change-email", json!({"email": new}))
            .await
            .0,
        Status::Ok
    );
    app.mail(&new, "Confirm your new email address").await;
}

#[rocket::async_test]
async fn authenticated_endpoints_keep_detailed_errors() {
    let app = generic_app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json("/change", json!({"password": "wrong-one", "new_password": "abcdefgh", "new_password_confirm": "abcdefgh"}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("password", "Invalid password")
        )
    );
    let (s, b) = app
        .post_json("/change-username", json!({"username": "admin"}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("username", "admin is already associated with an account.")
        )
    );
}

#[rocket::async_test]
async fn server_rendered_forgot_password_looks_like_success() {
    // Flask-Security (views.forgot_password, tests/test_recoverable.py::
    // test_generic_response) flashes PASSWORD_RESET_REQUEST with the submitted
    // address for unknown addresses too: the page is exactly the success page.
    let mut s = setup().await;
    s.opts.generic_responses = true;
    s.opts.spa = false;
    let app = app_with(s, |r| r).await;
    let (known, _) = app.confirmed_user().await;
    for email in [unique_email(), known] {
        let r = app
            .client
            .post("/reset")
            .header(rocket::http::ContentType::Form)
            .header(rocket::http::Header::new("Accept", "text/html"))
            .body(format!("email={}", email.replace('@', "%40")))
            .dispatch()
            .await;
        assert_eq!(r.status(), Status::Ok);
        let html = r.into_string().await.unwrap_or_default();
        assert!(
            html.contains(&format!(
                "Instructions to reset your password have been sent to {email}."
            )),
            "{email}: {html}"
        );
    }
}
