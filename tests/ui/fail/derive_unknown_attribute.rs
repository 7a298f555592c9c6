mod user {
    use flask_security_rs::SecurityUser;
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, SecurityUser)]
    #[sea_orm(table_name = "user")]
    #[security(serializer = super::payload)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        #[security(rename = "email")]
        pub mail: String,
        pub email: String,
        pub password: Option<String>,
        pub active: bool,
        pub fs_uniquifier: String,
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
    #[security(payload = super::payload)]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i32,
        pub name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

fn payload(_: &user::Model) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::new()
}

fn main() {}
