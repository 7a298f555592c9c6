//! Recoverable: `/reset` (forgot password) and `/reset/<token>`, and reset
//! links in other features' mails.

use std::sync::Arc;

use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;

use super::{Feature, Setup, section_keys, templates};
use crate::authn;
use crate::config::ConfigError;
use crate::datastore::User;
use crate::http::{Ctx, FormErrors, FormInput, Param, Reply, password_pair};
use crate::identity::{hide_account_errors, mail_target};
use crate::login::{self, Attempt, AuthnMethod, SignIn};
use crate::mail::{self, MailContext, Outgoing};
use crate::messages::{Message, Msg, within_text};
use crate::passwords::{HashFailure, hash_data_async, store_password};
use crate::tokens::{SignedLink, UserLink};

/// The recover feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RecoverConfig {
    /// `SECURITY_RECOVERABLE`. _Default:_ `false`.
    recoverable: bool,
    /// `SECURITY_RESET_PASSWORD_WITHIN`, seconds. _Default:_ `86400` (1 day).
    reset_password_within: i64,
    /// `SECURITY_SEND_PASSWORD_RESET_EMAIL`. _Default:_ `true`.
    send_password_reset_email: bool,
    /// `SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL`. _Default:_ `true`.
    send_password_reset_notice_email: bool,
    /// `SECURITY_AUTO_LOGIN_AFTER_RESET`. _Default:_ `false`.
    auto_login_after_reset: bool,
    /// `SECURITY_RESET_VIEW` (SPA). _Default:_ none.
    reset_view: Option<String>,
    /// `SECURITY_RESET_ERROR_VIEW` (SPA). _Default:_ none.
    reset_error_view: Option<String>,
    /// `SECURITY_POST_RESET_VIEW`. _Default:_ none.
    post_reset_view: Option<String>,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_RESET`. _Default:_ `"Password reset instructions"`.
    email_subject_password_reset: String,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORD_NOTICE`. _Default:_ `"Your password has been reset"`.
    email_subject_password_notice: String,
    /// Salt of reset links. _Default:_ `"reset-salt"`.
    reset_salt: String,
}

impl Default for RecoverConfig {
    fn default() -> Self {
        RecoverConfig {
            recoverable: false,
            reset_password_within: 24 * 3600,
            send_password_reset_email: true,
            send_password_reset_notice_email: true,
            auto_login_after_reset: false,
            reset_view: None,
            reset_error_view: None,
            post_reset_view: None,
            email_subject_password_reset: "Password reset instructions".into(),
            email_subject_password_notice: "Your password has been reset".into(),
            reset_salt: "reset-salt".into(),
        }
    }
}

/// `[fs_uniquifier, hash_data(password) or null]`.
type Payload = (String, Option<String>);

pub(crate) struct Recover {
    cfg: RecoverConfig,
    link: SignedLink<Payload>,
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(RecoverConfig),
    templates: templates!(
        "security/forgot_password.html.tera",
        "security/reset_password.html.tera",
        "security/email/reset_instructions.txt.tera",
        "security/email/reset_instructions.html.tera",
        "security/email/reset_notice.txt.tera",
        "security/email/reset_notice.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: RecoverConfig = setup.section()?;
    if !cfg.recoverable {
        return Ok(());
    }
    ConfigError::positive_secs("reset_password_within", cfg.reset_password_within)?;
    let link = SignedLink::new(&cfg.reset_salt, cfg.reset_password_within);
    let recover = Arc::new(Recover { cfg, link });
    setup.mail_context(ResetLinks(recover.clone()));
    setup.manage(recover);
    setup.mount(
        "reset",
        "/reset",
        routes![forgot_get, forgot_post, reset_get, reset_post],
    );
    Ok(())
}

impl Recover {
    async fn token_for(&self, ctx: &Ctx<'_>, user: &User) -> String {
        let hashed = match &user.password {
            Some(p) => Some(hash_data_async(p).await),
            None => None,
        };
        self.link
            .issue(ctx.state, &(user.fs_uniquifier.clone(), hashed))
    }

    async fn send_instructions(&self, ctx: &Ctx<'_>, user: &User) {
        let token = self.token_for(ctx, user).await;
        let mut c = Context::new();
        c.insert("reset_link", &ctx.external_url(&format!("/reset/{token}")));
        c.insert("reset_token", &token);
        c.insert("within", &within_text(self.link.max_age()));
        mail::send(
            ctx,
            Outgoing {
                to: &user.email,
                subject: &self.cfg.email_subject_password_reset,
                template: "reset_instructions",
                context: c,
                about: Some(user),
            },
        )
        .await;
    }

    async fn check(&self, ctx: &Ctx<'_>, token: &str) -> Result<User, Message> {
        match self.link.check_user(ctx.state, token).await {
            UserLink::Valid(u, _) => Ok(*u),
            UserLink::Expired(_) => Err(Message::new(Msg::PasswordResetExpired)
                .arg("within", within_text(self.link.max_age()))),
            UserLink::Invalid => Err(Msg::InvalidResetPasswordToken.into()),
        }
    }
}

/// Reset links in other features' mails: a ready link when someone tried to
/// register an existing address, the reset page in the change notice.
struct ResetLinks(Arc<Recover>);

#[rocket::async_trait]
impl MailContext for ResetLinks {
    async fn extend(&self, ctx: &Ctx<'_>, template: &str, user: &User, context: &mut Context) {
        match template {
            "welcome_existing" => {
                let token = self.0.token_for(ctx, user).await;
                context.insert("reset_link", &ctx.external_url(&format!("/reset/{token}")));
            }
            "change_notice" => context.insert("reset_link", &ctx.external_url("/reset")),
            _ => {}
        }
    }
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
async fn forgot_post(ctx: Ctx<'_>, recover: &State<Arc<Recover>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let mut errors = FormErrors::new();
    let user = mail_target(&ctx, &form, &mut errors).await;
    let errors = hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, forgot_page);
    }
    match &user {
        Some(u) if recover.cfg.send_password_reset_email => {
            recover.send_instructions(&ctx, u).await
        }
        Some(_) => {}
        // Unknown account in generic mode: do the work a real request does
        // (the link's password digest; the mail itself only goes into the
        // outbox, so sending it costs no time to hide).
        None => {
            let _ = hash_data_async(&ctx.state.passwords.decoy_hash()).await;
        }
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
    ctx.flash(Message::new(Msg::PasswordResetRequest).arg("email", shown));
    forgot_page(&ctx, &FormErrors::new())
}

fn reset_page(ctx: &Ctx<'_>, token: &str, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url(&format!("/reset/{token}")));
    ctx.page("security/reset_password.html.tera", c, errors)
}

#[get("/reset/<token>")]
async fn reset_get(ctx: Ctx<'_>, recover: &State<Arc<Recover>>, token: &str) -> Reply {
    let cfg = &recover.cfg;
    let checked = recover.check(&ctx, token).await;
    if ctx.config().spa() {
        return match checked {
            Ok(_) => ctx.spa(
                cfg.reset_view.as_deref().unwrap_or("/"),
                vec![("token", Param::Plain(token.to_string()))],
            ),
            Err(msg) => ctx.spa(
                cfg.reset_error_view.as_deref().unwrap_or("/"),
                vec![("error", Param::Msg(msg))],
            ),
        };
    }
    match checked {
        Ok(_) => reset_page(&ctx, token, &FormErrors::new()),
        Err(msg) => {
            ctx.flash(msg);
            Reply::redirect(ctx.config().url("/reset"))
        }
    }
}

#[post("/reset/<token>", data = "<form>")]
async fn reset_post(
    ctx: Ctx<'_>,
    recover: &State<Arc<Recover>>,
    token: &str,
    form: FormInput,
) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let cfg = &recover.cfg;
    let user = match recover.check(&ctx, token).await {
        Ok(u) => u,
        Err(msg) => {
            if ctx.json() {
                return Reply::form(FormErrors::one("", msg));
            }
            ctx.flash(msg);
            return Reply::redirect(ctx.config().url("/reset"));
        }
    };
    let mut errors = FormErrors::new();
    let password = password_pair(&form, "password", "password_confirm", &mut errors);
    if let (Some(pw), true) = (&password, errors.is_empty()) {
        let inputs = [user.email.as_str(), user.username.as_deref().unwrap_or("")];
        for e in ctx.state.policy.validate(pw, &inputs).await {
            errors.add("password", e);
        }
    }
    let (Some(password), true) = (password, errors.is_empty()) else {
        return ctx.invalid(&errors, |c, e| reset_page(c, token, e));
    };
    // The new uniquifier makes the link single-use and ends every session and token.
    let mut notice = Vec::new();
    if cfg.send_password_reset_notice_email {
        let mail = Outgoing {
            to: &user.email,
            subject: &cfg.email_subject_password_notice,
            template: "reset_notice",
            context: Context::new(),
            about: Some(&user),
        };
        notice.extend(mail::render(&ctx, mail).await);
    }
    let user = match store_password(ctx.state, user, &password, notice).await {
        Ok(u) => u,
        Err(HashFailure::Busy) => return Reply::busy(ctx.state.passwords.wait()),
        Err(HashFailure::Failed) => {
            return Reply::error(rocket::http::Status::InternalServerError, Msg::ApiError);
        }
        Err(HashFailure::Unavailable) => return Reply::unavailable(),
        // Another use of this link (or a password change) won: the link is spent.
        Err(HashFailure::Stale) => {
            let msg = Msg::InvalidResetPasswordToken;
            if ctx.json() {
                return Reply::form(FormErrors::one("", msg));
            }
            ctx.flash(msg);
            return Reply::redirect(ctx.config().url("/reset"));
        }
    };
    if cfg.auto_login_after_reset {
        if authn::session_user(ctx.req)
            .await
            .is_some_and(|u| u.id != user.id)
            && let Err(e) = authn::logout_user(ctx.req, ctx.state).await
        {
            return Reply::failed("revoking the session", &e);
        }
        let attempt = Attempt::new(ctx.req, AuthnMethod::Reset).form(&form);
        match login::sign_in(&ctx, user, &attempt).await {
            SignIn::Answer(reply) => return reply,
            SignIn::Done(issued) => {
                if ctx.json() {
                    return Reply::ok(issued.payload(&ctx));
                }
                ctx.flash(Msg::PasswordReset);
                return Reply::redirect(
                    cfg.post_reset_view
                        .clone()
                        .unwrap_or_else(|| ctx.config().post_login_view.clone()),
                );
            }
            SignIn::Refused(_) => {}
        }
    }
    if ctx.json() {
        return Reply::ok(Default::default());
    }
    ctx.flash(Msg::PasswordResetNoLogin);
    Reply::redirect(
        cfg.post_reset_view
            .clone()
            .unwrap_or_else(|| ctx.config().url("/login")),
    )
}
