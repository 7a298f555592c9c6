//! Username recovery: `/recover-username` mails the username to the address.

use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;

use super::{Feature, Setup, section_keys, templates};
use crate::config::ConfigError;
use crate::http::{Ctx, FormErrors, FormInput, Reply};
use crate::identity::{hide_account_errors, mail_target};
use crate::mail::{self, Outgoing};
use crate::messages::Msg;

/// The username-recovery feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RecoverUsernameConfig {
    /// `SECURITY_USERNAME_RECOVERY`. _Default:_ `false`.
    username_recovery: bool,
    /// `SECURITY_EMAIL_SUBJECT_USERNAME_RECOVERY`. _Default:_ `"Your requested username"`.
    email_subject_username_recovery: String,
}

impl Default for RecoverUsernameConfig {
    fn default() -> Self {
        RecoverUsernameConfig {
            username_recovery: false,
            email_subject_username_recovery: "Your requested username".into(),
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(RecoverUsernameConfig),
    templates: templates!(
        "security/recover_username.html.tera",
        "security/email/username_recovery.txt.tera",
        "security/email/username_recovery.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: RecoverUsernameConfig = setup.section()?;
    if cfg.username_recovery {
        setup.manage(cfg);
        setup.mount(
            "recover_username",
            "/recover-username",
            routes![recover_get, recover_post],
        );
    }
    Ok(())
}

fn recover_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/recover-username"));
    ctx.page("security/recover_username.html.tera", c, errors)
}

#[get("/recover-username")]
async fn recover_get(ctx: Ctx<'_>) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    ctx.form_get(recover_page)
}

#[post("/recover-username", data = "<form>")]
async fn recover_post(ctx: Ctx<'_>, cfg: &State<RecoverUsernameConfig>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let mut errors = FormErrors::new();
    let user = mail_target(&ctx, &form, &mut errors).await;
    let errors = hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, recover_page);
    }
    if let Some(u) = &user {
        let mut c = Context::new();
        c.insert("username", &u.username);
        mail::send(
            &ctx,
            Outgoing {
                to: &u.email,
                subject: &cfg.email_subject_username_recovery,
                template: "username_recovery",
                context: c,
                about: Some(u),
            },
        )
        .await;
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(None));
    }
    ctx.flash(Msg::UsernameRecoveryRequest);
    Reply::redirect(ctx.config().url("/login"))
}
