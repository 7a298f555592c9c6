//! Confirmable: `/confirm` (send the instructions again) and
//! `/confirm/<token>`; an account check that holds back unconfirmed users,
//! and the confirmation link in the welcome mails.

use std::sync::Arc;

use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;

use super::{Feature, Setup, section_keys, templates};
use crate::authn;
use crate::config::ConfigError;
use crate::datastore::{Lookup, User, UserUpdate};
use crate::http::{Ctx, FormErrors, FormInput, Param, Reply, text};
use crate::identity::normalize_email;
use crate::login::{self, Attempt, AuthnMethod};
use crate::mail::{self, MailContext, Outgoing};
use crate::messages::{Message, Msg, within_text};
use crate::passwords::{hash_data_async, verify_hash_async};
use crate::tokens::{SignedLink, UserLink};

/// The confirm feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ConfirmConfig {
    /// `SECURITY_CONFIRMABLE`. _Default:_ `false`.
    confirmable: bool,
    /// `SECURITY_LOGIN_WITHOUT_CONFIRMATION`. _Default:_ `false`.
    login_without_confirmation: bool,
    /// `SECURITY_AUTO_LOGIN_AFTER_CONFIRM`. _Default:_ `false`.
    auto_login_after_confirm: bool,
    /// `SECURITY_CONFIRM_EMAIL_WITHIN`, seconds. _Default:_ `172800` (2 days).
    confirm_email_within: i64,
    /// `SECURITY_EMAIL_SUBJECT_CONFIRM`. _Default:_ `"Please confirm your email"`.
    email_subject_confirm: String,
    /// `SECURITY_POST_CONFIRM_VIEW`. _Default:_ none.
    post_confirm_view: Option<String>,
    /// `SECURITY_CONFIRM_ERROR_VIEW`. _Default:_ none (`/confirm`).
    confirm_error_view: Option<String>,
    /// Salt of confirmation links. _Default:_ `"confirm-salt"`.
    confirm_salt: String,
}

impl Default for ConfirmConfig {
    fn default() -> Self {
        ConfirmConfig {
            confirmable: false,
            login_without_confirmation: false,
            auto_login_after_confirm: false,
            confirm_email_within: 2 * 24 * 3600,
            email_subject_confirm: "Please confirm your email".into(),
            post_confirm_view: None,
            confirm_error_view: None,
            confirm_salt: "confirm-salt".into(),
        }
    }
}

/// `[fs_uniquifier, hash_data(email)]`.
type Payload = (String, String);

/// The feature's state: its configuration and its links.
pub(crate) struct Confirm {
    cfg: ConfirmConfig,
    link: SignedLink<Payload>,
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(ConfirmConfig),
    templates: templates!(
        "security/send_confirmation.html.tera",
        "security/email/confirmation_instructions.txt.tera",
        "security/email/confirmation_instructions.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: ConfirmConfig = setup.section()?;
    if !cfg.confirmable {
        return Ok(());
    }
    ConfigError::positive_secs("confirm_email_within", cfg.confirm_email_within)?;
    let link = SignedLink::new(&cfg.confirm_salt, cfg.confirm_email_within);
    if !cfg.login_without_confirmation {
        setup.account_check(|user| {
            user.confirmed_at
                .is_none()
                .then_some(Msg::ConfirmationRequired)
        });
    }
    let confirm = Arc::new(Confirm { cfg, link });
    setup.mail_context(ConfirmationLink(confirm.clone()));
    setup.manage(confirm);
    setup.mount(
        "confirm",
        "/confirm",
        routes![confirm_get, confirm_post, confirm_token, confirm_token_post],
    );
    Ok(())
}

impl Confirm {
    /// A confirmation link for `user`.
    async fn link_for(&self, ctx: &Ctx<'_>, user: &User) -> String {
        let payload = (
            user.fs_uniquifier.clone(),
            hash_data_async(&user.email).await,
        );
        let token = self.link.issue(ctx.state, &payload);
        ctx.external_url(&format!("/confirm/{token}"))
    }

    async fn send_instructions(&self, ctx: &Ctx<'_>, user: &User) {
        let mut c = Context::new();
        c.insert("confirmation_link", &self.link_for(ctx, user).await);
        mail::send(
            ctx,
            Outgoing {
                to: &user.email,
                subject: &self.cfg.email_subject_confirm,
                template: "confirmation_instructions",
                context: c,
                about: Some(user),
            },
        )
        .await;
    }
}

/// Puts `confirmation_link` in the welcome mails of unconfirmed users.
struct ConfirmationLink(Arc<Confirm>);

#[rocket::async_trait]
impl MailContext for ConfirmationLink {
    async fn extend(&self, ctx: &Ctx<'_>, template: &str, user: &User, context: &mut Context) {
        if matches!(template, "welcome" | "welcome_existing") && user.confirmed_at.is_none() {
            context.insert("confirmation_link", &self.0.link_for(ctx, user).await);
        }
    }
}

fn confirm_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let c = ctx.form_context(form, &["email"]);
    ctx.page("security/send_confirmation.html.tera", c, errors)
}

#[get("/confirm")]
async fn confirm_get(ctx: Ctx<'_>) -> Reply {
    ctx.form_get(|c, e| confirm_page(c, None, e))
}

#[post("/confirm", data = "<form>")]
async fn confirm_post(ctx: Ctx<'_>, confirm: &State<Arc<Confirm>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let mut errors = FormErrors::new();
    let email = text(&form, "email", &mut errors);
    let mut target = None;
    match &email {
        None if !errors.has("email") => errors.add("email", Msg::EmailNotProvided),
        None => {}
        Some(raw) => match normalize_email(raw) {
            None => errors.add("email", Msg::InvalidEmailAddress),
            Some(e) => match ctx.state.datastore.find_user(Lookup::Email(&e)).await {
                Ok(Some(u)) if u.confirmed_at.is_some() => {
                    errors.add("email", Msg::AlreadyConfirmed)
                }
                Ok(Some(u)) => target = Some(u),
                Ok(None) => errors.add("email", Msg::UserDoesNotExist),
                Err(err) => {
                    errors.backend_failed("confirm lookup", &err);
                }
            },
        },
    }
    let errors = crate::identity::hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, |c, e| confirm_page(c, Some(&form), e));
    }
    if let Some(user) = &target {
        confirm.send_instructions(&ctx, user).await;
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(None));
    }
    let shown = target
        .as_ref()
        .map(|u| u.email.clone())
        .or(email)
        .unwrap_or_default();
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    c.insert("email", "");
    Reply::page(crate::http::Page {
        status: rocket::http::Status::Ok,
        template: "security/send_confirmation.html.tera",
        context: c,
        errors: FormErrors::new(),
        messages: Some(vec![
            Message::new(Msg::ConfirmationRequest).arg("email", shown),
        ]),
    })
}

/// The link also works as a POST (Flask-Security routes both).
#[post("/confirm/<token>")]
async fn confirm_token_post(ctx: Ctx<'_>, confirm: &State<Arc<Confirm>>, token: &str) -> Reply {
    confirm_token(ctx, confirm, token).await
}

#[get("/confirm/<token>")]
async fn confirm_token(ctx: Ctx<'_>, confirm: &State<Arc<Confirm>>, token: &str) -> Reply {
    let core = ctx.config();
    let cfg = &confirm.cfg;
    let error_view = cfg
        .confirm_error_view
        .clone()
        .unwrap_or_else(|| core.url("/confirm"));
    let fail = |kind: &'static str, msg: Message| {
        if core.spa() {
            ctx.spa(&error_view, vec![(kind, Param::Msg(msg))])
        } else {
            ctx.flash(msg);
            Reply::redirect(error_view.clone())
        }
    };
    let user = match confirm.link.check_user(ctx.state, token).await {
        UserLink::Invalid | UserLink::Expired(None) => {
            return fail("error", Msg::InvalidConfirmationToken.into());
        }
        UserLink::Expired(Some(user)) => {
            confirm.send_instructions(&ctx, &user).await;
            let msg = Message::new(Msg::ConfirmationExpired)
                .arg("within", within_text(confirm.link.max_age()));
            return fail("error", msg);
        }
        UserLink::Valid(user, (_, email_hash)) => {
            if !verify_hash_async(&email_hash, &user.email).await {
                return fail("error", Msg::InvalidConfirmationToken.into());
            }
            if user.confirmed_at.is_some() {
                return fail("info", Msg::AlreadyConfirmed.into());
            }
            user
        }
    };
    let stamp = ctx.state.clock.naive_utc();
    // Consumed once: of concurrent uses of the link, one confirms.
    let update = UserUpdate::new().confirmed_at(Some(stamp)).if_unconfirmed();
    match ctx.state.datastore.update_user(user.id, update).await {
        Ok(true) => {}
        Ok(false) => return fail("info", Msg::AlreadyConfirmed.into()),
        Err(e) => return Reply::failed("confirming the user", &e),
    }
    let user = User {
        confirmed_at: Some(stamp),
        ..*user
    };
    // Whoever else was logged in in this browser is logged out.
    if authn::current_user(ctx.req)
        .await
        .is_none_or(|current| current.id != user.id)
        && let Err(e) = authn::logout_user(ctx.req, ctx.state).await
    {
        return Reply::failed("revoking the session", &e);
    }
    let mut signed_in = false;
    if cfg.auto_login_after_confirm {
        let attempt = Attempt::new(ctx.req, AuthnMethod::Confirm);
        match login::sign_in(&ctx, user.clone(), &attempt).await {
            login::SignIn::Answer(reply) => return reply,
            login::SignIn::Done(_) => signed_in = true,
            login::SignIn::Refused(_) => {}
        }
    }
    let view = cfg.post_confirm_view.clone().unwrap_or_else(|| {
        if signed_in {
            core.post_login_view.clone()
        } else {
            core.url("/login")
        }
    });
    if core.spa() {
        ctx.spa(
            &view,
            vec![
                ("success", Param::Msg(Msg::EmailConfirmed.into())),
                ("email", Param::Plain(user.email.clone())),
                ("identity", Param::Plain(user.email.clone())),
            ],
        )
    } else {
        ctx.flash(Msg::EmailConfirmed);
        Reply::redirect(view)
    }
}
