//! Changeable: `/change` (change password).

use rocket::http::Status;
use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;
use serde_json::Value;

use super::{Feature, Setup, section_keys, templates};
use crate::authn;
use crate::config::ConfigError;
use crate::datastore::User;
use crate::http::{BadBody, Ctx, FormErrors, FormInput, Reply, password_pair, text};
use crate::login::{self, Attempt, AuthnMethod, CredentialError, SignIn};
use crate::mail::{self, Outgoing};
use crate::messages::Msg;
use crate::passwords::{HashFailure, store_password};

/// The change-password feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ChangeConfig {
    /// `SECURITY_CHANGEABLE`. _Default:_ `false`.
    changeable: bool,
    /// `SECURITY_POST_CHANGE_VIEW`. _Default:_ none (`post_login_view`).
    post_change_view: Option<String>,
    /// `SECURITY_SEND_PASSWORD_CHANGE_EMAIL`. _Default:_ `true`.
    send_password_change_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_CHANGE_NOTICE`.
    /// _Default:_ `"Your password has been changed"`.
    email_subject_password_change_notice: String,
}

impl Default for ChangeConfig {
    fn default() -> Self {
        ChangeConfig {
            changeable: false,
            post_change_view: None,
            send_password_change_email: true,
            email_subject_password_change_notice: "Your password has been changed".into(),
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(ChangeConfig),
    templates: templates!(
        "security/change_password.html.tera",
        "security/email/change_notice.txt.tera",
        "security/email/change_notice.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: ChangeConfig = setup.section()?;
    if cfg.changeable {
        setup.manage(cfg);
        setup.mount("change", "/change", routes![change_get, change_post]);
    }
    Ok(())
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
async fn change_post(
    ctx: Ctx<'_>,
    cfg: &State<ChangeConfig>,
    form: Result<FormInput, BadBody>,
) -> Result<Reply, Status> {
    // A user without a password (passwordless sign-in) must be fresh instead.
    let user = ctx.require_user(false).await?;
    let user = if user.has_password() {
        user
    } else {
        ctx.require_user(true).await?
    };
    let form = match ctx.body(form) {
        Ok(f) => f,
        Err(reply) => return Ok(reply),
    };
    let mut errors = FormErrors::new();
    let current = text(&form, "password", &mut errors);
    let new = password_pair(&form, "new_password", "new_password_confirm", &mut errors);
    // The current password is checked once the new one is well-formed.
    if errors.is_empty() && user.has_password() {
        match &current {
            None => errors.add("password", Msg::PasswordNotProvided),
            Some(pw) => {
                let attempt = Attempt::new(ctx.req, AuthnMethod::ChangePassword)
                    .identity(&user.email)
                    .form(&form);
                match login::check_password(ctx.state, &attempt, Some(&user), pw).await {
                    Err(CredentialError::Refused(m)) => errors.add("password", m),
                    Err(CredentialError::Invalid) => errors.add("password", Msg::InvalidPassword),
                    Err(CredentialError::Busy) => {
                        return Ok(Reply::busy(ctx.state.passwords.wait()));
                    }
                    Err(CredentialError::Throttled(d, m)) => {
                        return Ok(ctx.throttled(d, m, |c, e| change_page(c, &user, e)));
                    }
                    Ok(()) if current == new => errors.add("password", Msg::PasswordIsTheSame),
                    Ok(()) => {}
                }
            }
        }
    }
    if let (Some(n), true) = (&new, errors.is_empty()) {
        let inputs = [user.email.as_str(), user.username.as_deref().unwrap_or("")];
        for e in ctx.state.policy.validate(n, &inputs).await {
            errors.add("new_password", e);
        }
    }
    let (Some(new), true) = (new, errors.is_empty()) else {
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    };
    // Rotating the uniquifier ends every other session and token; this one is
    // signed in again right away.
    let mut notice = Vec::new();
    if cfg.send_password_change_email {
        let mail = Outgoing {
            to: &user.email,
            subject: &cfg.email_subject_password_change_notice,
            template: "change_notice",
            context: Context::new(),
            about: Some(&user),
        };
        notice.extend(mail::render(&ctx, mail).await);
    }
    let user = match store_password(ctx.state, (*user).clone(), &new, notice).await {
        Ok(u) => u,
        Err(HashFailure::Busy) => return Ok(Reply::busy(ctx.state.passwords.wait())),
        Err(HashFailure::Failed) => {
            return Ok(Reply::error(Status::InternalServerError, Msg::ApiError));
        }
        Err(HashFailure::Unavailable) => return Ok(Reply::unavailable()),
        Err(HashFailure::Stale) => {
            // Changed (or reset) meanwhile: the password checked is no longer it.
            let errors = FormErrors::one("password", Msg::InvalidPassword);
            return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
        }
    };
    let remember = authn::session::has_remember(ctx.req, ctx.state);
    let attempt = Attempt::new(ctx.req, AuthnMethod::ChangePassword)
        .form(&form)
        .remember(remember);
    let issued = match login::sign_in(&ctx, user, &attempt).await {
        SignIn::Done(issued) => issued,
        SignIn::Answer(reply) => return Ok(reply),
        SignIn::Refused(m) => return Ok(Reply::error(Status::BadRequest, m)),
    };
    if !ctx.json() {
        ctx.flash(Msg::PasswordChange);
        return Ok(Reply::redirect(
            cfg.post_change_view
                .clone()
                .unwrap_or_else(|| ctx.config().post_login_view.clone()),
        ));
    }
    Ok(Reply::ok(issued.payload(&ctx)))
}
