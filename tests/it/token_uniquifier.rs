//! A user model with `fs_token_uniquifier`: auth tokens carry it, so they
//! outlive a password change (which rotates only `fs_uniquifier`), and
//! rotating it ends the tokens but not the session.

use flask_security_rs::UserDatastoreExt;
use flask_security_rs::entity::role;
use flask_security_rs::{CurrentUser, SeaOrmDatastore, Security, UserDatastore, auth_required};
use flask_security_rs::{Lookup, NewUser};
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::Client;
use rocket::{get, routes};
use sea_orm_migration::prelude::*;
use serde_json::json;

use crate::common::*;

mod tokuser {
    use flask_security_rs::entity::{role, roles_users};
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, flask_security_rs::SecurityUser)]
    #[sea_orm(table_name = "user")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub email: String,
        pub username: Option<String>,
        pub password: Option<String>,
        pub active: bool,
        pub fs_uniquifier: String,
        pub fs_token_uniquifier: Option<String>,
        pub confirmed_at: Option<DateTime>,
        pub create_datetime: DateTime,
        pub update_datetime: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl Related<role::Entity> for Entity {
        fn to() -> RelationDef {
            roles_users::Relation::Role.def()
        }
        fn via() -> Option<RelationDef> {
            Some(roles_users::Relation::User.def().rev())
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

#[auth_required("token")]
#[get("/me")]
fn me(user: CurrentUser) -> String {
    user.email.clone()
}

#[rocket::async_test]
async fn tokens_follow_the_token_uniquifier() {
    let db = migrated_db(|db| async move {
        let manager = SchemaManager::new(&db);
        if !manager
            .has_column("user", "fs_token_uniquifier")
            .await
            .expect("schema")
        {
            manager
                .alter_table(
                    Table::alter()
                        .table(Alias::new("user"))
                        .add_column(
                            ColumnDef::new(Alias::new("fs_token_uniquifier"))
                                .string_len(64)
                                .null(),
                        )
                        .to_owned(),
                )
                .await
                .expect("add column");
        }
    })
    .await;
    let store: std::sync::Arc<dyn UserDatastore> =
        std::sync::Arc::new(SeaOrmDatastore::<tokuser::Model, role::Model>::new(db));
    let email = unique_email();
    let fig = cheap_hashing(rocket::Config::figment())
        .merge(("security.secret_key", "k"))
        .merge(("security.password_salt", "salt"))
        .merge(("security.changeable", true))
        .merge(("security.csrf_protect_mechanisms", ["session"]))
        .merge(("security.csrf_ignore_unauth_endpoints", true));
    let rocket = rocket::custom(fig)
        .attach(Security::with_datastore(store.clone()))
        .mount("/", routes![me]);
    let client = Client::tracked(rocket).await.expect("rocket");
    let admin = flask_security_rs::Admin::of(client.rocket()).expect("state");
    let user = admin
        .create_user(NewUser::new(email.clone()), "first-password")
        .await
        .expect("user");
    let token_uniq = user.fs_token_uniquifier.clone().expect("set on create");
    assert_ne!(token_uniq, user.fs_uniquifier);
    let token = client_token(&client, &email, "first-password").await;
    let with_token = |t: String| {
        client
            .get("/me")
            .header(Header::new("Authentication-Token", t))
            .header(Header::new("Accept", "application/json"))
            .dispatch()
    };
    assert_eq!(with_token(token.clone()).await.status(), Status::Ok);

    // Change the password with the token (no session, so no CSRF needed).
    let r = client
        .post("/change")
        .header(ContentType::JSON)
        .header(Header::new("Authentication-Token", token.clone()))
        .body(json!({"password": "first-password", "new_password": "second-password", "new_password_confirm": "second-password"}).to_string())
        .dispatch()
        .await;
    assert_eq!(r.status(), Status::Ok);
    assert_eq!(
        with_token(token.clone()).await.status(),
        Status::Ok,
        "the token survives a password change"
    );

    store.set_token_uniquifier(user.id).await.expect("rotate");
    let after = store
        .find_user(Lookup::Id(user.id))
        .await
        .expect("db")
        .expect("user");
    assert_ne!(
        after.fs_token_uniquifier.as_deref(),
        Some(token_uniq.as_str())
    );
    assert_eq!(
        with_token(token).await.status(),
        Status::Unauthorized,
        "rotating it ends the token"
    );
}
