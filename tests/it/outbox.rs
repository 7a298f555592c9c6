//! The mail outbox: requests never wait on SMTP, mails survive an SMTP
//! outage and arrive once it is back, a black-holed server costs the request
//! nothing, failing mails end as visible dead letters, and any instance of
//! an application delivers what another queued.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flask_security_rs::{Admin, SmtpMailer};
use fs_tests::SmtpSink;
use rocket::figment::Figment;
use rocket::http::Status;
use serde_json::json;

use crate::common::*;

const PW: &str = "s3cret-pass";

/// A loopback port nothing listens on (yet).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Fast retries and polling, for tests.
fn quick_outbox(extra: &[(&str, serde_json::Value)]) -> Figment {
    let mut f = Figment::new()
        .merge(("security.mail_retry_delay", 1))
        .merge(("security.mail_outbox_poll_interval", 0.1))
        .merge(("security.mail_send_timeout", 1.0));
    for (k, v) in extra {
        f = f.merge((format!("security.{k}"), v.clone()));
    }
    f
}

/// An app whose mailer talks to 127.0.0.1:`port`.
async fn app_on_port(port: u16, extra: &[(&str, serde_json::Value)]) -> App {
    let mut s = setup().await;
    s.opts.mailer = Arc::new(SmtpMailer::plain("127.0.0.1", port));
    s.opts.extra = Some(quick_outbox(extra));
    app_with(s, |r| r).await
}

async fn register(app: &App, email: &str) -> (Status, Duration) {
    let t = Instant::now();
    let (s, b) = app
        .post_json_no_csrf(
            "/register",
            json!({"email": email, "password": PW, "password_confirm": PW}),
        )
        .await;
    assert!(s == Status::Ok, "{b}");
    (s, t.elapsed())
}

fn admin(app: &App) -> Admin {
    Admin::of(app.client.rocket()).expect("admin")
}

/// Moves the clock on and waits until `cond` holds (up to 10 s).
async fn eventually<F, Fut>(app: &App, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if cond().await {
            return;
        }
        app.clock.advance(2);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}

#[rocket::async_test]
async fn mail_queued_while_smtp_is_down_arrives_once_it_is_back() {
    let port = free_port();
    let app = app_on_port(port, &[]).await;
    let email = unique_email();
    let (_, took) = register(&app, &email).await;
    assert!(
        took < Duration::from_secs(2),
        "the request did not wait on SMTP: {took:?}"
    );
    // Nothing lost: the welcome mail waits in the outbox, and a retry of the
    // registration is (rightly) refused as a duplicate.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(admin(&app).pending_mails().await.expect("pending"), 1);
    let (s, _) = app
        .post_json_no_csrf(
            "/register",
            json!({"email": email, "password": PW, "password_confirm": PW}),
        )
        .await;
    assert_eq!(s, Status::BadRequest);
    // SMTP comes back on its port: the mail goes out on a retry.
    let sink = SmtpSink::start_on(port).await.expect("sink");
    let a = admin(&app);
    eventually(&app, "delivery after the outage", || async {
        a.pending_mails().await.ok() == Some(0)
    })
    .await;
    let mail = sink
        .wait_for(&email, "Welcome", Duration::from_secs(5))
        .await
        .expect("the welcome mail");
    assert!(
        mail.text.contains("/confirm/"),
        "with its confirmation link"
    );
    assert_eq!(sink.messages().await.len(), 1, "delivered once");
    assert!(a.dead_mails().await.expect("dead").is_empty());
}

#[rocket::async_test]
async fn a_black_holed_smtp_server_does_not_hold_up_requests() {
    let hole = SmtpSink::start_hanging().await;
    let app = app_on_port(hole.port(), &[]).await;
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (_, took) = register(&app, &unique_email()).await;
        slowest = slowest.max(took);
        let t = Instant::now();
        let (s, _) = app
            .post_json_no_csrf("/reset", json!({"email": USER.0}))
            .await;
        assert_eq!(s, Status::Ok);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_secs(2),
        "slowest request {slowest:?}"
    );
    // The sender gave up on each attempt after mail_send_timeout (1 s) and
    // keeps them for a retry.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(admin(&app).pending_mails().await.expect("pending"), 10);
}

#[rocket::async_test]
async fn mails_that_keep_failing_become_dead_letters() {
    let refusing = SmtpSink::start_refusing().await;
    let app = app_on_port(refusing.port(), &[("mail_max_attempts", json!(3))]).await;
    let email = unique_email();
    register(&app, &email).await;
    let a = admin(&app);
    eventually(&app, "a dead letter", || async {
        a.dead_mails().await.map(|d| d.len()).unwrap_or(0) == 1
    })
    .await;
    let dead = a.dead_mails().await.expect("dead");
    assert_eq!(dead[0].mail.to, email);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("550")),
        "{:?}",
        dead[0].last_error
    );
    assert_eq!(
        a.pending_mails().await.expect("pending"),
        0,
        "no longer retried"
    );
    // Debug output never shows the bodies (they carry sign-in links).
    let shown = format!("{:?}", dead[0]);
    assert!(!shown.contains("/confirm/"), "{shown}");
    // An operator can queue it again.
    assert!(a.retry_mail(dead[0].id).await.expect("retry"));
    assert_eq!(a.pending_mails().await.expect("pending"), 1);
    assert!(
        !a.retry_mail(dead[0].id).await.expect("retry"),
        "not dead any more"
    );
}

#[rocket::async_test]
async fn another_instance_delivers_what_one_queued() {
    // Instance A cannot reach SMTP; instance B, same application (same
    // outbox queue) on the same database, can. Both look for due mail every
    // 0.1 s. A claims the new mail (it queued it and is woken) and fails;
    // it then stands back, so B takes the first retry, due a second later.
    // (Were A to compete for its own retries, each lost one would double
    // the wait: 1, 2, 4 s...)
    let down = free_port();
    let mut s = setup().await;
    s.opts.mailer = Arc::new(SmtpMailer::plain("127.0.0.1", down));
    s.opts.extra = Some(quick_outbox(&[]));
    let queue = s.opts.outbox_queue.clone();
    let a = app_with(s, |r| r).await;
    let mut s2 = setup().await;
    s2.opts.database_url = a.options.database_url.clone();
    s2.opts.outbox_queue = queue;
    s2.opts.extra = Some(quick_outbox(&[]));
    let b = app_with(s2, |r| r).await;
    let email = unique_email();
    register(&a, &email).await;
    let mail = b
        .sink
        .wait_for(&email, "Welcome", Duration::from_secs(3))
        .await
        .expect("delivered by B at the first retry");
    assert!(mail.text.contains("/confirm/"));
    b.settle_mail().await;
    assert_eq!(b.sink.messages().await.len(), 1, "once");
}
