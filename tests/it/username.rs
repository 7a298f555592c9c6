//! `/change-username` and `/recover-username`.

use rocket::http::{Header, Status};
use serde_json::{Value, json};

use crate::common::*;

const UNAUTHN: &str = "You must sign in to view this resource.";
const LENGTH: &str = "Username must be at least 4 characters and less than 32 characters";

fn unique_username() -> String {
    format!("u{}", uuid())
}

/// A confirmed user registered with a username: (email, username, password).
async fn user_with_name(app: &App) -> (String, String, String) {
    let (email, name, pw) = (unique_email(), unique_username(), "s3cret-pass".to_string());
    let (s, b) = app
        .post_json(
            "/register",
            json!({"email": email, "username": name, "password": pw, "password_confirm": pw}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let token = link_token(&app.mail(&email, "Welcome").await.text, "/confirm");
    assert_eq!(
        app.client
            .get(format!("/confirm/{token}"))
            .dispatch()
            .await
            .status(),
        Status::Found
    );
    (email, name, pw)
}

async fn login_by_name(app: &App, name: &str, pw: &str) -> (Status, Value) {
    app.post_json("/login", json!({"username": name, "password": pw}))
        .await
}

#[rocket::async_test]
async fn get_change_username_json() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app.get_json("/change-username").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(
        b,
        json!({"current_username": null, "user": {}, "csrf_token": b["csrf_token"].clone()})
    );
    assert!(b["csrf_token"].is_string());
    app.logout().await;
    let (email, name, pw) = user_with_name(&app).await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (_, b) = app.get_json("/change-username").await;
    assert_eq!(b["current_username"], json!(name));
    let html = app
        .client
        .get("/change-username")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    assert_eq!(html.status(), Status::Ok);
    assert!(
        html.into_string()
            .await
            .unwrap_or_default()
            .contains("name=\"username\"")
    );
}

#[rocket::async_test]
async fn change_username_success() {
    let app = app().await;
    let (email, old_name, pw) = user_with_name(&app).await;
    assert_eq!(login_by_name(&app, &old_name, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let new_name = unique_username();
    let (s, b) = app
        .post_json("/change-username", json!({"username": new_name}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token", "user"]);
    assert_eq!(b["user"], json!({}));
    let mail = app.mail(&email, "Your username has been changed").await;
    assert_eq!(mail.to, vec![email.clone()]);
    assert!(mail.text.contains(&new_name), "{}", mail.text);
    assert_eq!(
        app.text("/").await.1,
        format!("Hello {email}!"),
        "session continues"
    );
    assert_eq!(
        app.get_json("/change-username").await.1["current_username"],
        json!(new_name)
    );

    app.logout().await;
    let (s, b) = login_by_name(&app, &old_name, &pw).await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            field_error("username", "Specified user does not exist")
        )
    );
    assert_eq!(login_by_name(&app, &new_name, &pw).await.0, Status::Ok);
    assert_eq!(app.text("/").await.1, format!("Hello {email}!"));
    // The old name is free again.
    app.logout().await;
    let pw2 = "s3cret-pass";
    let (s, b) = app
        .post_json("/register", json!({"email": unique_email(), "username": old_name, "password": pw2, "password_confirm": pw2}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
}

#[rocket::async_test]
async fn change_username_errors() {
    let app = app().await;
    let (_, name, pw) = user_with_name(&app).await;
    assert_eq!(login_by_name(&app, &name, &pw).await.0, Status::Ok);
    app.sink.clear().await;
    let cases = [
        (
            json!({"username": "admin"}),
            "admin is already associated with an account.".to_string(),
        ),
        (
            json!({"username": name}),
            format!("{name} is already associated with an account."),
        ),
        (json!({"username": "abc"}), LENGTH.to_string()),
        (json!({"username": "a".repeat(33)}), LENGTH.to_string()),
        (
            json!({"username": "bad name!"}),
            "Username can contain only letters and numbers".to_string(),
        ),
        (
            json!({"username": "<b>bold</b>"}),
            "Value entered is not valid for the field".to_string(),
        ),
        (json!({}), "Username not provided".to_string()),
        (
            json!({"username": 1234}),
            "Input not appropriate for requested API".to_string(),
        ),
    ];
    for (body, msg) in cases {
        let (s, b) = app.post_json("/change-username", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error("username", &msg), "{body}");
    }
    assert!(
        app.all_mail().await.is_empty(),
        "no notice for failed changes"
    );
    assert_eq!(
        app.get_json("/change-username").await.1["current_username"],
        json!(name),
        "unchanged"
    );
}

#[rocket::async_test]
async fn change_username_requires_fresh_authentication_and_csrf() {
    let app = app().await;
    let (s, b) = app
        .post_json("/change-username", json!({"username": unique_username()}))
        .await;
    assert_eq!((s, b), (Status::Unauthorized, json!({"errors": [UNAUTHN]})));
    let (email, pw) = app.confirmed_user().await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    let (s, b) = app
        .post_json_no_csrf("/change-username", json!({"username": unique_username()}))
        .await;
    assert_eq!(
        (s, b),
        (
            Status::BadRequest,
            json!({"errors": ["The CSRF token is missing."]})
        )
    );
    app.clock.advance(25 * 3600 + 60);
    let (s, b) = app
        .post_json("/change-username", json!({"username": unique_username()}))
        .await;
    assert_eq!(s, Status::Unauthorized);
    assert_eq!(b["reauth_required"], json!(true));
    assert_eq!(
        app.get_json("/change-username").await.1["current_username"],
        Value::Null
    );
}

#[rocket::async_test]
async fn recover_username_mails_the_username() {
    let app = app().await;
    let (email, name, _) = user_with_name(&app).await;
    app.sink.clear().await;
    let (s, b) = app.get_json("/recover-username").await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"]);
    let (s, b) = app
        .post_json("/recover-username", json!({"email": email}))
        .await;
    assert_eq!(s, Status::Ok);
    assert_eq!(keys(&b), ["csrf_token"]);
    let mail = app.mail(&email, "Your requested username").await;
    assert_eq!(mail.to, vec![email.clone()]);
    assert!(mail.text.contains(&name), "{}", mail.text);
    assert_eq!(app.all_mail().await.len(), 1);
}

#[rocket::async_test]
async fn recover_username_errors() {
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
        (json!({"email": "nope"}), "Invalid email address"),
    ];
    for (body, msg) in cases {
        let (s, b) = app.post_json("/recover-username", body.clone()).await;
        assert_eq!(s, Status::BadRequest, "{body}");
        assert_eq!(b, field_error("email", msg), "{body}");
    }
    assert!(app.all_mail().await.is_empty());
    // Anonymous only.
    assert_eq!(app.login(USER.0, USER.1).await.0, Status::Ok);
    let anon = json!({"errors": ["You can only access this endpoint when not logged in."]});
    assert_eq!(
        app.get_json("/recover-username").await,
        (Status::BadRequest, anon.clone())
    );
    assert_eq!(
        app.post_json("/recover-username", json!({"email": USER.0}))
            .await,
        (Status::BadRequest, anon)
    );
}

#[rocket::async_test]
async fn recover_username_generic_mode() {
    let mut s = setup().await;
    s.opts.generic_responses = true;
    let app = app_with(s, |r| r).await;
    let (email, name, _) = user_with_name(&app).await;
    app.sink.clear().await;
    let (s, b) = app
        .post_json("/recover-username", json!({"email": unique_email()}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(keys(&b), ["csrf_token"]);
    let (s, b) = app
        .post_json("/recover-username", json!({"email": DISABLED.0}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    assert!(
        app.all_mail().await.is_empty(),
        "nothing sent for unknown or disabled accounts"
    );
    let (s, _) = app
        .post_json("/recover-username", json!({"email": email}))
        .await;
    assert_eq!(s, Status::Ok);
    assert!(
        app.mail(&email, "Your requested username")
            .await
            .text
            .contains(&name)
    );
}

#[rocket::async_test]
async fn server_rendered_recover_username_redirects_to_login() {
    // Flask-Security's recover_username: on success, flash
    // USERNAME_RECOVERY_REQUEST and redirect to the login page.
    let mut s = setup().await;
    s.opts.spa = false;
    let app = app_with(s, |r| r).await;
    let (email, name, _) = user_with_name(&app).await;
    let r = app
        .client
        .post("/recover-username")
        .header(rocket::http::ContentType::Form)
        .header(Header::new("Accept", "text/html"))
        .body(format!("email={}", email.replace('@', "%40")))
        .dispatch()
        .await;
    assert!(
        app.mail(&email, "Your requested username")
            .await
            .text
            .contains(&name)
    );
    assert_eq!(r.status(), Status::Found);
    assert_eq!(r.headers().get_one("Location"), Some("/login"));
    let html = app
        .client
        .get("/login")
        .header(Header::new("Accept", "text/html"))
        .dispatch()
        .await;
    let html = html.into_string().await.unwrap_or_default();
    assert!(
        html.contains("If registered, your username will be sent to your email."),
        "{html}"
    );
}
