//! Change username: `/change-username`.

use rocket::http::Status;
use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;
use serde_json::Value;

use super::{Feature, Setup, section_keys, templates};
use crate::config::ConfigError;
use crate::datastore::DatastoreError;
use crate::datastore::{Lookup, User, UserUpdate};
use crate::http::{BadBody, Ctx, FormErrors, FormInput, Reply, text};
use crate::identity::check_username;
use crate::mail::{self, Outgoing};
use crate::messages::{Message, Msg};

/// The change-username feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct ChangeUsernameConfig {
    /// `SECURITY_CHANGE_USERNAME`. _Default:_ `false`.
    change_username: bool,
    /// `SECURITY_POST_CHANGE_USERNAME_VIEW`. _Default:_ none (`post_login_view`).
    post_change_username_view: Option<String>,
    /// `SECURITY_SEND_USERNAME_CHANGE_EMAIL`. _Default:_ `true`.
    send_username_change_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_USERNAME_CHANGE_NOTICE`.
    /// _Default:_ `"Your username has been changed"`.
    email_subject_username_change_notice: String,
}

impl Default for ChangeUsernameConfig {
    fn default() -> Self {
        ChangeUsernameConfig {
            change_username: false,
            post_change_username_view: None,
            send_username_change_email: true,
            email_subject_username_change_notice: "Your username has been changed".into(),
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(ChangeUsernameConfig),
    templates: templates!(
        "security/change_username.html.tera",
        "security/email/change_username_notice.txt.tera",
        "security/email/change_username_notice.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: ChangeUsernameConfig = setup.section()?;
    if cfg.change_username {
        setup.manage(cfg);
        setup.mount(
            "change_username",
            "/change-username",
            routes![change_get, change_post],
        );
    }
    Ok(())
}

fn change_page(ctx: &Ctx<'_>, user: &User, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/change-username"));
    c.insert("current_username", &user.username);
    ctx.page("security/change_username.html.tera", c, errors)
}

#[get("/change-username")]
async fn change_get(ctx: Ctx<'_>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    if !ctx.json() {
        return Ok(change_page(&ctx, &user, &FormErrors::new()));
    }
    let mut body = ctx.payload(Some(&user));
    body.insert(
        "current_username".into(),
        user.username
            .clone()
            .map(Value::String)
            .unwrap_or(Value::Null),
    );
    Ok(Reply::ok(body))
}

#[post("/change-username", data = "<form>")]
async fn change_post(
    ctx: Ctx<'_>,
    cfg: &State<ChangeUsernameConfig>,
    form: Result<FormInput, BadBody>,
) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    let form = match ctx.body(form) {
        Ok(f) => f,
        Err(reply) => return Ok(reply),
    };
    let mut errors = FormErrors::new();
    let mut name = None;
    match text(&form, "username", &mut errors) {
        None if !errors.has("username") => errors.add("username", Msg::UsernameNotProvided),
        None => {}
        Some(raw) => match check_username(ctx.config(), &raw) {
            Err(msg) => errors.add("username", msg),
            Ok(n) => match ctx.state.datastore.find_user(Lookup::Username(&n)).await {
                Ok(Some(_)) => errors.add(
                    "username",
                    Message::new(Msg::UsernameAlreadyAssociated).arg("username", &n),
                ),
                Ok(None) => name = Some(n),
                Err(e) => {
                    errors.backend_failed("lookup", &e);
                }
            },
        },
    }
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    };
    let mut update = UserUpdate::new().username(Some(name.clone()));
    if cfg.send_username_change_email {
        let renamed = User {
            username: Some(name.clone()),
            ..(*user).clone()
        };
        let mut c = Context::new();
        c.insert("username", &renamed.username);
        let mail = Outgoing {
            to: &renamed.email,
            subject: &cfg.email_subject_username_change_notice,
            template: "change_username_notice",
            context: c,
            about: Some(&renamed),
        };
        update.mails.extend(mail::render(&ctx, mail).await);
    }
    let mails = update.mails.clone();
    let taken = match ctx.state.datastore.update_user(user.id, update).await {
        Ok(true) => false,
        Ok(false) => return Ok(Reply::unavailable()),
        Err(DatastoreError::Conflict(_)) => true,
        Err(e) => return Ok(Reply::failed("changing the username", &e)),
    };
    if taken {
        let msg = Message::new(Msg::UsernameAlreadyAssociated).arg("username", &name);
        let errors = FormErrors::one("username", msg);
        return Ok(ctx.invalid(&errors, |c, e| change_page(c, &user, e)));
    }
    let user = User {
        username: Some(name),
        ..(*user).clone()
    };
    mail::written(ctx.state, mails).await;
    if !ctx.json() {
        ctx.flash(Msg::UsernameChange);
        return Ok(Reply::redirect(
            cfg.post_change_username_view
                .clone()
                .unwrap_or_else(|| ctx.config().post_login_view.clone()),
        ));
    }
    Ok(Reply::ok(ctx.payload(Some(&user))))
}
