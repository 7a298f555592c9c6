//! Change email: `/change-email` and `/change-email/<token>`.

use rocket::http::{Header, Status};
use serde_json::json;

use crate::common::*;

const SUBJECT: &str = "Confirm your new email address";
const CONFIRMED: &str = "Change of email address confirmed";
const API_ERROR: &str = "Input not appropriate for requested API";
const UNAUTHN: &str = "You must sign in to view this resource.";

/// A confirmed, logged-in user: (email, password).
async fn logged_in(app: &App) -> (String, String) {
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    (email, pw)
}

/// Asks to move to `new_email`; returns the link's token.
async fn start_change(app: &App, new_email: &str) -> String {
    let (s, b) = app
        .post_json("/change-email", json!({"email": new_email}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    link_token(&app.mail(new_email, SUBJECT).await.text, "/change-email")
}

#[rocket::async_test]
async fn get_change_email_json() {
    let app = app().await;
    let (email, _) = logged_in(&app).await;
    let (s, b) = app.get_json("/change-email").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(
        b,
        json!({"current_email": email, "user": {}, "csrf_token": b["csrf_token"].clone()})
    );
    assert!(b["csrf_token"].is_string());
    let html = app
        .client
        .get("/change-email")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(html.status(), Status::Ok);
    assert!(
        html.into_string()
            .await
            .unwrap_or_default()
            .contains(&email)
    );
}

#[rocket::async_test]
async fn change_email_full_flow() {
    let app = app().await;
    let (old, pw) = logged_in(&app).await;
    let new = unique_email();
    app.sink.clear().await;
    let (s, b) = app.post_json("/change-email", json!({"email": new})).await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token", "current_email", "user"]);
    assert_eq!(b["current_email"], json!(old), "unchanged until confirmed");
    assert_eq!(b["user"], json!({}));

    let mail = app.mail(&new, SUBJECT).await;
    assert_eq!(mail.to, vec![new.clone()]);
    assert!(
        mail.text.contains(&old),
        "mentions the current address: {}",
        mail.text
    );
    let token = link_token(&mail.text, "/change-email");
    assert_eq!(
        link_url(&mail.text, "/change-email"),
        format!("http://localhost/change-email/{token}")
    );
    assert_eq!(
        app.all_mail().await.len(),
        1,
        "nothing goes to the old address"
    );
    assert_eq!(app.text("/").await.1, format!("Hello {old}!"));

    let r = app
        .client
        .get(format!("/change-email/{token}"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/change-email-confirmed".into(),
            vec![
                ("success".into(), CONFIRMED.into()),
                ("email".into(), new.clone()),
                ("identity".into(), new.clone())
            ]
        )
    );
    // The session continues, now showing the new address.
    assert_eq!(app.text("/").await, (Status::Ok, format!("Hello {new}!")));
    assert_eq!(
        app.get_json("/change-email").await.1["current_email"],
        json!(new)
    );

    app.logout().await;
    assert_eq!(
        app.login(&old, &pw).await.1,
        field_error("email", "Specified user does not exist")
    );
    assert_eq!(app.login(&new, &pw).await.0, Status::Ok);

    // The link is single use.
    let r = app
        .client
        .get(format!("/change-email/{token}"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/change-email-error".into(),
            vec![("error".into(), API_ERROR.into())]
        )
    );
    assert_eq!(app.text("/").await.1, format!("Hello {new}!"));
}

#[rocket::async_test]
async fn change_email_link_works_without_a_session() {
    let (a, b) = twin_apps(setup().await).await;
    let (old, pw) = logged_in(&a).await;
    let new = unique_email();
    let token = start_change(&a, &new).await;
    // Clicked in another, anonymous browser.
    let r = b
        .client
        .get(format!("/change-email/{token}"))
        .dispatch()
        .await;
    assert_eq!(location(&r).0, "/change-email-confirmed");
    assert_eq!(
        b.text("/").await.0,
        Status::Unauthorized,
        "confirming does not log in"
    );
    assert_eq!(b.login(&new, &pw).await.0, Status::Ok);
    assert_eq!(
        a.text("/").await.1,
        format!("Hello {new}!"),
        "the requesting session continues"
    );
    b.logout().await;
    assert_eq!(b.try_login(&old, &pw).await, Status::BadRequest);
}

#[rocket::async_test]
async fn change_email_link_expires_after_two_hours() {
    let app = app().await;
    let (old, _) = logged_in(&app).await;
    let new = unique_email();
    let token = start_change(&app, &new).await;
    app.clock.advance(2 * 3600 + 60);
    let r = app
        .client
        .get(format!("/change-email/{token}"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/change-email-error".into(),
            vec![(
                "error".into(),
                "Confirmation must be completed within 2 hours. Please start over.".into()
            )]
        )
    );
    assert_eq!(
        app.text("/").await.1,
        format!("Hello {old}!"),
        "email unchanged"
    );
}

#[rocket::async_test]
async fn change_email_link_fails_when_the_address_was_taken_meanwhile() {
    let (a, b) = twin_apps(setup().await).await;
    let (old, _) = logged_in(&a).await;
    let new = unique_email();
    let token = start_change(&a, &new).await;
    // Someone registers the new address before the link is clicked.
    let (s, body) = b
        .post_json(
            "/register",
            json!({"email": new, "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{body}");
    let r = a
        .client
        .get(format!("/change-email/{token}"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    // Flask-Security (change_email._verify_token_status) answers "invalid", i.e.
    // API_ERROR, so the link does not reveal that the address is now registered.
    assert_eq!(
        location(&r),
        (
            "/change-email-error".into(),
            vec![("error".into(), API_ERROR.into())]
        )
    );
    assert_eq!(
        a.text("/").await.1,
        format!("Hello {old}!"),
        "email unchanged"
    );
}

#[rocket::async_test]
async fn change_email_link_dies_when_the_email_changed_otherwise() {
    let app = app().await;
    let (_, _) = logged_in(&app).await;
    let (first, second) = (unique_email(), unique_email());
    let t1 = start_change(&app, &first).await;
    let t2 = start_change(&app, &second).await;
    assert_eq!(
        location(
            &app.client
                .get(format!("/change-email/{t2}"))
                .dispatch()
                .await
        )
        .0,
        "/change-email-confirmed"
    );
    // The first link was issued for the previous address.
    let r = app
        .client
        .get(format!("/change-email/{t1}"))
        .dispatch()
        .await;
    assert_eq!(
        location(&r),
        (
            "/change-email-error".into(),
            vec![("error".into(), API_ERROR.into())]
        )
    );
    assert_eq!(app.text("/").await.1, format!("Hello {second}!"));
}

#[rocket::async_test]
async fn invalid_change_email_token() {
    let app = app().await;
    let r = app.client.get("/change-email/not-a-token").dispatch().await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        location(&r),
        (
            "/change-email-error".into(),
            vec![("error".into(), API_ERROR.into())]
        )
    );
}

#[rocket::async_test]
async fn change_email_validation_errors() {
    let app = app().await;
    let (email, _) = logged_in(&app).await;
    app.sink.clear().await;
    let cases = [
        (
            json!({"email": ADMIN.0}),
            "admin@example.com is already associated with an account.".to_string(),
        ),
        (
            json!({"email": email}),
            format!("{email} is already associated with an account."),
        ),
        (
            json!({"email": "nope"}),
            "Invalid email address".to_string(),
        ),
        (json!({}), "Email not provided".to_string()),
        (json!({"email": 42}), API_ERROR.to_string()),
    ];
    for (body, msg) in cases {
        let (s, b) = app.post_json("/change-email", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error("email", &msg), "{body}");
    }
    assert!(
        app.all_mail().await.is_empty(),
        "no mail for failed requests"
    );
}

#[rocket::async_test]
async fn change_email_requires_authentication_and_csrf() {
    let app = app().await;
    let (s, b) = app
        .post_json("/change-email", json!({"email": unique_email()}))
        .await;
    assert_eq!((s, b), (Status::Unauthorized, json!({"errors": [UNAUTHN]})));
    assert_eq!(app.get_json("/change-email").await.0, Status::Unauthorized);
    logged_in(&app).await;
    app.sink.clear().await;
    let (s, b) = app
        .post_json_no_csrf("/change-email", json!({"email": unique_email()}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
    assert!(app.all_mail().await.is_empty());
}

#[rocket::async_test]
async fn stale_session_must_reauthenticate() {
    let app = app().await;
    let (_, pw) = logged_in(&app).await;
    assert_eq!(
        app.get_json("/change-email").await.0,
        Status::Ok,
        "fresh right after login"
    );
    // Past FRESHNESS (24 h) and the grace period (1 h) the first check granted.
    app.clock.advance(25 * 3600 + 60);
    assert_eq!(app.text("/").await.0, Status::Ok, "still logged in");
    let (s, b) = app.get_json("/change-email").await;
    assert_eq!(s, Status::Unauthorized);
    assert_eq!(
        b["errors"],
        json!(["You must reauthenticate to access this endpoint"])
    );
    assert_eq!(b["reauth_required"], json!(true));
    app.sink.clear().await;
    let (s, b) = app
        .post_json("/change-email", json!({"email": unique_email()}))
        .await;
    assert_eq!(s, Status::Unauthorized);
    assert_eq!(b["reauth_required"], json!(true));
    assert!(app.all_mail().await.is_empty());
    let r = app
        .client
        .get("/change-email")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Found);
    assert_eq!(
        r.headers().get_one("Location"),
        Some("/verify?next=/change-email")
    );
    assert_eq!(
        app.post_json("/verify", json!({"password": pw})).await.0,
        Status::Ok
    );
    let new = unique_email();
    start_change(&app, &new).await;
}

#[rocket::async_test]
async fn change_email_mail_states_when_the_link_expires() {
    // Flask-Security's change_email_instructions gets `within`:
    // "This link will expire in 2 hours."
    let app = app().await;
    logged_in(&app).await;
    let new = unique_email();
    start_change(&app, &new).await;
    let mail = app.mail(&new, SUBJECT).await;
    assert!(mail.text.contains("2 hours"), "{}", mail.text);
}
