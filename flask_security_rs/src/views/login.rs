//! `/login`, `/logout`, `/verify`.

use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::{Value, json};

use super::{Ctx, redirect_allowed, text};
use crate::datastore::{Lookup, User};
use crate::reply::{FormErrors, FormInput, Reply, query_value};
use crate::{auth, csrf, messages};

pub(super) fn routes() -> Vec<Route> {
    routes![login_get, login_post, logout, verify_get, verify_post]
}

fn login_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    let field = |n: &str| {
        form.and_then(|f| f.text(n).ok().flatten())
            .unwrap_or_default()
    };
    c.insert("email", &field("email"));
    c.insert("username", &field("username"));
    c.insert(
        "next",
        &form
            .and_then(|f| f.text("next").ok().flatten())
            .or_else(|| query_value(ctx.req, "next"))
            .unwrap_or_default(),
    );
    c.insert(
        "register_url",
        &ctx.config()
            .registerable
            .then(|| ctx.config().url("/register")),
    );
    c.insert(
        "confirm_url",
        &ctx.config()
            .confirmable
            .then(|| ctx.config().url("/confirm")),
    );
    ctx.page("security/login_user.html.tera", c, errors)
}

#[get("/login")]
async fn login_get(ctx: Ctx<'_>) -> Reply {
    let user = auth::current_user(ctx.req).await;
    if !ctx.json() {
        if user.is_some() {
            return Reply::Redirect(ctx.config().post_login_view.clone());
        }
        let token = ctx.csrf_token();
        csrf::set_cookie(ctx.req, ctx.state, &token);
        return login_page(&ctx, None, &FormErrors::new());
    }
    let mut body = ctx.payload(user);
    let token = body
        .get("csrf_token")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if user.is_none() {
        csrf::set_cookie(ctx.req, ctx.state, &token);
    }
    body.insert(
        "identity_attributes".into(),
        json!(ctx.config().identity_attributes()),
    );
    Reply::ok(body)
}

/// Where to go after logging in: a valid `next`, else `post_login_view`.
fn post_login_target(ctx: &Ctx<'_>, next: Option<&str>) -> String {
    match next {
        Some(n) if redirect_allowed(ctx.req, n) => super::redirect_target(n),
        _ => ctx.config().post_login_view.clone(),
    }
}

struct Credentials {
    user: User,
    remember: bool,
    next: Option<String>,
}

/// Validates the login form the way Flask-Security's `LoginForm` does.
async fn check_login(ctx: &Ctx<'_>, form: &FormInput) -> Result<Credentials, FormErrors> {
    let cfg = ctx.config();
    let mut errors = FormErrors::new();
    let email = text(form, "email", &mut errors);
    let username = if cfg.username_enable {
        text(form, "username", &mut errors)
    } else {
        None
    };
    let password = text(form, "password", &mut errors);
    let remember = match form.boolean("remember") {
        Ok(v) => v.unwrap_or(cfg.default_remember_me),
        Err(_) => {
            errors.add("remember", messages::API_ERROR);
            false
        }
    };
    let next = super::next_param(form, ctx.req, &mut errors);
    if let Some(e) = &email
        && super::normalize_email(e).is_none()
    {
        errors.add("email", messages::INVALID_EMAIL_ADDRESS);
    }
    if let Some(u) = &username
        && !u.chars().all(char::is_alphanumeric)
    {
        errors.add("username", messages::USERNAME_DISALLOWED_CHARACTERS);
    }
    if form.is_null("email") {
        errors.add("email", messages::EMAIL_NOT_PROVIDED);
    }
    if password.is_none() && !errors.has("password") {
        errors.add("password", messages::PASSWORD_NOT_PROVIDED);
    }
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", messages::INVALID_REDIRECT);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let password = password.unwrap_or_default();
    // A blank email is looked up (and not found); an absent identity is a form error.
    let blank_email = form.text_or_blank("email").is_some();
    let (field, found) = match (&email, &username) {
        (Some(e), _) => (
            "email",
            ctx.state.datastore.find_user(Lookup::Email(e)).await,
        ),
        (None, None) if blank_email => {
            ctx.state.dummy_verify().await;
            errors.add("email", messages::USER_DOES_NOT_EXIST);
            return Err(errors);
        }
        (None, Some(u)) => (
            "username",
            ctx.state.datastore.find_user(Lookup::Username(u)).await,
        ),
        (None, None) => {
            ctx.state.dummy_verify().await;
            errors.add("", messages::USER_DOES_NOT_EXIST);
            return Err(errors);
        }
    };
    let user = match found {
        Ok(Some(u)) => u,
        Ok(None) => {
            ctx.state.dummy_verify().await;
            errors.add(field, messages::USER_DOES_NOT_EXIST);
            return Err(errors);
        }
        Err(e) => {
            log::error!("login lookup failed: {e}");
            errors.add("", messages::API_ERROR);
            return Err(errors);
        }
    };
    if !ctx.state.verify_password(&user, &password).await {
        errors.add("password", messages::INVALID_PASSWORD);
        return Err(errors);
    }
    if cfg.confirmable && !cfg.login_without_confirmation && user.confirmed_at.is_none() {
        errors.add(field, messages::CONFIRMATION_REQUIRED);
        return Err(errors);
    }
    if !user.active {
        errors.add(field, messages::DISABLED_ACCOUNT);
        return Err(errors);
    }
    Ok(Credentials {
        user,
        remember,
        next,
    })
}

#[post("/login", data = "<form>")]
async fn login_post(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    if auth::current_user(ctx.req).await.is_some() {
        return ctx.anonymous_required();
    }
    let creds = match check_login(&ctx, &form).await {
        Ok(c) => c,
        Err(mut errors) => {
            if ctx.config().return_generic_responses && !errors.has("next") {
                errors = FormErrors::new();
                errors.add("", messages::GENERIC_AUTHN_FAILED);
            }
            return if ctx.json() {
                Reply::form_errors(&errors)
            } else {
                login_page(&ctx, Some(&form), &errors)
            };
        }
    };
    // login_user also sends the CSRF cookie.
    auth::login_user(ctx.req, ctx.state, &creds.user, creds.remember).await;
    if !ctx.json() {
        return Reply::Redirect(post_login_target(&ctx, creds.next.as_deref()));
    }
    let mut body = ctx.authenticated_payload(&creds.user);
    body.insert("tf_required".into(), Value::Bool(false));
    Reply::ok(body)
}

#[post("/logout", data = "<form>")]
async fn logout(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if ctx.config().logout_csrf
        && auth::session_user(ctx.req).await.is_some()
        && let Err(e) = csrf::validate(
            ctx.req,
            ctx.state,
            form.text("csrf_token").ok().flatten().as_deref(),
        )
    {
        return ctx.csrf_failed(e);
    }
    auth::logout_user(ctx.req, ctx.state);
    if ctx.json() {
        return Reply::ok(Default::default());
    }
    let next = super::next_param(&form, ctx.req, &mut FormErrors::new());
    match next {
        Some(n) if redirect_allowed(ctx.req, &n) => Reply::Redirect(super::redirect_target(&n)),
        _ => Reply::Redirect(ctx.config().post_logout_view.clone()),
    }
}

fn verify_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    c.insert("next", &query_value(ctx.req, "next").unwrap_or_default());
    ctx.page("security/verify.html.tera", c, errors)
}

#[get("/verify")]
async fn verify_get(ctx: Ctx<'_>, user: crate::CurrentUser) -> Reply {
    if !ctx.json() {
        return verify_page(&ctx, &FormErrors::new());
    }
    let mut body = ctx.payload(Some(&user));
    body.insert("has_webauthn_verify_credential".into(), Value::Bool(false));
    body.insert("oauth_enabled".into(), Value::Bool(false));
    body.insert("oauth_providers".into(), json!([]));
    Reply::ok(body)
}

#[post("/verify", data = "<form>")]
async fn verify_post(ctx: Ctx<'_>, user: crate::CurrentUser, form: FormInput) -> Reply {
    let mut errors = FormErrors::new();
    let password = text(&form, "password", &mut errors);
    let next = super::next_param(&form, ctx.req, &mut errors);
    match &password {
        None if !errors.has("password") => errors.add("password", messages::PASSWORD_NOT_PROVIDED),
        Some(pw) if !ctx.state.verify_password(&user, pw).await => {
            errors.add("password", messages::INVALID_PASSWORD)
        }
        _ => {}
    }
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", messages::INVALID_REDIRECT);
    }
    if !errors.is_empty() {
        return if ctx.json() {
            Reply::form_errors(&errors)
        } else {
            verify_page(&ctx, &errors)
        };
    }
    let now = ctx.state.clock.now();
    crate::session::update(ctx.req, |s| {
        if s.user_id.is_some() {
            s.fs_paa = Some(now);
            s.fs_gexp = None;
        }
    });
    if !ctx.json() {
        let to = next
            .filter(|n| redirect_allowed(ctx.req, n))
            .map(|n| super::redirect_target(&n))
            .or_else(|| ctx.config().post_verify_view.clone())
            .unwrap_or_else(|| ctx.config().post_login_view.clone());
        return Reply::Redirect(to);
    }
    Reply::ok(ctx.authenticated_payload(&user))
}
