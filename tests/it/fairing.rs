//! The fairing: launch-time checks, sentinels, configuration.

use flask_security_rs::entity::{role, user};
use flask_security_rs::{CurrentUser, SeaOrmDatastore, Security};
use rocket::{get, routes};

#[get("/me")]
fn me(user: CurrentUser) -> String {
    user.email.clone()
}

async fn datastore() -> SeaOrmDatastore<user::Model, role::Model> {
    let url = flask_security_rs::database_url(&crate::common::database_url());
    let db = flask_security_rs::sea_orm::Database::connect(url)
        .await
        .expect("db");
    SeaOrmDatastore::new(db)
}

#[rocket::async_test]
async fn guard_without_fairing_stops_launch() {
    let rocket = rocket::build().mount("/", routes![me]);
    let err = rocket.ignite().await.expect_err("sentinel must abort");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::SentinelAborts(_)),
        "{err:?}"
    );
}

#[rocket::async_test]
async fn release_profile_requires_secrets() {
    let fig = rocket::Config::figment()
        .select("release")
        .merge(("secret_key", flask_security_rs::derive_cookie_key("x")));
    let rocket = rocket::custom(fig)
        .attach(Security::new(datastore().await))
        .mount("/", routes![me]);
    let err = rocket
        .ignite()
        .await
        .expect_err("missing secret_key/password_salt must fail outside debug");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{err:?}"
    );
    let fig = rocket::Config::figment()
        .select("release")
        .merge(("secret_key", flask_security_rs::derive_cookie_key("x")))
        .merge(("security.secret_key", "k"))
        .merge(("security.password_salt", "s"));
    let rocket = rocket::custom(fig.clone())
        .attach(Security::new(datastore().await))
        .mount("/", routes![me]);
    let err = rocket
        .ignite()
        .await
        .expect_err("mailed links need server_name or trusted_hosts outside debug");
    assert!(
        matches!(err.kind(), rocket::error::ErrorKind::FailedFairings(_)),
        "{err:?}"
    );
    for (key, value) in [
        (
            "security.server_name",
            rocket::figment::value::Value::from("app.example"),
        ),
        (
            "security.trusted_hosts",
            rocket::figment::value::Value::from(vec!["app.example"]),
        ),
    ] {
        let rocket = rocket::custom(fig.clone().merge((key, value)))
            .attach(Security::new(datastore().await))
            .mount("/", routes![me]);
        assert!(rocket.ignite().await.is_ok(), "{key}");
    }
}

#[rocket::async_test]
async fn config_is_read_from_the_figment() {
    let fig = rocket::Config::figment()
        .merge(("security.secret_key", "k"))
        .merge(("security.password_salt", "s"))
        .merge(("security.url_prefix", "/auth"))
        .merge(("security.token_max_age", 60));
    let rocket = rocket::custom(fig)
        .attach(Security::new(datastore().await))
        .ignite()
        .await
        .expect("ignite");
    let config = flask_security_rs::config_of(&rocket).expect("state");
    assert_eq!(config.token_max_age, 60);
    assert_eq!(config.password_length_min, 8, "Flask-Security default");
    assert!(rocket.routes().any(|r| r.uri.path() == "/auth/login"));
    assert!(
        !rocket.routes().any(|r| r.uri.path() == "/auth/register"),
        "registerable is off by default"
    );
    assert!(
        !format!("{:?}", config).contains("\"k\""),
        "secrets are redacted in Debug"
    );
}
