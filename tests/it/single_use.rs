//! Single use under concurrency: of N simultaneous uses of one link exactly
//! one succeeds, and a password change racing a reset cannot both apply.

use futures::future::join_all;
use rocket::http::Status;
use serde_json::json;

use crate::common::*;

const N: usize = 20;

async fn reset_token(app: &App, email: &str) -> String {
    app.sink.clear().await;
    let (s, b) = app
        .post_json_no_csrf("/reset", json!({"email": email}))
        .await;
    assert_eq!(s, Status::Ok, "{b}");
    let mail = app.mail(email, "Password reset instructions").await;
    link_token(&mail.text, "/reset")
}

#[rocket::async_test]
async fn one_reset_link_used_concurrently_resets_once() {
    let app = app().await;
    let (email, _) = app.confirmed_user().await;
    let token = reset_token(&app, &email).await;
    // Distinct new passwords, so the one that applied is identifiable.
    let passwords: Vec<String> = (0..N).map(|i| format!("new-password-{i}")).collect();
    let path = format!("/reset/{token}");
    let results =
        join_all(passwords.iter().map(|pw| {
            app.post_json_no_csrf(&path, json!({"password": pw, "password_confirm": pw}))
        }))
        .await;
    let winners: Vec<usize> = (0..N).filter(|&i| results[i].0 == Status::Ok).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for (s, b) in &results {
        assert!(
            *s == Status::Ok
                || (*s == Status::BadRequest
                    && b["errors"] == json!(["Invalid reset password token."])),
            "{s} {b}"
        );
    }
    app.logout().await;
    // The winner's password is the one that works.
    assert_eq!(
        app.try_login(&email, &passwords[winners[0]]).await,
        Status::Ok
    );
    let loser = (winners[0] + 1) % N;
    assert_eq!(
        app.try_login(&email, &passwords[loser]).await,
        Status::BadRequest
    );
}

#[rocket::async_test]
async fn a_change_racing_a_reset_applies_only_one() {
    let (a, b) = twin_apps(setup().await).await;
    let (email, pw) = a.confirmed_user().await;
    for round in 0..6 {
        let current = if round == 0 {
            pw.clone()
        } else {
            format!("password-{}", round - 1)
        };
        let token = reset_token(&a, &email).await;
        assert_eq!(
            b.login(&email, &current).await.0,
            Status::Ok,
            "round {round}"
        );
        let changed = format!("changed-{round}");
        let reset = format!("password-{round}");
        let path = format!("/reset/{token}");
        let (c, r) = futures::join!(
            b.post_json(
                "/change",
                json!({"password": current, "new_password": changed, "new_password_confirm": changed}),
            ),
            a.post_json_no_csrf(&path, json!({"password": reset, "password_confirm": reset}))
        );
        let oks = [c.0, r.0].iter().filter(|s| **s == Status::Ok).count();
        assert_eq!(oks, 1, "round {round}: change {c:?}, reset {r:?}");
        assert!(c.0 != Status::InternalServerError && r.0 != Status::InternalServerError);
        // Whatever won is the password now: continue the rounds from it.
        let now = if c.0 == Status::Ok {
            changed
        } else {
            reset.clone()
        };
        a.logout().await;
        b.logout().await;
        assert_eq!(a.try_login(&email, &now).await, Status::Ok, "round {round}");
        if now != reset {
            // Put the expected password for the next round in place.
            let t = reset_token(&a, &email).await;
            let (s, _) = a
                .post_json_no_csrf(
                    &format!("/reset/{t}"),
                    json!({"password": reset, "password_confirm": reset}),
                )
                .await;
            assert_eq!(s, Status::Ok);
            a.logout().await;
        }
    }
}

#[rocket::async_test]
async fn one_confirmation_link_used_concurrently_confirms_once() {
    let app = app().await;
    let (_email, _pw, mail) = app.register().await;
    let token = link_token(&mail.text, "/confirm");
    let others: Vec<App> = join_all((0..8).map(|_| another_instance(&app))).await;
    let results = join_all(others.iter().map(|o| async {
        let r = o.client.get(format!("/confirm/{token}")).dispatch().await;
        (r.status(), location(&r))
    }))
    .await;
    let confirmed = results
        .iter()
        .filter(|(_, (path, _))| path == "/confirmed")
        .count();
    assert_eq!(confirmed, 1, "{results:?}");
    for (s, (path, params)) in &results {
        assert_eq!(*s, Status::Found);
        assert!(
            path == "/confirmed"
                || params
                    .iter()
                    .any(|(k, v)| k == "info" && v.contains("already been confirmed")),
            "{path} {params:?}"
        );
    }
}
