// `#[derive(SecurityUser)]` / `#[derive(SecurityRole)]` on SeaORM entities:
// name-based mapping, `field = ".."`, `skip`, `payload`, `#[sea_orm(ignore)]`,
// `#[sea_orm(enum_name = "..")]`, `crate = ".."` and extra application columns.
#![deny(warnings)]

mod user {
    use flask_security_rs::SecurityUser;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, SecurityUser)]
    #[sea_orm(table_name = "user")]
    #[security(payload = super::payload)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[security(field = "email")]
        pub mail: String,
        pub password: Option<String>,
        pub active: bool,
        #[sea_orm(enum_name = "Uniquifier")]
        pub fs_uniquifier: String,
        #[security(skip)]
        pub username: Option<String>,
        pub r#type: Option<String>,
        pub nickname: Option<String>,
        #[sea_orm(ignore)]
        pub login_count: i32,
        pub update_datetime: DateTime,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

mod role {
    use flask_security_rs::SecurityRole;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, SecurityRole)]
    #[sea_orm(table_name = "role")]
    #[security(crate = "flask_security_rs")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[sea_orm(unique)]
        pub name: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub permissions: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn payload(user: &user::Model) -> serde_json::Map<String, serde_json::Value> {
    let mut map = serde_json::Map::new();
    map.insert("email".into(), user.mail.clone().into());
    map
}

fn main() {
    use flask_security_rs::__private::{RoleField, SecurityRole, SecurityUser, UserField};

    let user_column = <user::Model as SecurityUser>::security_column;
    assert!(matches!(user_column(UserField::Id), Some(user::Column::Id)));
    assert!(matches!(
        user_column(UserField::Email),
        Some(user::Column::Mail)
    ));
    assert!(matches!(
        user_column(UserField::Password),
        Some(user::Column::Password)
    ));
    assert!(matches!(
        user_column(UserField::Active),
        Some(user::Column::Active)
    ));
    assert!(matches!(
        user_column(UserField::FsUniquifier),
        Some(user::Column::Uniquifier)
    ));
    assert!(matches!(
        user_column(UserField::UpdateDatetime),
        Some(user::Column::UpdateDatetime)
    ));
    assert!(user_column(UserField::Username).is_none());
    assert!(user_column(UserField::LoginCount).is_none());
    assert!(user_column(UserField::ConfirmedAt).is_none());

    let role_column = <role::Model as SecurityRole>::security_column;
    assert!(matches!(role_column(RoleField::Id), Some(role::Column::Id)));
    assert!(matches!(
        role_column(RoleField::Name),
        Some(role::Column::Name)
    ));
    assert!(matches!(
        role_column(RoleField::Permissions),
        Some(role::Column::Permissions)
    ));
    assert!(role_column(RoleField::Description).is_none());

    let model = user::Model {
        id: 1,
        mail: "matt@lp.com".into(),
        password: None,
        active: true,
        fs_uniquifier: "u".into(),
        username: None,
        r#type: None,
        nickname: None,
        login_count: 0,
        update_datetime: Default::default(),
    };
    let payload = model.security_payload();
    assert_eq!(
        payload.get("email"),
        Some(&serde_json::Value::from("matt@lp.com"))
    );
}
