//! Recoverable: `/reset` (forgot password) and `/reset/<token>`.

use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::{Value, json};

use super::{Ctx, normalize_email, text};
use crate::datastore::{Lookup, User};
use crate::reply::{FormErrors, FormInput, Reply};
use crate::token::TokenError;
use crate::{SecurityState, auth, messages};

pub(super) fn routes() -> Vec<Route> {
    routes![forgot_get, forgot_post, reset_get, reset_post]
}

/// Finds the account a "send me a mail" form names, with Flask-Security's
/// checks: exists, active, confirmed (when confirmation is required).
/// Returns the user, or the error put on `email`.
pub(super) async fn mail_target(
    ctx: &Ctx<'_>,
    form: &FormInput,
    errors: &mut FormErrors,
) -> Option<User> {
    let email = text(form, "email", errors);
    let raw = match email {
        None if !errors.has("email") => {
            errors.add("email", messages::EMAIL_NOT_PROVIDED);
            return None;
        }
        None => return None,
        Some(raw) => raw,
    };
    let Some(email) = normalize_email(&raw) else {
        errors.add("email", messages::INVALID_EMAIL_ADDRESS);
        return None;
    };
    let cfg = ctx.config();
    match ctx.state.datastore.find_user(Lookup::Email(&email)).await {
        Ok(Some(u)) if !u.active => errors.add("email", messages::DISABLED_ACCOUNT),
        Ok(Some(u))
            if cfg.confirmable && !cfg.login_without_confirmation && u.confirmed_at.is_none() =>
        {
            errors.add("email", messages::CONFIRMATION_REQUIRED)
        }
        Ok(Some(u)) => return Some(u),
        Ok(None) => errors.add("email", messages::USER_DOES_NOT_EXIST),
        Err(e) => {
            log::error!("lookup failed: {e}");
            errors.add("", messages::API_ERROR);
        }
    }
    None
}

/// In generic-responses mode, errors that would reveal whether an account
/// exists are dropped (a missing field is still reported).
pub(super) fn hide_account_errors(ctx: &Ctx<'_>, errors: FormErrors) -> FormErrors {
    if ctx.config().return_generic_responses && !errors.has("") {
        return FormErrors::new();
    }
    errors
}

/// A signed reset token: `[fs_uniquifier, hash_data(password) or null]`.
pub(crate) async fn reset_token(state: &SecurityState, user: &User) -> String {
    let pw = user.password.clone();
    let hashed = match pw {
        Some(p) => rocket::tokio::task::spawn_blocking(move || crate::password::hash_data(&p))
            .await
            .map(Value::String)
            .unwrap_or(Value::Null),
        None => Value::Null,
    };
    state
        .serializer(&state.config.reset_salt)
        .dumps_at(&json!([user.fs_uniquifier, hashed]), state.clock.now_secs())
}

pub(crate) async fn send_reset_instructions(ctx: &Ctx<'_>, user: &User) {
    let token = reset_token(ctx.state, user).await;
    let mut c = super::mail_context(user);
    c.insert("reset_link", &ctx.external_url(&format!("/reset/{token}")));
    c.insert("reset_token", &token);
    c.insert(
        "within",
        &messages::within_text(ctx.config().reset_password_within),
    );
    ctx.mail(
        &user.email,
        &ctx.config().email_subject_password_reset.clone(),
        "reset_instructions",
        &c,
    )
    .await;
}

fn forgot_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/reset"));
    ctx.page("security/forgot_password.html.tera", c, errors)
}

#[get("/reset")]
async fn forgot_get(ctx: Ctx<'_>) -> Reply {
    ctx.form_get(forgot_page)
}

#[post("/reset", data = "<form>")]
async fn forgot_post(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    let mut errors = FormErrors::new();
    let user = mail_target(&ctx, &form, &mut errors).await;
    let errors = hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, forgot_page);
    }
    match &user {
        Some(u) if ctx.config().send_password_reset_email => send_reset_instructions(&ctx, u).await,
        Some(_) => {}
        // Unknown account in generic mode: spend the time a real request takes.
        None => ctx.state.dummy_verify().await,
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(None));
    }
    // The same words whether or not the address has an account.
    let shown = user
        .as_ref()
        .map(|u| u.email.clone())
        .or_else(|| form.text("email").ok().flatten())
        .unwrap_or_default();
    ctx.flash("info", messages::password_reset_request(&shown));
    forgot_page(&ctx, &FormErrors::new())
}

enum Checked {
    Valid(Box<User>),
    Expired,
    Invalid,
}

async fn check_reset_token(state: &SecurityState, token: &str) -> Checked {
    let ser = state.serializer(&state.config.reset_salt);
    let (payload, expired) = match ser.loads_at(
        token,
        Some(state.config.reset_password_within),
        state.clock.now_secs(),
    ) {
        Ok(p) => (p, false),
        Err(TokenError::Expired { payload, .. }) => (payload, true),
        Err(_) => return Checked::Invalid,
    };
    if expired {
        return Checked::Expired;
    }
    let Some(uid) = payload.get(0).and_then(Value::as_str) else {
        return Checked::Invalid;
    };
    match state.datastore.find_user(Lookup::Uniquifier(uid)).await {
        Ok(Some(u)) => Checked::Valid(Box::new(u)),
        _ => Checked::Invalid,
    }
}

fn token_error(state: &SecurityState, checked: &Checked) -> String {
    match checked {
        Checked::Expired => messages::password_reset_expired(&messages::within_text(
            state.config.reset_password_within,
        )),
        _ => messages::INVALID_RESET_PASSWORD_TOKEN.to_string(),
    }
}

fn reset_page(ctx: &Ctx<'_>, token: &str, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url(&format!("/reset/{token}")));
    ctx.page("security/reset_password.html.tera", c, errors)
}

#[get("/reset/<token>")]
async fn reset_get(ctx: Ctx<'_>, token: &str) -> Reply {
    let cfg = ctx.config();
    let checked = check_reset_token(ctx.state, token).await;
    if cfg.spa() {
        return match checked {
            Checked::Valid(_) => ctx.redirect_with(
                cfg.reset_view.as_deref().unwrap_or("/"),
                &[("token", token)],
            ),
            other => ctx.redirect_with(
                cfg.reset_error_view.as_deref().unwrap_or("/"),
                &[("error", &token_error(ctx.state, &other))],
            ),
        };
    }
    match checked {
        Checked::Valid(_) => reset_page(&ctx, token, &FormErrors::new()),
        other => {
            ctx.flash("error", token_error(ctx.state, &other));
            Reply::Redirect(cfg.url("/reset"))
        }
    }
}

#[post("/reset/<token>", data = "<form>")]
async fn reset_post(ctx: Ctx<'_>, token: &str, form: FormInput) -> Reply {
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    let cfg = ctx.config();
    let mut errors = FormErrors::new();
    let user = match check_reset_token(ctx.state, token).await {
        Checked::Valid(u) => *u,
        other => {
            errors.add("", token_error(ctx.state, &other));
            if ctx.json() {
                return Reply::form_errors(&errors);
            }
            ctx.flash("error", token_error(ctx.state, &other));
            return Reply::Redirect(cfg.url("/reset"));
        }
    };
    let password = super::password_pair(&form, "password", "password_confirm", &mut errors);
    if let (Some(pw), true) = (&password, errors.is_empty()) {
        let inputs = [user.email.as_str(), user.username.as_deref().unwrap_or("")];
        for e in ctx.password_errors(pw, &inputs).await {
            errors.add("password", e);
        }
    }
    let (Some(password), true) = (password, errors.is_empty()) else {
        return ctx.invalid(&errors, |c, e| reset_page(c, token, e));
    };
    // The new uniquifier makes the link single-use and ends every session and token.
    let user = match super::store_new_password(&ctx, user, &password).await {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    if cfg.send_password_reset_notice_email {
        let c = super::mail_context(&user);
        ctx.mail(
            &user.email,
            &cfg.email_subject_password_notice.clone(),
            "reset_notice",
            &c,
        )
        .await;
    }
    if cfg.auto_login_after_reset {
        if auth::session_user(ctx.req)
            .await
            .is_some_and(|u| u.id != user.id)
        {
            auth::logout_user(ctx.req, ctx.state);
        }
        auth::login_user(ctx.req, ctx.state, &user, false).await;
        if ctx.json() {
            let mut body = ctx.authenticated_payload(&user);
            body.insert("tf_required".into(), Value::Bool(false));
            return Reply::ok(body);
        }
        ctx.flash("success", messages::PASSWORD_RESET);
        return Reply::Redirect(
            cfg.post_reset_view
                .clone()
                .unwrap_or_else(|| cfg.post_login_view.clone()),
        );
    }
    if ctx.json() {
        return Reply::ok(Default::default());
    }
    ctx.flash("success", messages::PASSWORD_RESET_NO_LOGIN);
    Reply::Redirect(
        cfg.post_reset_view
            .clone()
            .unwrap_or_else(|| cfg.url("/login")),
    )
}
