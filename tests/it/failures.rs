//! Honest errors: when the database fails, the caller gets a generic 503 in
//! the envelope, never a 401 (which would make an SPA drop its session) or a
//! 400 that blames the input, and nothing is left half-written.

use std::time::Duration;

use flask_security_rs::sea_orm::{ConnectionTrait, Database, DatabaseBackend};
use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

const GENERIC: &str = "The service is temporarily unavailable; please try again shortly.";

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres")
}

/// `url` with PostgreSQL session options (`-c name=value`).
fn pg_with(url: &str, setting: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20{}", setting.replace('=', "%3D"))
}

/// Asserts a generic 503 in the envelope, with Retry-After.
async fn assert_unavailable(resp: rocket::local::asynchronous::LocalResponse<'_>, what: &str) {
    let retry = resp.headers().get_one("Retry-After").map(String::from);
    let (s, b) = json_of(resp).await;
    assert_eq!(s, Status::ServiceUnavailable, "{what}: {b}");
    assert_eq!(b["errors"], json!([GENERIC]), "{what}");
    assert!(retry.is_some(), "{what}: Retry-After");
}

#[rocket::async_test]
async fn a_read_only_database_gives_503_not_already_associated() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    // A second instance on the same database, which refuses every write.
    let url = &app.options.database_url;
    let mut s = setup().await;
    s.opts.database_url = if is_postgres(url) {
        pg_with(url, "default_transaction_read_only=on")
    } else {
        format!("sqlite://{url}?mode=ro")
    };
    s.opts.migrate = false;
    let ro = app_with(s, |r| r).await;
    // Reads still work: the token authenticates.
    assert_eq!(ro.token_status(&token).await, Status::Ok);
    let new_email = unique_email();
    let resp = ro
        .client
        .post("/register")
        .header(ContentType::JSON)
        .body(json!({"email": new_email, "password": "s3cret-pass", "password_confirm": "s3cret-pass"}).to_string())
        .dispatch()
        .await;
    assert_unavailable(resp, "register").await;
    // Nothing half-written: the address is still free, and registers fine
    // once the database takes writes again.
    let (s, b) = app
        .post_json_no_csrf(
            "/register",
            json!({"email": new_email, "password": "s3cret-pass", "password_confirm": "s3cret-pass"}),
        )
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    // A login needs to write its session record: 503, not a wrong password.
    let resp = ro
        .client
        .post("/login")
        .header(ContentType::JSON)
        .body(json!({"email": email, "password": pw}).to_string())
        .dispatch()
        .await;
    assert_unavailable(resp, "login").await;
}

#[rocket::async_test]
async fn a_locked_database_gives_503_not_401() {
    let app = app().await;
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    let url = app.options.database_url.clone();
    let mut s = setup().await;
    if is_postgres(&url) {
        s.opts.database_url = pg_with(&url, "statement_timeout=1500");
    }
    let locked_app = app_with(s_with_url(s, &url), |r| r).await;
    assert_eq!(locked_app.token_status(&token).await, Status::Ok);

    // Another connection holds an exclusive lock on the user table.
    let locker = Database::connect(flask_security_rs::database_url(&url))
        .await
        .expect("connect");
    let txn = flask_security_rs::sea_orm::TransactionTrait::begin(&locker)
        .await
        .expect("begin");
    match locker.get_database_backend() {
        DatabaseBackend::Postgres => {
            txn.execute_unprepared("LOCK TABLE \"user\" IN ACCESS EXCLUSIVE MODE")
                .await
                .expect("lock");
        }
        _ => {
            // WAL: another connection's write lock stops writers only.
            drop(txn);
            locker
                .execute_unprepared("BEGIN IMMEDIATE")
                .await
                .expect("begin");
            locker
                .execute_unprepared("UPDATE \"user\" SET login_count = login_count WHERE id < 0")
                .await
                .expect("write");
            assert_eq!(
                locked_app.token_status(&token).await,
                Status::Ok,
                "reads go on"
            );
            let resp = locked_app
                .client
                .post("/register")
                .header(ContentType::JSON)
                .body(json!({"email": unique_email(), "password": "s3cret-pass", "password_confirm": "s3cret-pass"}).to_string())
                .dispatch()
                .await;
            assert_unavailable(resp, "register while locked").await;
            locker.execute_unprepared("COMMIT").await.expect("commit");
            drop(locker);
            assert_eq!(locked_app.token_status(&token).await, Status::Ok);
            return;
        }
    }
    let resp = locked_app
        .client
        .get("/api/protected")
        .header(Header::new("X-Auth-Token", token.clone()))
        .header(Header::new("Accept", "application/json"))
        .dispatch()
        .await;
    assert_unavailable(resp, "token request").await;
    txn.rollback().await.expect("unlock");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(locked_app.token_status(&token).await, Status::Ok);
}

fn s_with_url(mut s: Setup, url: &str) -> Setup {
    if !is_postgres(url) {
        s.opts.database_url = url.to_string();
    }
    s
}
