//! Changeable: `/change`.

use rocket::http::Status;
use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::Value;

use super::{Ctx, text};
use crate::datastore::User;
use crate::reply::{FormErrors, FormInput, Reply};
use crate::{auth, messages, session};

pub(super) fn routes() -> Vec<Route> {
    routes![change_get, change_post]
}

fn change_page(ctx: &Ctx<'_>, user: &User, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/change"));
    c.insert("active_password", &user.has_password());
    ctx.page("security/change_password.html.tera", c, errors)
}

#[get("/change")]
async fn change_get(ctx: Ctx<'_>) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    if !ctx.json() {
        return Ok(change_page(&ctx, &user, &FormErrors::new()));
    }
    let mut body = ctx.payload(Some(&user));
    body.insert("active_password".into(), Value::Bool(user.has_password()));
    Ok(Reply::ok(body))
}

#[post("/change", data = "<form>")]
async fn change_post(ctx: Ctx<'_>, form: FormInput) -> Result<Reply, Status> {
    // A user without a password (passwordless sign-in) must be fresh instead.
    let user = ctx.require_user(false).await?;
    let user = if user.has_password() {
        user
    } else {
        ctx.require_user(true).await?
    };
    let cfg = ctx.config();
    let mut errors = FormErrors::new();
    let current = text(&form, "password", &mut errors);
    let new = super::password_pair(&form, "new_password", "new_password_confirm", &mut errors);
    // The current password is checked once the new one is well-formed.
    if errors.is_empty() && user.has_password() {
        let pw = current.as_deref().unwrap_or_default();
        if current.is_none() {
            errors.add("password", messages::PASSWORD_NOT_PROVIDED);
        } else if !ctx.state.verify_password(&user, pw).await {
            errors.add("password", messages::INVALID_PASSWORD);
        } else if current == new {
            errors.add("password", messages::PASSWORD_IS_THE_SAME);
        }
    }
    if let (Some(n), true) = (&new, errors.is_empty()) {
        let inputs = [user.email.as_str(), user.username.as_deref().unwrap_or("")];
        for e in ctx.password_errors(n, &inputs).await {
            errors.add("new_password", e);
        }
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    };
    // Rotating the uniquifier ends every other session and token; this one is
    // logged in again right away.
    let user = match super::store_new_password(&ctx, user, &new).await {
        Ok(u) => u,
        Err(reply) => return Ok(reply),
    };
    let remember = session::remember_uid(ctx.req, ctx.state).is_some();
    auth::login_user(ctx.req, ctx.state, &user, remember).await;
    if cfg.send_password_change_email {
        let mut c = super::mail_context(&user);
        if cfg.recoverable {
            c.insert("reset_link", &ctx.external_url("/reset"));
        }
        ctx.mail(
            &user.email,
            &cfg.email_subject_password_change_notice.clone(),
            "change_notice",
            &c,
        )
        .await;
    }
    if !ctx.json() {
        ctx.flash("success", messages::PASSWORD_CHANGE);
        return Ok(Reply::Redirect(
            cfg.post_change_view
                .clone()
                .unwrap_or_else(|| cfg.post_login_view.clone()),
        ));
    }
    Ok(Reply::ok(ctx.authenticated_payload(&user)))
}
