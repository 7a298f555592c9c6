//! Sign in and out: `/login`, `/logout`, `/verify` (re-authentication).
//! Always installed.

use rocket::{Route, State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Feature, Setup, section_keys, templates};
use crate::authn;
use crate::config::ConfigError;
use crate::datastore::{Lookup, User};
use crate::guards::CurrentUser;
use crate::http::redirect::{next_param, redirect_allowed, redirect_target};
use crate::http::{Ctx, FormErrors, FormInput, Reply, query_value, text};
use crate::identity::normalize_email;
use crate::login::{self, Attempt, AuthnMethod, CredentialError, SignIn};
use crate::messages::Msg;

/// The login feature's keys.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginConfig {
    /// `SECURITY_DEFAULT_REMEMBER_ME`. _Default:_ `false`.
    default_remember_me: bool,
    /// `SECURITY_LOGOUT_CSRF`: `/logout` needs a CSRF token. _Default:_ `false`.
    logout_csrf: bool,
    /// `SECURITY_POST_VERIFY_VIEW`. _Default:_ none (`post_login_view`).
    post_verify_view: Option<String>,
    /// `SECURITY_LOGIN_ERROR_VIEW` (SPA). _Default:_ none.
    login_error_view: Option<String>,
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(LoginConfig),
    templates: templates!("security/login_user.html.tera", "security/verify.html.tera"),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: LoginConfig = setup.section()?;
    if let Some(v) = &cfg.login_error_view
        && v.trim().is_empty()
    {
        return Err(ConfigError::new("login_error_view", "must not be empty"));
    }
    setup.manage(cfg);
    // Until passkeys or OAuth say otherwise: no other way to re-authenticate.
    setup.reauth_option("has_webauthn_verify_credential", Value::Bool(false));
    setup.reauth_option("oauth_enabled", Value::Bool(false));
    setup.reauth_option("oauth_providers", json!([]));
    setup.mount("login", "/login", routes());
    Ok(())
}

fn routes() -> Vec<Route> {
    routes![login_get, login_post, logout, verify_get, verify_post]
}

fn login_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let mut c = ctx.form_context(form, &["email", "username"]);
    c.insert(
        "next",
        &form
            .and_then(|f| f.text("next").ok().flatten())
            .or_else(|| query_value(ctx.req, "next"))
            .unwrap_or_default(),
    );
    ctx.page("security/login_user.html.tera", c, errors)
}

#[get("/login")]
async fn login_get(ctx: Ctx<'_>) -> Reply {
    let user = authn::current_user(ctx.req).await;
    if !ctx.json() {
        if user.is_some() {
            return Reply::redirect(ctx.config().post_login_view.clone());
        }
        let token = authn::csrf::generate(ctx.req, ctx.state);
        authn::csrf::set_cookie(ctx.req, ctx.state, &token);
        return login_page(&ctx, None, &FormErrors::new());
    }
    let mut body = ctx.payload(user);
    if user.is_none()
        && let Some(Value::String(token)) = body.get("csrf_token")
    {
        authn::csrf::set_cookie(ctx.req, ctx.state, token);
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
        Some(n) if redirect_allowed(ctx.req, n) => redirect_target(n),
        _ => ctx.config().post_login_view.clone(),
    }
}

/// The login form, checked field by field the way Flask-Security's
/// `LoginForm` does, before any account is looked up.
struct LoginForm {
    email: Option<String>,
    username: Option<String>,
    password: String,
    remember: bool,
    next: Option<String>,
}

fn read_form(ctx: &Ctx<'_>, cfg: &LoginConfig, form: &FormInput) -> Result<LoginForm, FormErrors> {
    let core = ctx.config();
    let mut errors = FormErrors::new();
    let email = text(form, "email", &mut errors);
    let username = if core.username_enable {
        text(form, "username", &mut errors)
    } else {
        None
    };
    let password = text(form, "password", &mut errors);
    let remember = match form.boolean("remember") {
        Ok(v) => v.unwrap_or(cfg.default_remember_me),
        Err(_) => {
            errors.add("remember", Msg::ApiError);
            false
        }
    };
    let next = next_param(form, ctx.req, &mut errors);
    if let Some(e) = &email
        && normalize_email(e).is_none()
    {
        errors.add("email", Msg::InvalidEmailAddress);
    }
    if let Some(u) = &username
        && !u.chars().all(char::is_alphanumeric)
    {
        errors.add("username", Msg::UsernameDisallowedCharacters);
    }
    if form.is_null("email") {
        errors.add("email", Msg::EmailNotProvided);
    }
    if password.is_none() && !errors.has("password") {
        errors.add("password", Msg::PasswordNotProvided);
    }
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", Msg::InvalidRedirect);
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(LoginForm {
        email,
        username,
        password: password.unwrap_or_default(),
        remember,
        next,
    })
}

/// Why a login did not get past its credentials.
enum Failed {
    /// The form's errors.
    Form(FormErrors),
    /// No hashing slot: 503.
    Busy,
    /// Throttled: 429.
    Throttled(std::time::Duration, crate::messages::Message),
}

impl From<FormErrors> for Failed {
    fn from(e: FormErrors) -> Self {
        Failed::Form(e)
    }
}

/// Checks the credentials through the login pipeline; the user and the
/// field errors are reported on.
async fn check_login(
    ctx: &Ctx<'_>,
    form: &FormInput,
    login: &LoginForm,
) -> Result<(User, &'static str), Failed> {
    // A blank email is looked up (and not found); an absent identity is a form error.
    let blank_email = form.text_or_blank("email").is_some();
    let (field, identity, found) = match (&login.email, &login.username) {
        (Some(e), _) => (
            "email",
            e.as_str(),
            ctx.state.datastore.find_user(Lookup::Email(e)).await,
        ),
        (None, Some(u)) => (
            "username",
            u.as_str(),
            ctx.state.datastore.find_user(Lookup::Username(u)).await,
        ),
        (None, None) => {
            if ctx.state.passwords.dummy_verify().await.is_err() {
                return Err(Failed::Busy);
            }
            let field = if blank_email { "email" } else { "" };
            return Err(FormErrors::one(field, Msg::UserDoesNotExist).into());
        }
    };
    let user = match found {
        Ok(u) => u,
        Err(e) => {
            let mut errors = FormErrors::new();
            errors.backend_failed("login lookup", &e);
            return Err(errors.into());
        }
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::Password)
        .identity(identity)
        .form(form);
    match login::check_password(ctx.state, &attempt, user.as_ref(), &login.password).await {
        Ok(()) => {}
        Err(CredentialError::Refused(m)) => return Err(FormErrors::one("", m).into()),
        Err(CredentialError::Busy) => return Err(Failed::Busy),
        Err(CredentialError::Throttled(d, m)) => return Err(Failed::Throttled(d, m)),
        Err(CredentialError::Invalid) => {
            return Err(match user {
                None => FormErrors::one(field, Msg::UserDoesNotExist),
                Some(_) => FormErrors::one("password", Msg::InvalidPassword),
            }
            .into());
        }
    }
    // The credentials are good: `user` is there.
    user.map(|u| (u, field))
        .ok_or_else(|| FormErrors::one(field, Msg::UserDoesNotExist).into())
}

#[post("/login", data = "<form>")]
async fn login_post(ctx: Ctx<'_>, cfg: &State<LoginConfig>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let failed = |errors: FormErrors| {
        if errors.is_unavailable() {
            return Reply::unavailable();
        }
        let errors = if ctx.config().return_generic_responses && !errors.has("next") {
            FormErrors::one("", Msg::GenericAuthnFailed)
        } else {
            errors
        };
        if ctx.json() {
            Reply::form(errors)
        } else {
            login_page(&ctx, Some(&form), &errors)
        }
    };
    let login = match read_form(&ctx, cfg, &form) {
        Ok(l) => l,
        Err(errors) => return failed(errors),
    };
    let (user, field) = match check_login(&ctx, &form, &login).await {
        Ok(found) => found,
        Err(Failed::Form(errors)) => return failed(errors),
        Err(Failed::Busy) => return Reply::busy(ctx.state.passwords.wait()),
        Err(Failed::Throttled(d, m)) => {
            return ctx.throttled(d, m, |c, e| login_page(c, Some(&form), e));
        }
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::Password)
        .form(&form)
        .remember(login.remember);
    let issued = match login::sign_in(&ctx, user, &attempt).await {
        SignIn::Done(issued) => issued,
        SignIn::Refused(problem) => return failed(FormErrors::one(field, problem)),
        SignIn::Answer(reply) => return reply,
    };
    if !ctx.json() {
        return Reply::redirect(post_login_target(&ctx, login.next.as_deref()));
    }
    Reply::ok(issued.payload(&ctx))
}

#[post("/logout", data = "<form>")]
async fn logout(ctx: Ctx<'_>, cfg: &State<LoginConfig>, form: FormInput) -> Reply {
    if cfg.logout_csrf
        && authn::session_user(ctx.req).await.is_some()
        && let Err(e) = authn::csrf::validate(
            ctx.req,
            ctx.state,
            form.text("csrf_token").ok().flatten().as_deref(),
        )
    {
        return ctx.csrf_failed(e.message());
    }
    if let Err(e) = authn::logout_user(ctx.req, ctx.state).await {
        return Reply::failed("revoking the session", &e);
    }
    if ctx.json() {
        return Reply::ok(Default::default());
    }
    match next_param(&form, ctx.req, &mut FormErrors::new()) {
        Some(n) if redirect_allowed(ctx.req, &n) => Reply::redirect(redirect_target(&n)),
        _ => Reply::redirect(ctx.config().post_logout_view.clone()),
    }
}

fn verify_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    c.insert("next", &query_value(ctx.req, "next").unwrap_or_default());
    ctx.page("security/verify.html.tera", c, errors)
}

#[get("/verify")]
async fn verify_get(ctx: Ctx<'_>, user: CurrentUser) -> Reply {
    if !ctx.json() {
        return verify_page(&ctx, &FormErrors::new());
    }
    let mut body = ctx.payload(Some(&user));
    body.extend(ctx.state.hooks.reauth_options.clone());
    Reply::ok(body)
}

#[post("/verify", data = "<form>")]
async fn verify_post(
    ctx: Ctx<'_>,
    cfg: &State<LoginConfig>,
    user: CurrentUser,
    form: FormInput,
) -> Reply {
    let mut errors = FormErrors::new();
    let password = text(&form, "password", &mut errors);
    let next = next_param(&form, ctx.req, &mut errors);
    match &password {
        None if !errors.has("password") => errors.add("password", Msg::PasswordNotProvided),
        Some(pw) => {
            let attempt = Attempt::new(ctx.req, AuthnMethod::Password)
                .identity(&user.email)
                .form(&form);
            match login::check_password(ctx.state, &attempt, Some(&user), pw).await {
                Ok(()) => {}
                Err(CredentialError::Refused(m)) => errors.add("password", m),
                Err(CredentialError::Invalid) => errors.add("password", Msg::InvalidPassword),
                Err(CredentialError::Busy) => return Reply::busy(ctx.state.passwords.wait()),
                Err(CredentialError::Throttled(d, m)) => {
                    return ctx.throttled(d, m, verify_page);
                }
            }
        }
        None => {}
    }
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", Msg::InvalidRedirect);
    }
    if !errors.is_empty() {
        return ctx.invalid(&errors, verify_page);
    }
    authn::reauthenticated(ctx.req, ctx.state);
    if !ctx.json() {
        let to = next
            .filter(|n| redirect_allowed(ctx.req, n))
            .map(|n| redirect_target(&n))
            .or_else(|| cfg.post_verify_view.clone())
            .unwrap_or_else(|| ctx.config().post_login_view.clone());
        return Reply::redirect(to);
    }
    Reply::ok(login::authenticated_payload(&ctx, &user))
}
