//! Attribute and derive macros for `flask_security_rs`. Use them through the
//! re-exports in `flask_security_rs`; the generated code refers to
//! `::flask_security_rs::...` paths.
//!
//! # Route attributes
//!
//! `#[auth_required]`, `#[roles_required]`, `#[roles_accepted]`,
//! `#[permissions_required]`, `#[permissions_accepted]` and
//! `#[anonymous_user_required]` each add a hidden request-guard parameter
//! (named `__fs_*`) to a Rocket handler. Rocket evaluates it like any other
//! request guard, so the check cannot be skipped.
//!
//! **Write them above the route attribute.** Rocket's `#[get]` reads the
//! handler's parameters when it expands, so an attribute below it would add
//! its parameter too late; the macros detect that (no `#[get]`/`#[post]`/...
//! left on the function) and fail to compile instead.
//!
//! Stacked attributes run in source order: for
//!
//! ```ignore
//! #[auth_required("session")]
//! #[roles_required("admin")]
//! #[get("/admin")]
//! fn admin() -> &'static str { "admin only" }
//! ```
//!
//! the handler gets two hidden guard parameters (authentication, then roles),
//! typed with `::flask_security_rs::__private` paths, and the authentication
//! guard is evaluated before the role guard. Those types are not API.
//!
//! # Derives
//!
//! `#[derive(SecurityUser)]` / `#[derive(SecurityRole)]` go on a SeaORM `Model`
//! next to `DeriveEntityModel`, in the entity module (the generated code names
//! the `Column` enum of that module).

mod derive;
mod errors;
mod route;

use proc_macro::TokenStream;
use route::{Kind, NameListKind};

/// Requires an authenticated user.
///
/// # Grammar
///
/// ```text
/// #[auth_required]
/// #[auth_required(METHOD, ..., within = MINUTES, grace = MINUTES)]
/// METHOD := "token" | "session" | "basic"
/// ```
///
/// Methods may be given in any order, each at most once; none means the
/// configured `api_enabled_methods`. `within` adds Flask-Security's freshness
/// check (the user must have authenticated within that many minutes; a
/// negative value disables the check, as when it is absent), `grace` overrides
/// the configured freshness grace period (zero or more minutes).
///
/// # Expansion
///
/// Inserts a hidden `__fs_auth` guard parameter (a type from
/// `::flask_security_rs::__private`, not API).
#[proc_macro_attribute]
pub fn auth_required(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(Kind::Auth, args.into(), item.into()).into()
}

/// Requires every listed role: `#[roles_required("admin", "editor")]`.
///
/// Emits a hidden `pub struct __FsRolesRequired_<fn>` implementing
/// `::flask_security_rs::__private::NameList` with the names, and inserts
/// `__fs_roles_required` guard parameter.
/// The attribute may be repeated; later copies get a numeric suffix.
#[proc_macro_attribute]
pub fn roles_required(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(
        Kind::NameList(NameListKind::RolesRequired),
        args.into(),
        item.into(),
    )
    .into()
}

/// Requires at least one of the listed roles: `#[roles_accepted("a", "b")]`.
///
/// Expands like [`macro@roles_required`], with `RolesAccepted` and parameter
/// `__fs_roles_accepted`.
#[proc_macro_attribute]
pub fn roles_accepted(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(
        Kind::NameList(NameListKind::RolesAccepted),
        args.into(),
        item.into(),
    )
    .into()
}

/// Requires every listed permission: `#[permissions_required("user-write")]`.
///
/// Expands like [`macro@roles_required`], with `PermissionsRequired` and
/// parameter `__fs_permissions_required`.
#[proc_macro_attribute]
pub fn permissions_required(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(
        Kind::NameList(NameListKind::PermissionsRequired),
        args.into(),
        item.into(),
    )
    .into()
}

/// Requires at least one of the listed permissions.
///
/// Expands like [`macro@roles_required`], with `PermissionsAccepted` and
/// parameter `__fs_permissions_accepted`.
#[proc_macro_attribute]
pub fn permissions_accepted(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(
        Kind::NameList(NameListKind::PermissionsAccepted),
        args.into(),
        item.into(),
    )
    .into()
}

/// Requires that nobody is signed in (login, register, ... pages).
///
/// Takes no arguments; inserts
/// a hidden `__fs_anonymous` guard parameter.
#[proc_macro_attribute]
pub fn anonymous_user_required(args: TokenStream, item: TokenStream) -> TokenStream {
    route::expand(Kind::Anonymous, args.into(), item.into()).into()
}

/// Implements `flask_security_rs::SecurityUser` (the model trait) for a SeaORM `Model`.
///
/// Each field whose name is a Flask-Security user column (`id`, `email`,
/// `username`, `password`, `active`, `fs_uniquifier`, `fs_token_uniquifier`,
/// `confirmed_at`, `last_login_at`, `current_login_at`, `last_login_ip`,
/// `current_login_ip`, `login_count`, `tf_primary_method`, `tf_totp_secret`,
/// `tf_phone_number`, `us_totp_secrets`, `us_phone_number`,
/// `fs_webauthn_user_handle`, `mf_recovery_codes`, `create_datetime`,
/// `update_datetime`) is mapped to its `Column` variant; other fields are
/// ignored. `id`, `email`, `password`, `active` and `fs_uniquifier` are
/// required.
///
/// # Attributes
///
/// - field `#[security(field = "email")]`: this field holds that column.
/// - field `#[security(skip)]`: do not map this field.
/// - struct `#[security(payload = path::to::fn)]`: `security_payload(&self)`
///   returns `path::to::fn(self)` (a `fn(&Model) -> serde_json::Map<String,
///   serde_json::Value>`); without it the trait's default (`{}`) is used.
/// - struct `#[security(crate = "path")]`: where `flask_security_rs` is
///   (default `::flask_security_rs`).
///
/// # Generated
///
/// ```ignore
/// impl ::flask_security_rs::__private::SecurityUser for Model {
///     fn security_column(field: UserField) -> Option<ColumnOf<Self>> {
///         match field {
///             UserField::Email => Some(Column::Email),
///             // ...
///             _ => None,
///         }
///     }
/// }
/// ```
#[proc_macro_derive(SecurityUser, attributes(security))]
pub fn derive_security_user(input: TokenStream) -> TokenStream {
    derive::expand(&derive::USER, input.into()).into()
}

/// Implements `flask_security_rs::SecurityRole` (the model trait) for a SeaORM `Model`.
///
/// Like [`derive@SecurityUser`], with the role columns `id`, `name`,
/// `description`, `permissions` and `update_datetime` (`id` and `name`
/// required). Accepts the field attributes `field = ".."` and `skip`, and the
/// struct attribute `crate = ".."`.
#[proc_macro_derive(SecurityRole, attributes(security))]
pub fn derive_security_role(input: TokenStream) -> TokenStream {
    derive::expand(&derive::ROLE, input.into()).into()
}
