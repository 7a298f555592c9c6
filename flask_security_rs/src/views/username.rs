//! `/change-username` and `/recover-username`.

use rocket::http::Status;
use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::Value;

use super::recover::{hide_account_errors, mail_target};
use super::register::check_username;
use super::{Ctx, text};
use crate::datastore::{Lookup, User, UserField};
use crate::messages;
use crate::reply::{FormErrors, FormInput, Reply};

pub(super) fn change_routes() -> Vec<Route> {
    routes![change_get, change_post]
}

pub(super) fn recovery_routes() -> Vec<Route> {
    routes![recover_get, recover_post]
}

fn change_page(ctx: &Ctx<'_>, user: &User, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/change-username"));
    c.insert("current_username", &user.username);
    ctx.page("security/change_username.html.tera", c, errors)
}

#[get("/change-username")]
async fn change_get(ctx: Ctx<'_>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    if !ctx.json() {
        return Ok(change_page(&ctx, &user, &FormErrors::new()));
    }
    let mut body = ctx.payload(Some(&user));
    body.insert(
        "current_username".into(),
        user.username
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    Ok(Reply::ok(body))
}

#[post("/change-username", data = "<form>")]
async fn change_post(ctx: Ctx<'_>, form: FormInput) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    let cfg = ctx.config();
    let mut errors = FormErrors::new();
    let mut name = None;
    match text(&form, "username", &mut errors) {
        None if !errors.has("username") => errors.add("username", messages::USERNAME_NOT_PROVIDED),
        None => {}
        Some(raw) => match check_username(cfg, &raw) {
            Err(msg) => errors.add("username", msg),
            Ok(n) => match ctx.state.datastore.find_user(Lookup::Username(&n)).await {
                Ok(Some(_)) => errors.add("username", messages::username_already_associated(&n)),
                Ok(None) => name = Some(n),
                Err(e) => {
                    log::error!("lookup failed: {e}");
                    errors.add("", messages::API_ERROR);
                }
            },
        },
    }
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    };
    let change = vec![(
        UserField::Username,
        sea_orm::Value::String(Some(name.clone())),
    )];
    if let Err(e) = ctx.state.datastore.update_user(user.id, change).await {
        log::warn!("changing the username failed: {e}");
        errors.add("username", messages::username_already_associated(&name));
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    }
    let user = User {
        username: Some(name),
        ..user
    };
    if cfg.send_username_change_email {
        let mut c = super::mail_context(&user);
        c.insert("username", &user.username);
        ctx.mail(
            &user.email,
            &cfg.email_subject_username_change_notice.clone(),
            "change_username_notice",
            &c,
        )
        .await;
    }
    if !ctx.json() {
        ctx.flash("success", messages::USERNAME_CHANGE);
        return Ok(Reply::Redirect(
            cfg.post_change_username_view
                .clone()
                .unwrap_or_else(|| cfg.post_login_view.clone()),
        ));
    }
    Ok(Reply::ok(ctx.payload(Some(&user))))
}

fn recover_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/recover-username"));
    ctx.page("security/recover_username.html.tera", c, errors)
}

#[get("/recover-username")]
async fn recover_get(ctx: Ctx<'_>) -> Reply {
    if crate::auth::current_user(ctx.req).await.is_some() {
        return ctx.anonymous_required();
    }
    ctx.form_get(recover_page)
}

#[post("/recover-username", data = "<form>")]
async fn recover_post(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if crate::auth::current_user(ctx.req).await.is_some() {
        return ctx.anonymous_required();
    }
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    let mut errors = FormErrors::new();
    let user = mail_target(&ctx, &form, &mut errors).await;
    let errors = hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, recover_page);
    }
    if let Some(u) = &user {
        let mut c = super::mail_context(u);
        c.insert("username", &u.username);
        ctx.mail(
            &u.email,
            &ctx.config().email_subject_username_recovery.clone(),
            "username_recovery",
            &c,
        )
        .await;
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(None));
    }
    ctx.flash("info", messages::USERNAME_RECOVERY_REQUEST);
    Reply::Redirect(ctx.config().url("/login"))
}
