// Every route attribute on real Rocket routes: default and explicit methods,
// freshness arguments, stacking, user parameters, `pub` handlers in a module
// and path-qualified route attributes.
#![deny(warnings)]

use flask_security_rs::__private::NameList;
use flask_security_rs::{
    anonymous_user_required, auth_required, permissions_accepted, permissions_required,
    roles_accepted, roles_required,
};
use rocket::{get, post, routes};

#[auth_required]
#[get("/")]
fn any_method() -> &'static str {
    "any configured method"
}

#[auth_required("basic", "token", "session")]
#[get("/all")]
fn all_methods() -> &'static str {
    "all methods"
}

#[auth_required("session", within = 10, grace = 0)]
#[post("/change-password")]
fn fresh() -> &'static str {
    "fresh session"
}

#[auth_required(within = -1)]
#[get("/no-freshness")]
fn no_freshness() -> &'static str {
    "explicitly no freshness check"
}

#[auth_required(grace = 5, within = 5)]
#[get("/keys-any-order")]
fn keys_any_order() -> &'static str {
    "keys in any order"
}

#[auth_required("token")]
#[roles_required("admin", "editor")]
#[get("/items/<id>?<verbose>")]
async fn stacked(id: u32, verbose: Option<bool>) -> String {
    format!("{id} {verbose:?}")
}

#[roles_accepted("author", "editor")]
#[roles_accepted("reviewer")]
#[get("/review")]
fn twice() -> &'static str {
    "(author or editor) and reviewer"
}

#[permissions_required("user-read", "user-write")]
#[rocket::put("/users")]
fn permissions() -> &'static str {
    "both permissions"
}

#[permissions_accepted("user-read")]
#[rocket::route(GET, uri = "/users")]
fn any_permission() -> &'static str {
    "one permission"
}

#[anonymous_user_required]
#[get("/login")]
fn login_page() -> &'static str {
    "only when signed out"
}

mod api {
    use flask_security_rs::{auth_required, roles_required};
    use rocket::get;

    #[auth_required("token")]
    #[roles_required("admin")]
    #[get("/api/admin")]
    pub fn r#admin() -> &'static str {
        "pub handler with a raw identifier"
    }
}

fn main() {
    let _rocket = rocket::build().mount(
        "/",
        routes![
            any_method,
            all_methods,
            fresh,
            no_freshness,
            keys_any_order,
            stacked,
            twice,
            permissions,
            any_permission,
            login_page,
            api::admin,
        ],
    );

    assert_eq!(__FsRolesRequired_stacked::NAMES, ["admin", "editor"]);
    assert_eq!(__FsRolesAccepted_twice::NAMES, ["author", "editor"]);
    assert_eq!(__FsRolesAccepted2_twice::NAMES, ["reviewer"]);
    assert_eq!(
        __FsPermissionsRequired_permissions::NAMES,
        ["user-read", "user-write"]
    );
    assert_eq!(__FsPermissionsAccepted_any_permission::NAMES, ["user-read"]);
    assert_eq!(api::__FsRolesRequired_admin::NAMES, ["admin"]);
}
