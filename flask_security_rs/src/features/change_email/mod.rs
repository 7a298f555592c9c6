//! Change email: `/change-email` and `/change-email/<token>`: a link to the
//! new address confirms it.

use std::sync::Arc;

use rocket::http::Status;
use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;
use serde_json::Value;

use super::{Feature, Setup, section_keys, templates};
use crate::config::ConfigError;
use crate::datastore::DatastoreError;
use crate::datastore::{Lookup, User, UserUpdate};
use crate::http::{BadBody, Ctx, FormErrors, FormInput, Param, Reply, text};
use crate::identity::normalize_email;
use crate::mail::{self, Outgoing};
use crate::messages::{Message, Msg, within_text};
use crate::passwords::{hash_data_async, verify_hash_async};
use crate::tokens::{SignedLink, UserLink};

/// The change-email feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ChangeEmailConfig {
    /// `SECURITY_CHANGE_EMAIL`. _Default:_ `false`.
    change_email: bool,
    /// `SECURITY_CHANGE_EMAIL_WITHIN`, seconds. _Default:_ `7200` (2 hours).
    change_email_within: i64,
    /// `SECURITY_CHANGE_EMAIL_SUBJECT`. _Default:_ `"Confirm your new email address"`.
    change_email_subject: String,
    /// `SECURITY_POST_CHANGE_EMAIL_VIEW`. _Default:_ none (`post_login_view`).
    post_change_email_view: Option<String>,
    /// `SECURITY_CHANGE_EMAIL_ERROR_VIEW`. _Default:_ none (`/change-email`).
    change_email_error_view: Option<String>,
    /// Salt of change-email links. _Default:_ `"change-email-salt"`.
    change_email_salt: String,
}

impl Default for ChangeEmailConfig {
    fn default() -> Self {
        ChangeEmailConfig {
            change_email: false,
            change_email_within: 2 * 3600,
            change_email_subject: "Confirm your new email address".into(),
            post_change_email_view: None,
            change_email_error_view: None,
            change_email_salt: "change-email-salt".into(),
        }
    }
}

/// `[fs_uniquifier, hash_data(old_email), new_email]`.
type Payload = (String, String, String);

pub(crate) struct ChangeEmail {
    cfg: ChangeEmailConfig,
    link: SignedLink<Payload>,
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(ChangeEmailConfig),
    templates: templates!(
        "security/change_email.html.tera",
        "security/email/change_email_instructions.txt.tera",
        "security/email/change_email_instructions.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: ChangeEmailConfig = setup.section()?;
    if !cfg.change_email {
        return Ok(());
    }
    ConfigError::positive_secs("change_email_within", cfg.change_email_within)?;
    let link = SignedLink::new(&cfg.change_email_salt, cfg.change_email_within);
    setup.manage(Arc::new(ChangeEmail { cfg, link }));
    setup.mount(
        "change_email",
        "/change-email",
        routes![change_email_get, change_email_post, change_email_confirm],
    );
    Ok(())
}

fn page(ctx: &Ctx<'_>, user: &User, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/change-email"));
    c.insert("current_email", &user.email);
    ctx.page("security/change_email.html.tera", c, errors)
}

fn body(ctx: &Ctx<'_>, user: &User) -> Reply {
    let mut b = ctx.payload(Some(user));
    b.insert("current_email".into(), Value::String(user.email.clone()));
    Reply::ok(b)
}

#[get("/change-email")]
async fn change_email_get(ctx: Ctx<'_>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    Ok(if ctx.json() {
        body(&ctx, &user)
    } else {
        page(&ctx, &user, &FormErrors::new())
    })
}

#[post("/change-email", data = "<form>")]
async fn change_email_post(
    ctx: Ctx<'_>,
    feature: &State<Arc<ChangeEmail>>,
    form: Result<FormInput, BadBody>,
) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    let form = match ctx.body(form) {
        Ok(f) => f,
        Err(reply) => return Ok(reply),
    };
    let cfg = &feature.cfg;
    let mut errors = FormErrors::new();
    let raw = text(&form, "email", &mut errors);
    let mut new_email = None;
    let mut taken = false;
    match &raw {
        None if !errors.has("email") => errors.add("email", Msg::EmailNotProvided),
        None => {}
        Some(r) => match normalize_email(r) {
            None => errors.add("email", Msg::InvalidEmailAddress),
            Some(e) => match ctx.state.datastore.find_user(Lookup::Email(&e)).await {
                Ok(Some(_)) if ctx.config().return_generic_responses => taken = true,
                Ok(Some(_)) => errors.add(
                    "email",
                    Message::new(Msg::EmailAlreadyAssociated).arg("email", &e),
                ),
                Ok(None) => new_email = Some(e),
                Err(err) => {
                    errors.backend_failed("lookup", &err);
                }
            },
        },
    }
    if !errors.is_empty() {
        return Ok(ctx.invalid(&errors, |c, e| page(c, &user, e)));
    }
    if let (Some(new_email), false) = (&new_email, taken) {
        let payload = (
            user.fs_uniquifier.clone(),
            hash_data_async(&user.email).await,
            new_email.clone(),
        );
        let token = feature.link.issue(ctx.state, &payload);
        let mut c = Context::new();
        c.insert("new_email", new_email);
        c.insert("link", &ctx.external_url(&format!("/change-email/{token}")));
        c.insert("within", &within_text(feature.link.max_age()));
        mail::send(
            &ctx,
            Outgoing {
                to: new_email,
                subject: &cfg.change_email_subject,
                template: "change_email_instructions",
                context: c,
                about: Some(&user),
            },
        )
        .await;
    }
    if !ctx.json() {
        let shown = new_email.or(raw).unwrap_or_default();
        ctx.flash(Message::new(Msg::ChangeEmailSent).arg("email", shown));
        return Ok(page(&ctx, &user, &FormErrors::new()));
    }
    Ok(body(&ctx, &user))
}

/// The user and new address of a valid link, or the message to show.
async fn check(
    ctx: &Ctx<'_>,
    feature: &ChangeEmail,
    token: &str,
) -> Result<(User, String), Message> {
    let invalid = || Message::new(Msg::ApiError);
    let (user, (_, old_hash, new_email)) = match feature.link.check_user(ctx.state, token).await {
        UserLink::Valid(u, p) => (*u, p),
        UserLink::Expired(_) => {
            return Err(Message::new(Msg::ChangeEmailExpired)
                .arg("within", within_text(feature.link.max_age())));
        }
        UserLink::Invalid => return Err(invalid()),
    };
    // The old address must still be the current one: a used link is dead.
    if !verify_hash_async(&old_hash, &user.email).await {
        return Err(invalid());
    }
    match ctx
        .state
        .datastore
        .find_user(Lookup::Email(&new_email))
        .await
    {
        Ok(None) => Ok((user, new_email)),
        // Taken meanwhile: say no more than for any other bad link.
        Ok(Some(_)) => Err(invalid()),
        Err(e) => {
            log::error!("change-email lookup failed: {e}");
            Err(Message::new(Msg::ApiError))
        }
    }
}

#[get("/change-email/<token>")]
async fn change_email_confirm(
    ctx: Ctx<'_>,
    feature: &State<Arc<ChangeEmail>>,
    token: &str,
) -> Reply {
    let core = ctx.config();
    let cfg = &feature.cfg;
    let error_view = cfg
        .change_email_error_view
        .clone()
        .unwrap_or_else(|| core.url("/change-email"));
    let fail = |msg: Message| {
        if core.spa() {
            ctx.spa(&error_view, vec![("error", Param::Msg(msg))])
        } else {
            ctx.flash(msg);
            Reply::redirect(error_view.clone())
        }
    };
    let (user, new_email) = match check(&ctx, feature, token).await {
        Ok(found) => found,
        Err(msg) => return fail(msg),
    };
    let stamp = ctx.state.clock.naive_utc();
    let update = UserUpdate::new()
        .email(new_email.clone())
        .confirmed_at(Some(stamp));
    // Only from the address the link was made for (so the link is used
    // once); the identity index settles a race with someone registering the
    // new address meanwhile.
    let update = update.if_email(&user.email);
    match ctx.state.datastore.update_user(user.id, update).await {
        Ok(true) => {}
        Ok(false) | Err(DatastoreError::Conflict(_)) => return fail(Msg::ApiError.into()),
        Err(e) => return Reply::failed("changing the email", &e),
    }
    let view = cfg
        .post_change_email_view
        .clone()
        .unwrap_or_else(|| core.post_login_view.clone());
    if core.spa() {
        return ctx.spa(
            &view,
            vec![
                ("success", Param::Msg(Msg::ChangeEmailConfirmed.into())),
                ("email", Param::Plain(new_email.clone())),
                ("identity", Param::Plain(new_email)),
            ],
        );
    }
    ctx.flash(Msg::ChangeEmailConfirmed);
    Reply::redirect(view)
}
