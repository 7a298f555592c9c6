//! Pinned hosts: mailed links never follow a caller's `Host` header.

use std::time::Duration;

use rocket::http::uri::{Authority, Host};
use rocket::http::{ContentType, Header, Status};
use serde_json::json;

use crate::common::*;

async fn app_with_config(fig: rocket::figment::Figment) -> App {
    let mut s = setup().await;
    s.opts.extra = Some(fig);
    app_with(s, |r| r).await
}

/// POST /reset as a server would see it with `Host: host` (the local client
/// takes the host separately from the headers).
async fn forgot(app: &App, host: &str) -> Status {
    let authority = Authority::parse_owned(host.to_string()).expect("host");
    let mut req = app
        .client
        .post("/reset")
        .header(ContentType::JSON)
        .header(Header::new("Host", host.to_string()))
        .body(json!({"email": USER.0}).to_string());
    req.inner_mut().set_host(Host::new(authority));
    req.dispatch().await.status()
}

#[rocket::async_test]
async fn untrusted_host_gets_400_and_no_mail() {
    let app = app_with_config(
        rocket::figment::Figment::new().merge(("security.trusted_hosts", ["app.example"])),
    )
    .await;
    assert_eq!(forgot(&app, "evil.example").await, Status::BadRequest);
    assert!(
        app.sink
            .wait_for(USER.0, "reset", Duration::from_millis(500))
            .await
            .is_none(),
        "no mail for an untrusted host"
    );
    assert_eq!(forgot(&app, "app.example").await, Status::Ok);
    let mail = app.mail(USER.0, "Password reset").await;
    assert!(
        mail.text.contains("http://app.example/reset/"),
        "{}",
        mail.text
    );
}

#[rocket::async_test]
async fn server_name_decides_the_links() {
    let app = app_with_config(
        rocket::figment::Figment::new()
            .merge(("security.server_name", "accounts.example:8443"))
            .merge(("security.preferred_url_scheme", "https")),
    )
    .await;
    assert_eq!(forgot(&app, "evil.example").await, Status::Ok);
    let mail = app.mail(USER.0, "Password reset").await;
    assert!(
        mail.text.contains("https://accounts.example:8443/reset/"),
        "{}",
        mail.text
    );
    assert!(!mail.text.contains("evil.example"), "{}", mail.text);
}
