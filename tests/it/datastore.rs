//! The datastore admin API (Flask-Security's `UserDatastore` methods).

use flask_security_rs::UserDatastore;
use flask_security_rs::UserDatastoreExt;
use flask_security_rs::{Lookup, NewUser};
use rocket::http::Status;

use crate::common::*;

#[rocket::async_test]
async fn roles_permissions_and_activation() {
    let app = app().await;
    let state = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds: &dyn UserDatastore = state.datastore();
    let (email, pw) = app.confirmed_user().await;
    let user = ds
        .find_user(Lookup::Email(&email.to_uppercase()))
        .await
        .expect("db")
        .expect("case-insensitive lookup");
    assert!(user.roles.is_empty());

    let role = format!("editor{}", uuid());
    let created = ds
        .find_or_create_role(&role, &["doc-read"])
        .await
        .expect("create");
    let again = ds
        .find_or_create_role(&role, &["ignored"])
        .await
        .expect("find");
    assert_eq!(created.id, again.id);
    assert_eq!(again.permissions, vec!["doc-read".to_string()]);
    ds.add_permissions_to_role(&role, &["doc-write", "doc-read"])
        .await
        .expect("add perms");
    assert!(ds.add_role_to_user(user.id, &role).await.expect("add role"));
    assert!(
        !ds.add_role_to_user(user.id, &role)
            .await
            .expect("add twice"),
        "already had it"
    );
    assert!(
        ds.add_role_to_user(user.id, "user")
            .await
            .expect("add seeded role")
    );
    let loaded = ds
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert!(loaded.has_role(&role) && loaded.has_role("user"));
    assert_eq!(
        loaded.permissions().into_iter().collect::<Vec<_>>(),
        vec!["doc-read", "doc-write", "user-read", "user-write"]
    );

    // Roles take effect on the next request.
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
    assert_eq!(app.text("/user-data").await.0, Status::Ok);
    ds.remove_permissions_from_role(&role, &["doc-read"])
        .await
        .expect("remove perm");
    assert!(
        ds.remove_role_from_user(user.id, "user")
            .await
            .expect("remove role")
    );
    assert!(
        !ds.remove_role_from_user(user.id, "user")
            .await
            .expect("remove twice")
    );
    assert_eq!(app.get_json("/user-data").await.0, Status::Forbidden);
    let loaded = ds
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert_eq!(
        loaded.permissions().into_iter().collect::<Vec<_>>(),
        vec!["doc-write"]
    );

    ds.deactivate_user(user.id).await.expect("deactivate");
    assert_eq!(app.text("/").await.0, Status::Unauthorized);
    let (s, b) = app.login(&email, &pw).await;
    assert_eq!(s, Status::BadRequest);
    assert_eq!(
        b["field_errors"]["email"],
        serde_json::json!(["Account is disabled."])
    );
    ds.activate_user(user.id).await.expect("activate");
    assert_eq!(app.login(&email, &pw).await.0, Status::Ok);
}

#[rocket::async_test]
async fn create_with_unknown_role_leaves_nothing_behind() {
    let app = app().await;
    let state = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds: &dyn UserDatastore = state.datastore();
    let email = unique_email();
    let new = NewUser {
        email: email.clone(),
        active: true,
        roles: vec!["no-such-role".into()],
        ..Default::default()
    };
    assert!(ds.create_user(new).await.is_err());
    assert!(
        ds.find_user(Lookup::Email(&email))
            .await
            .expect("db")
            .is_none(),
        "rolled back"
    );
    let new = NewUser {
        email: email.clone(),
        active: true,
        roles: vec!["user".into()],
        ..Default::default()
    };
    let user = ds.create_user(new).await.expect("create");
    assert_eq!(user.fs_uniquifier.len(), 32);
    ds.delete_user(user.id).await.expect("delete");
    assert!(
        ds.find_user(Lookup::Id(user.id))
            .await
            .expect("db")
            .is_none()
    );
}

#[rocket::async_test]
async fn typed_updates_reach_every_column() {
    let app = app().await;
    let admin = flask_security_rs::Admin::of(app.client.rocket()).expect("state");
    let ds = admin.datastore();
    let user = admin
        .create_user(NewUser::new(unique_email()), "typed-pass")
        .await
        .expect("create");
    assert!(user.tf_primary_method.is_none() && user.mf_recovery_codes.is_none());
    let mut update = flask_security_rs::UserUpdate::new().active(false);
    update.tf_primary_method = Some(Some("authenticator".into()));
    update.mf_recovery_codes = Some(Some("a,b".into()));
    update.us_phone_number = Some(Some("+15551234567".into()));
    ds.update_user(user.id, update).await.expect("update");
    let again = ds
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert!(!again.active);
    assert_eq!(again.tf_primary_method.as_deref(), Some("authenticator"));
    assert_eq!(again.mf_recovery_codes.as_deref(), Some("a,b"));
    assert_eq!(again.us_phone_number.as_deref(), Some("+15551234567"));
    // Clearing is an update too; unset fields stay.
    let mut clear = flask_security_rs::UserUpdate::new();
    clear.tf_primary_method = Some(None);
    ds.update_user(user.id, clear).await.expect("clear");
    let again = ds
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert!(again.tf_primary_method.is_none());
    assert_eq!(again.mf_recovery_codes.as_deref(), Some("a,b"));
    assert!(!format!("{again:?}").contains("a,b"), "no secrets in Debug");
}
