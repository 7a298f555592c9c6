//! `/register`.

use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::Value;

use super::{Ctx, normalize_email, text};
use crate::datastore::{Lookup, NewUser, User};
use crate::reply::{FormErrors, FormInput, Reply};
use crate::{auth, messages};

pub(super) fn routes() -> Vec<Route> {
    routes![register_get, register_post]
}

fn register_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    let field = |n: &str| {
        form.and_then(|f| f.text(n).ok().flatten())
            .unwrap_or_default()
    };
    c.insert("email", &field("email"));
    c.insert("username", &field("username"));
    ctx.page("security/register_user.html.tera", c, errors)
}

#[get("/register")]
async fn register_get(ctx: Ctx<'_>) -> Reply {
    if auth::current_user(ctx.req).await.is_some() {
        return ctx.anonymous_required();
    }
    ctx.form_get(|c, e| register_page(c, None, e))
}

/// Flask-Security's username rules: no markup, NFKD, length, letters and digits.
pub(crate) fn check_username(cfg: &crate::SecurityConfig, raw: &str) -> Result<String, String> {
    use unicode_normalization::UnicodeNormalization;
    let trimmed = raw.trim();
    if trimmed.contains(['<', '>', '&']) {
        return Err(messages::INVALID_INPUT.into());
    }
    if !trimmed.chars().all(char::is_alphanumeric) {
        return Err(messages::USERNAME_DISALLOWED_CHARACTERS.into());
    }
    let len = trimmed.chars().count();
    if len < cfg.username_min_length || len > cfg.username_max_length {
        return Err(messages::username_invalid_length(
            cfg.username_min_length,
            cfg.username_max_length,
        ));
    }
    Ok(trimmed.nfkd().collect())
}

#[post("/register", data = "<form>")]
async fn register_post(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if auth::current_user(ctx.req).await.is_some() {
        return ctx.anonymous_required();
    }
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    let cfg = ctx.config();
    let ds = &ctx.state.datastore;
    let mut errors = FormErrors::new();
    let email_raw = text(&form, "email", &mut errors);
    let username_raw = if cfg.username_enable {
        text(&form, "username", &mut errors)
    } else {
        None
    };
    let password = text(&form, "password", &mut errors);
    let confirm = text(&form, "password_confirm", &mut errors);

    let generic = cfg.return_generic_responses;
    let mut email = None;
    let mut existing_owner = None;
    let mut username_taken = false;
    match &email_raw {
        None if !errors.has("email") => errors.add("email", messages::EMAIL_NOT_PROVIDED),
        None => {}
        Some(raw) => match normalize_email(raw) {
            None => errors.add("email", messages::INVALID_EMAIL_ADDRESS),
            Some(e) => match ds.find_user(Lookup::Email(&e)).await {
                Ok(Some(owner)) if generic => {
                    existing_owner = Some(owner);
                    email = Some(e);
                }
                Ok(Some(_)) => errors.add("email", messages::email_already_associated(&e)),
                Ok(None) => email = Some(e),
                Err(err) => {
                    log::error!("register lookup failed: {err}");
                    errors.add("", messages::API_ERROR);
                }
            },
        },
    }
    // Field order of Flask-Security's form: email, password, password_confirm, username.
    match &password {
        None if !errors.has("password") => errors.add("password", messages::PASSWORD_NOT_PROVIDED),
        None => {}
        Some(pw) => {
            let inputs = [
                email.as_deref().unwrap_or(""),
                username_raw.as_deref().unwrap_or(""),
            ];
            for e in ctx.password_errors(pw, &inputs).await {
                errors.add("password", e);
            }
        }
    }
    if cfg.password_confirm_required && !errors.has("password_confirm") {
        match &confirm {
            None => errors.add("password_confirm", messages::PASSWORD_NOT_PROVIDED),
            Some(c) if password.as_deref() != Some(c.as_str()) => {
                errors.add("password_confirm", messages::RETYPE_PASSWORD_MISMATCH)
            }
            _ => {}
        }
    }
    let mut username = None;
    match &username_raw {
        None if cfg.username_required && !errors.has("username") => {
            errors.add("username", messages::USERNAME_NOT_PROVIDED)
        }
        None => {}
        Some(raw) => match check_username(cfg, raw) {
            Err(msg) => errors.add("username", msg),
            Ok(name) => match ds.find_user(Lookup::Username(&name)).await {
                Ok(Some(_)) if generic => {
                    username_taken = true;
                    username = Some(name);
                }
                Ok(Some(_)) => errors.add("username", messages::username_already_associated(&name)),
                Ok(None) => username = Some(name),
                Err(err) => {
                    log::error!("register lookup failed: {err}");
                    errors.add("", messages::API_ERROR);
                }
            },
        },
    }
    if let Some(n) =
        text(&form, "next", &mut errors).or_else(|| crate::reply::query_value(ctx.req, "next"))
        && !super::redirect_allowed(ctx.req, &n)
    {
        errors.add("next", messages::INVALID_REDIRECT);
    }
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return if ctx.json() {
            Reply::form_errors(&errors)
        } else {
            register_page(&ctx, Some(&form), &errors)
        };
    };

    // Generic responses: an existing identity gets a mail, the caller the same
    // answer as a registration (minus `user`), after the same hashing work.
    if existing_owner.is_some() || username_taken {
        let _ = ctx.state.hash_password(&password).await;
        match &existing_owner {
            Some(owner) => send_existing(&ctx, owner).await,
            None => {
                send_existing_username(&ctx, &email, username.as_deref().unwrap_or_default()).await
            }
        }
        return if ctx.json() {
            Reply::ok(ctx.payload(None))
        } else {
            Reply::Redirect(
                cfg.post_register_view
                    .clone()
                    .unwrap_or_else(|| cfg.post_login_view.clone()),
            )
        };
    }
    let Some(hash) = ctx.state.hash_password(&password).await else {
        errors.add("", messages::API_ERROR);
        return Reply::form_errors(&errors);
    };
    let new = NewUser {
        email: email.clone(),
        username,
        password_hash: Some(hash),
        active: true,
        ..Default::default()
    };
    let user = match ds.create_user(new).await {
        Ok(u) => u,
        Err(e) => {
            // Most likely a concurrent registration of the same identity.
            log::warn!("creating user failed: {e}");
            errors.add("email", messages::email_already_associated(&email));
            return if ctx.json() {
                Reply::form_errors(&errors)
            } else {
                register_page(&ctx, Some(&form), &errors)
            };
        }
    };
    if cfg.send_register_email {
        send_welcome(&ctx, &user).await;
    }
    let logged_in = !cfg.confirmable || cfg.login_without_confirmation;
    if logged_in {
        auth::login_user(ctx.req, ctx.state, &user, false).await;
    }
    if !ctx.json() {
        if cfg.confirmable {
            ctx.flash("success", messages::confirm_registration(&user.email));
        }
        let to = cfg
            .post_register_view
            .clone()
            .unwrap_or_else(|| cfg.post_login_view.clone());
        return Reply::Redirect(to);
    }
    let mut body = if logged_in {
        ctx.authenticated_payload(&user)
    } else {
        ctx.payload(Some(&user))
    };
    if logged_in {
        body.insert("tf_required".into(), Value::Bool(false));
    }
    Reply::ok(body)
}

async fn send_welcome(ctx: &Ctx<'_>, user: &User) {
    let mut c = super::mail_context(user);
    if ctx.config().confirmable {
        let token = super::confirm::confirmation_token(ctx.state, user).await;
        c.insert(
            "confirmation_link",
            &ctx.external_url(&format!("/confirm/{token}")),
        );
    }
    let subject = ctx.config().email_subject_register.clone();
    if let Err(e) = ctx
        .state
        .send_mail(&user.email, &subject, "welcome", &c)
        .await
    {
        log::error!("sending the welcome mail failed: {e}");
    }
}

/// Generic mode: tells the owner of an address that someone tried to register it.
async fn send_existing(ctx: &Ctx<'_>, owner: &User) {
    let cfg = ctx.config();
    let mut c = super::mail_context(owner);
    if cfg.recoverable {
        let token = super::recover::reset_token(ctx.state, owner).await;
        c.insert("reset_link", &ctx.external_url(&format!("/reset/{token}")));
    }
    if cfg.confirmable && owner.confirmed_at.is_none() {
        let token = super::confirm::confirmation_token(ctx.state, owner).await;
        c.insert(
            "confirmation_link",
            &ctx.external_url(&format!("/confirm/{token}")),
        );
    }
    ctx.mail(
        &owner.email,
        &cfg.email_subject_register.clone(),
        "welcome_existing",
        &c,
    )
    .await;
}

/// Generic mode: tells the registering address that the username is taken.
async fn send_existing_username(ctx: &Ctx<'_>, email: &str, username: &str) {
    let mut c = Context::new();
    c.insert("email", email);
    c.insert("username", username);
    ctx.mail(
        email,
        &ctx.config().email_subject_register.clone(),
        "welcome_existing_username",
        &c,
    )
    .await;
}
