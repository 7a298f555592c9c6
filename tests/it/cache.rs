//! The identity cache: every write through the datastore takes effect on the
//! very next request of this instance; writes by another instance, or by SQL
//! outside the library, reach the others (NOTIFY on PostgreSQL, the
//! `data_version` poll on SQLite); an authenticated request costs at most one
//! query on a miss and none on a hit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flask_security_rs::entity::{role, user};
use flask_security_rs::sea_orm::{ConnectionTrait, Database, Statement};
use flask_security_rs::{
    Admin, CurrentUser, NewUser, SeaOrmDatastore, Security, UserDatastoreExt, auth_required,
};
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use serde_json::json;

use crate::common::*;

fn admin_of(app: &App) -> Admin {
    Admin::of(app.client.rocket()).expect("admin")
}

async fn user_id(app: &App, email: &str) -> i64 {
    admin_of(app)
        .find_user(email)
        .await
        .expect("db")
        .expect("user")
        .id
}

/// A confirmed user (email, password) signed in on `app` by session, with
/// an auth token, and both already used once (so the cache holds them).
async fn signed_in(app: &App) -> ((String, String), String, i64) {
    let (email, pw) = app.confirmed_user().await;
    let token = app.token(&email, &pw).await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(app.text("/").await.0, Status::Ok);
    assert_eq!(app.token_status(&token).await, Status::Ok);
    let id = user_id(app, &email).await;
    ((email, pw), token, id)
}

#[rocket::async_test]
async fn deactivation_takes_effect_on_the_next_request() {
    let app = app().await;
    let (_, token, id) = signed_in(&app).await;
    admin_of(&app)
        .datastore()
        .deactivate_user(id)
        .await
        .expect("deactivate");
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
    admin_of(&app)
        .datastore()
        .activate_user(id)
        .await
        .expect("activate");
    assert_eq!(app.token_status(&token).await, Status::Ok);
}

#[rocket::async_test]
async fn role_and_permission_changes_take_effect_on_the_next_request() {
    let app = app().await;
    let (_, token, id) = signed_in(&app).await;
    let admin = admin_of(&app);
    let store = admin.datastore();
    // A role of this test's own (the database may be shared with others).
    let role = format!("reader-{}", uuid());
    store
        .find_or_create_role(&role, &["user-read"])
        .await
        .expect("role");
    assert_eq!(app.text("/user-data").await.0, Status::Forbidden);
    assert!(store.add_role_to_user(id, &role).await.expect("add"));
    assert_eq!(app.text("/user-data").await.0, Status::Ok);
    let (_, body) = app.token_get(&token).await;
    assert_eq!(body["permissions"], json!(["user-read"]));

    store
        .remove_permissions_from_role(&role, &["user-read"])
        .await
        .expect("permissions");
    assert_eq!(app.text("/user-data").await.0, Status::Forbidden);
    let (_, body) = app.token_get(&token).await;
    assert_eq!(body["permissions"], json!([]));

    store
        .add_permissions_to_role(&role, &["user-read"])
        .await
        .expect("permissions");
    assert_eq!(app.text("/user-data").await.0, Status::Ok);
    assert!(
        store
            .remove_role_from_user(id, &role)
            .await
            .expect("remove")
    );
    assert_eq!(app.text("/user-data").await.0, Status::Forbidden);
}

#[rocket::async_test]
async fn uniquifier_rotation_and_password_change_take_effect_on_the_next_request() {
    let app = app().await;
    let ((email, pw), token, id) = signed_in(&app).await;
    admin_of(&app)
        .datastore()
        .set_uniquifier(id)
        .await
        .expect("rotate");
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
    assert_eq!(app.text("/").await.0, Status::Unauthorized);

    // Signed in again; then an administrator sets the password.
    let token = app.token(&email, &pw).await;
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(app.text("/").await.0, Status::Ok);
    admin_of(&app)
        .set_password(id, "another password")
        .await
        .expect("set password");
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn deleting_the_user_takes_effect_on_the_next_request() {
    let app = app().await;
    let (_, token, id) = signed_in(&app).await;
    admin_of(&app)
        .datastore()
        .delete_user(id)
        .await
        .expect("delete");
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
}

#[rocket::async_test]
async fn a_revoked_session_ends_on_the_next_request() {
    let app = app().await;
    let (_, token, id) = signed_in(&app).await;
    let admin = admin_of(&app);
    let sessions = admin.sessions(id).await.expect("sessions");
    assert_eq!(sessions.len(), 1);
    assert!(
        admin
            .revoke_session(id, &sessions[0].id)
            .await
            .expect("revoke")
    );
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
    // The token is not a session: it still works.
    assert_eq!(app.token_status(&token).await, Status::Ok);
}

/// Polls `check` until it holds, for at most `within`; how long it took.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// How long another instance may take to hear of a write: PostgreSQL
/// delivers a NOTIFY in milliseconds; SQLite is polled every
/// `CHANGE_POLL_SECS`.
const HEARD_WITHIN: Duration = Duration::from_secs(3);

#[rocket::async_test]
async fn a_deactivation_on_one_instance_rejects_on_the_other() {
    let (a, b) = twin_apps(setup().await).await;
    let (_, token, id) = signed_in(&b).await;
    // B has served them, so it caches them.
    assert_eq!(b.token_status(&token).await, Status::Ok);
    admin_of(&a)
        .datastore()
        .deactivate_user(id)
        .await
        .expect("deactivate");
    let took = eventually(HEARD_WITHIN, || async {
        b.token_status(&token).await == Status::Unauthorized
    })
    .await;
    assert!(
        took.is_some(),
        "B still accepts the deactivated user's token"
    );
    assert_eq!(b.text("/").await.0, Status::Unauthorized);
    println!("instance B rejected the deactivated user after {took:?}");
}

/// SQL run on `url` beside the library (an admin's console, a
/// Flask-Security app still writing the same database).
async fn external_sql(url: &str, sql: &str) {
    let db = Database::connect(flask_security_rs::connect_options(url))
        .await
        .expect("connect");
    let backend = db.get_database_backend();
    db.execute_raw(Statement::from_string(backend, sql.to_string()))
        .await
        .expect("sql");
    db.close().await.expect("close");
}

fn deactivate_sql(id: i64) -> String {
    format!("UPDATE \"user\" SET active = FALSE WHERE id = {id}")
}

#[rocket::async_test]
async fn an_update_in_sql_outside_the_library_reaches_every_instance() {
    let (a, b) = twin_apps(setup().await).await;
    let ((email, pw), token_a, id) = signed_in(&a).await;
    let token_b = b.token(&email, &pw).await;
    assert_eq!(b.token_status(&token_b).await, Status::Ok);
    external_sql(&a.options.database_url, &deactivate_sql(id)).await;
    for (name, app, token) in [("A", &a, &token_a), ("B", &b, &token_b)] {
        let took = eventually(HEARD_WITHIN, || async {
            app.token_status(token).await == Status::Unauthorized
        })
        .await;
        assert!(took.is_some(), "{name} still accepts the token");
        println!("instance {name} saw the external UPDATE after {took:?}");
    }
}

#[rocket::async_test]
async fn with_the_cache_off_an_external_update_shows_at_once() {
    let mut s = setup().await;
    s.opts.extra = Some(rocket::figment::Figment::new().merge(("security.identity_cache", false)));
    let app = app_with(s, |r| r).await;
    let (_, token, id) = signed_in(&app).await;
    external_sql(&app.options.database_url, &deactivate_sql(id)).await;
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
}

#[rocket::async_test]
async fn max_staleness_bounds_what_no_feed_reports() {
    let mut s = setup().await;
    // The feed would look only once an hour: the backstop decides.
    s.opts.extra = Some(
        rocket::figment::Figment::new()
            .merge(("security.identity_cache_poll_interval", 3600.0))
            .merge(("security.identity_cache_max_staleness", 0.3)),
    );
    let app = app_with(s, |r| r).await;
    if app.options.database_url.starts_with("postgres") {
        // PostgreSQL notifies at once; the SQLite case is the one to prove.
        return;
    }
    let (_, token, id) = signed_in(&app).await;
    external_sql(&app.options.database_url, &deactivate_sql(id)).await;
    assert_eq!(
        app.token_status(&token).await,
        Status::Ok,
        "served from the cache until the bound"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.token_status(&token).await, Status::Unauthorized);
}

// ---- Round trips -------------------------------------------------------------

#[auth_required("token", "session")]
#[get("/whoami")]
fn whoami(user: CurrentUser) -> String {
    user.email.clone()
}

#[rocket::async_test]
async fn an_authenticated_request_costs_one_query_on_a_miss_and_none_on_a_hit() {
    let queries = Arc::new(AtomicUsize::new(0));
    let mut db = migrated_db(|_| async {}).await;
    let counter = queries.clone();
    db.set_metric_callback(move |info| {
        // Only what reads users and sessions (not the outbox sender's polls).
        let sql = &info.statement.sql;
        if sql.contains("\"user\"") || sql.contains("fs_session") {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let fig = cheap_hashing(rocket::Config::figment())
        .merge(("security.secret_key", "k"))
        .merge(("security.password_salt", "salt"))
        .merge(("security.csrf_protect_mechanisms", ["session"]))
        .merge(("security.csrf_ignore_unauth_endpoints", true))
        .merge(("security.throttle_enabled", false))
        // No flush by the SQLite poll (which also sees this instance's own
        // writes) in the middle of the count.
        .merge(("security.identity_cache_poll_interval", 3600.0));
    let rocket = rocket::custom(fig)
        .attach(Security::new(
            SeaOrmDatastore::<user::Model, role::Model>::new(db).with_outbox_queue(uuid()),
        ))
        .mount("/", routes![whoami]);
    let client = Client::tracked(rocket).await.expect("rocket");
    let admin = Admin::of(client.rocket()).expect("admin");
    let email = unique_email();
    admin
        .create_user(NewUser::new(email.clone()), "password")
        .await
        .expect("user");
    let token = client_token(&client, &email, "password").await;
    let by_token = || {
        client
            .get("/whoami")
            .header(Header::new("X-Auth-Token", token.clone()))
            .dispatch()
    };
    let counted = |queries: &AtomicUsize| queries.swap(0, Ordering::SeqCst);
    // The login's own writes come back as notifications on PostgreSQL: let
    // them arrive before counting.
    settle_changes().await;

    // The session cookie (from the login) on its own.
    counted(&queries);
    let r = client.get("/whoami").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        counted(&queries),
        1,
        "a miss: session and user in one query"
    );
    let r = client.get("/whoami").dispatch().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(counted(&queries), 0, "a hit: no query");

    // The token (checked before the session cookie).
    let r = by_token().await;
    assert_eq!(r.status(), Status::Ok);
    assert!(counted(&queries) <= 1, "a miss: at most one query");
    let r = by_token().await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(counted(&queries), 0, "a hit: no query");
}

#[rocket::async_test]
async fn after_a_lost_notification_connection_the_cache_is_flushed_and_listens_again() {
    let app = app().await;
    let url = app.options.database_url.clone();
    if !url.starts_with("postgres") {
        // SQLite has no notification connection to lose.
        return;
    }
    let (_, token, id) = signed_in(&app).await;
    // Cut every LISTEN connection, then write while they are gone: that
    // NOTIFY reaches no one.
    external_sql(
        &url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
    )
    .await;
    external_sql(&url, &deactivate_sql(id)).await;
    let took = eventually(HEARD_WITHIN, || async {
        app.token_status(&token).await == Status::Unauthorized
    })
    .await;
    assert!(
        took.is_some(),
        "a change made while not listening is served stale"
    );
    // Listening again: later changes are heard (the user is cached again
    // once active).
    external_sql(
        &url,
        &format!("UPDATE \"user\" SET active = TRUE WHERE id = {id}"),
    )
    .await;
    let back = eventually(HEARD_WITHIN, || async {
        app.token_status(&token).await == Status::Ok
    })
    .await;
    assert!(back.is_some(), "reactivation not seen");
    assert_eq!(app.token_status(&token).await, Status::Ok);
    external_sql(&url, &deactivate_sql(id)).await;
    let again = eventually(HEARD_WITHIN, || async {
        app.token_status(&token).await == Status::Unauthorized
    })
    .await;
    assert!(again.is_some(), "not listening again after the reconnect");
}

#[rocket::async_test]
async fn bad_cache_settings_stop_launch() {
    for (key, value) in [
        ("security.identity_cache_capacity", json!(0)),
        ("security.identity_cache_max_staleness", json!(0)),
        ("security.identity_cache_poll_interval", json!(-1.0)),
        ("security.identity_cache", json!("sometimes")),
    ] {
        let fig = rocket::Config::figment()
            .merge(("security.secret_key", "k"))
            .merge(("security.password_salt", "salt"))
            .merge((key, value));
        let db = migrated_db(|_| async {}).await;
        let rocket = rocket::custom(fig)
            .attach(Security::new(
                SeaOrmDatastore::<user::Model, role::Model>::new(db),
            ));
        let err = rocket.ignite().await.expect_err(key);
        assert!(
            matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
            "{key}: {err:?}"
        );
    }
}
