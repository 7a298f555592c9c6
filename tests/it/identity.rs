//! One identity per address: emails and usernames are unique and found up
//! to case (Unicode case folding) and normal form, concurrently too, and a
//! database written by another application is indexed without rewriting it.

use futures::future::join_all;
use rocket::http::Status;
use serde_json::json;

use crate::common::*;

const PW: &str = "s3cret-pass";

async fn register(app: &App, email: &str) -> (Status, serde_json::Value) {
    app.post_json_no_csrf(
        "/register",
        json!({"email": email, "password": PW, "password_confirm": PW}),
    )
    .await
}

/// Registers `email` and follows the confirmation link mailed to its
/// normalised form.
async fn register_confirmed(app: &App, email: &str) {
    use unicode_normalization::UnicodeNormalization;
    let (s, b) = register(app, email).await;
    assert_eq!(s, Status::Ok, "{email}: {b}");
    let stored: String = email.nfc().collect();
    let mail = app.mail(&stored, "Welcome").await;
    follow_confirmation(&app.client, &mail).await;
    app.logout().await;
}

fn taken(email: &str) -> serde_json::Value {
    json!(format!("{email} is already associated with an account."))
}

#[rocket::async_test]
async fn case_and_normal_form_variants_are_one_account() {
    let app = app().await;
    let tag = uuid();
    let upper = format!("Ölaf-{tag}@example.com");
    register_confirmed(&app, &upper).await;
    // The lower-case spelling signs in to the same account (SQLite's LOWER()
    // would not have matched it).
    let lower = format!("ölaf-{tag}@example.com");
    let (s, b) = app.login(&lower, PW).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(
        app.app_json("/api/data").await.1["user"],
        json!(upper),
        "stored as registered"
    );
    app.logout().await;
    // ... and cannot be registered again, in either case or in NFD.
    for variant in [lower.clone(), format!("O\u{308}LAF-{tag}@EXAMPLE.COM")] {
        let (s, b) = register(&app, &variant).await;
        assert_eq!(s, Status::BadRequest, "{variant}: {b}");
        assert!(
            b["field_errors"]["email"][0]
                .as_str()
                .is_some_and(|m| m.contains("is already associated")),
            "{b}"
        );
    }
    // NFC and NFD spellings of josé are one address; it is stored in NFC.
    let nfd = format!("jose\u{301}-{tag}@example.com");
    let nfc = format!("jos\u{e9}-{tag}@example.com");
    register_confirmed(&app, &nfd).await;
    let (s, b) = register(&app, &nfc).await;
    assert_eq!(
        (s, &b["field_errors"]["email"][0]),
        (Status::BadRequest, &taken(&nfc))
    );
    let (s, b) = app.login(&nfc, PW).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(
        app.app_json("/api/data").await.1["user"],
        json!(nfc),
        "stored in NFC"
    );
    app.logout().await;
    // ß folds to ss, as Python's casefold does.
    let strasse = format!("straße-{tag}@example.com");
    register_confirmed(&app, &strasse).await;
    let (s, _) = app.login(&format!("STRASSE-{tag}@example.com"), PW).await;
    assert_eq!(s, Status::Ok);
    app.logout().await;
    // A reset for another spelling mails the stored address.
    let (s, _) = app
        .post_json_no_csrf(
            "/reset",
            json!({"email": format!("ÖLAF-{tag}@example.com")}),
        )
        .await;
    assert_eq!(s, Status::Ok);
    app.mail(&upper, "Password reset instructions").await;
}

#[rocket::async_test]
async fn invisible_and_unsafe_characters_are_refused() {
    let app = app().await;
    for email in [
        format!("\u{200b}admin-{}@example.com", uuid()),
        format!("ad\u{200d}min-{}@example.com", uuid()),
        format!("ad\u{7}min-{}@example.com", uuid()),
        format!("\u{301}x-{}@example.com", uuid()),
    ] {
        let (s, b) = register(&app, &email).await;
        assert_eq!(s, Status::BadRequest, "{email:?}");
        assert_eq!(
            b["field_errors"]["email"],
            json!(["Invalid email address"]),
            "{email:?}: {b}"
        );
    }
}

#[rocket::async_test]
async fn unicode_usernames_sign_in_in_any_case() {
    let app = app().await;
    let email = unique_email();
    let name = format!("Иван{}", &uuid()[..6]);
    let (s, b) = app
        .post_json_no_csrf(
            "/register",
            json!({"email": email, "username": name, "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let mail = app.mail(&email, "Welcome").await;
    let token = link_token(&mail.text, "/confirm");
    app.client.get(format!("/confirm/{token}")).dispatch().await;
    app.logout().await;
    let (s, b) = app
        .post_json(
            "/login",
            json!({"username": name.to_lowercase(), "password": PW}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    app.logout().await;
    let (s, b) = app
        .post_json_no_csrf(
            "/register",
            json!({"email": unique_email(), "username": name.to_uppercase(), "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::BadRequest, "{b}");
    assert!(
        b["field_errors"]["username"][0]
            .as_str()
            .is_some_and(|m| m.contains("already associated")),
        "{b}"
    );
}

/// Case variants of every letter of `base`: 2^n spellings.
fn case_variants(base: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|mask| {
            base.chars()
                .enumerate()
                .map(|(i, c)| {
                    if i < 16 && mask & (1 << i) != 0 {
                        c.to_uppercase().collect::<String>()
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect()
}

#[rocket::async_test]
async fn concurrent_case_variants_make_one_account() {
    let app = app().await;
    let base = format!("race-{}@example.com", uuid());
    let variants = case_variants(&base, 40);
    let results = join_all(variants.iter().map(|e| register(&app, e))).await;
    let ok = results.iter().filter(|(s, _)| *s == Status::Ok).count();
    assert_eq!(ok, 1, "{results:?}");
    for (s, b) in &results {
        assert!(
            *s == Status::Ok || (*s == Status::BadRequest && b["field_errors"]["email"].is_array()),
            "every loser is told the address is taken: {s} {b}"
        );
    }
    // Any spelling now names that one (unconfirmed) account.
    let (s, b) = app.login(&base.to_uppercase(), PW).await;
    assert_eq!(
        (s, &b["errors"]),
        (Status::BadRequest, &json!(["Email requires confirmation."]))
    );
}

#[rocket::async_test]
async fn concurrent_username_changes_to_one_name_make_one_owner() {
    let app = app().await;
    let name = format!("shared{}", &uuid()[..8]);
    let mut apps = Vec::new();
    for _ in 0..6 {
        let other = another_instance(&app).await;
        let (email, pw) = other.confirmed_user().await;
        assert_eq!(other.login(&email, &pw).await.0, Status::Ok);
        apps.push(other);
    }
    let variants = case_variants(&name, apps.len());
    let results = join_all(apps.iter().zip(&variants).map(|(a, n)| {
        a.post_json(
            "/change-username",
            json!({"username": n, "password": "s3cret-pass"}),
        )
    }))
    .await;
    let ok = results.iter().filter(|(s, _)| *s == Status::Ok).count();
    assert_eq!(ok, 1, "{results:?}");
    assert!(
        results
            .iter()
            .all(|(s, _)| *s == Status::Ok || *s == Status::BadRequest),
        "{results:?}"
    );
}

#[rocket::async_test]
async fn users_written_by_another_application_are_indexed_unchanged() {
    use flask_security_rs::sea_orm::{ConnectionTrait, Statement};
    let app = app().await;
    // A row as Flask-Security writes it, straight into the user table.
    let email = format!("Flask-{}@Example.com", uuid());
    let hash = {
        let (e, _) = app.confirmed_user().await;
        let db = fs_tests::app::open_database(&app.options.database_url)
            .await
            .expect("db");
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT password FROM \"user\" WHERE email = '{e}'"),
            ))
            .await
            .expect("select")
            .expect("row");
        row.try_get_by_index::<String>(0).expect("hash")
    };
    let db = fs_tests::app::open_database(&app.options.database_url)
        .await
        .expect("db");
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        format!(
            "INSERT INTO \"user\" (email, password, active, fs_uniquifier, confirmed_at, create_datetime, update_datetime) \
             VALUES ('{email}', '{hash}', true, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
            uuid()
        ),
    ))
    .await
    .expect("insert");
    // Found (by the database's own match), then indexed.
    let (s, b) = app.login(&email.to_lowercase(), PW).await;
    assert_eq!(s, Status::Ok, "{b}");
    app.logout().await;
    assert_eq!(
        register(&app, &email.to_uppercase()).await.0,
        Status::BadRequest
    );
    // A restart indexes the rest; the stored address is as it was written.
    let again = another_instance(&app).await;
    let (s, b) = again.login(&email.to_uppercase(), PW).await;
    assert_eq!(s, Status::Ok, "{b}");
    assert_eq!(again.app_json("/api/data").await.1["user"], json!(email));
}
