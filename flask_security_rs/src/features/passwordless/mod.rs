//! Passwordless sign-in (deprecated in Flask-Security since 5.0, for apps
//! that still have it on): `/login` mails a sign-in link instead of asking
//! for a password, and `GET /login/<token>` signs in.
//!
//! The link goes through the login pipeline like every other sign-in
//! (account checks, throttling, the second factor). Unlike Flask-Security,
//! where a link can be used again until it expires, a link signs in once:
//! its use is claimed in the ceremony table, so of concurrent uses one
//! signs in, on any instance.

use std::sync::Arc;

use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;

use super::{Feature, Setup, section_keys, templates};
use crate::ceremony;
use crate::config::ConfigError;
use crate::datastore::User;
use crate::http::{Ctx, FormErrors, FormInput, Param, Reply};
use crate::login::{self, Attempt, AuthnMethod, SignIn};
use crate::mail::{self, Outgoing};
use crate::messages::{Message, Msg, within_text};
use crate::tokens::{SignedLink, UserLink};

/// The passwordless feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct PasswordlessConfig {
    /// `SECURITY_PASSWORDLESS`. _Default:_ `false`.
    passwordless: bool,
    /// `SECURITY_LOGIN_WITHIN`, seconds. _Default:_ `86400` (1 day).
    login_within: i64,
    /// `SECURITY_EMAIL_SUBJECT_PASSWORDLESS`. _Default:_ `"Login instructions"`.
    email_subject_passwordless: String,
    /// Salt of sign-in links. _Default:_ `"login-salt"`.
    login_salt: String,
    /// `SECURITY_LOGIN_ERROR_VIEW` (SPA): where a bad link goes. _Default:_ none.
    login_error_view: Option<String>,
}

impl Default for PasswordlessConfig {
    fn default() -> Self {
        PasswordlessConfig {
            passwordless: false,
            login_within: 24 * 3600,
            email_subject_passwordless: "Login instructions".into(),
            login_salt: "login-salt".into(),
            login_error_view: None,
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(PasswordlessConfig),
    templates: templates!(
        "security/send_login.html.tera",
        "security/email/login_instructions.txt.tera",
        "security/email/login_instructions.html.tera",
    ),
    install,
};

/// Rocket's rank of a static path is -12: below it, these routes answer
/// `/login` instead of the login feature's.
const LOGIN_RANK: isize = -20;

/// `[fs_uniquifier]`.
type Payload = (String,);

pub(crate) struct Passwordless {
    cfg: PasswordlessConfig,
    link: SignedLink<Payload>,
}

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: PasswordlessConfig = setup.section()?;
    if !cfg.passwordless {
        return Ok(());
    }
    ConfigError::positive_secs("login_within", cfg.login_within)?;
    if setup
        .datastore()
        .clone()
        .extensions()
        .get::<dyn ceremony::CeremonyStore>()
        .is_none()
    {
        return Err(ConfigError::new(
            "passwordless",
            "needs a datastore with ceremony storage (CeremonyStore)",
        ));
    }
    let link = SignedLink::new(&cfg.login_salt, cfg.login_within);
    setup.manage(Arc::new(Passwordless { cfg, link }));
    let mut routes = routes![send_login_get, send_login_post, token_login];
    // `/login` is the login feature's too: these win (a lower rank).
    for r in &mut routes {
        if r.uri.path() == "/login" {
            r.rank = LOGIN_RANK;
        }
    }
    setup.mount("passwordless", "/login", routes);
    Ok(())
}

impl Passwordless {
    async fn send(&self, ctx: &Ctx<'_>, user: &User) -> bool {
        let token = self.link.issue(ctx.state, &(user.fs_uniquifier.clone(),));
        let mut c = Context::new();
        c.insert("login_link", &ctx.external_url(&format!("/login/{token}")));
        mail::send(
            ctx,
            Outgoing {
                to: &user.email,
                subject: &self.cfg.email_subject_passwordless,
                template: "login_instructions",
                context: c,
                about: Some(user),
            },
        )
        .await
    }
}

fn send_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let c = ctx.form_context(form, &["email"]);
    ctx.page("security/send_login.html.tera", c, errors)
}

#[get("/login")]
async fn send_login_get(ctx: Ctx<'_>) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    ctx.form_get(|c, e| send_page(c, None, e))
}

#[post("/login", data = "<form>")]
async fn send_login_post(ctx: Ctx<'_>, pl: &State<Arc<Passwordless>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let mut errors = FormErrors::new();
    // Exists, active, and the features' account checks (confirmed...).
    let target = crate::identity::mail_target(&ctx, &form, &mut errors).await;
    let errors = crate::identity::hide_account_errors(&ctx, errors);
    if !errors.is_empty() {
        return ctx.invalid(&errors, |c, e| send_page(c, Some(&form), e));
    }
    if let Some(user) = &target
        && !pl.send(&ctx, user).await
    {
        return Reply::unavailable();
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(target.as_ref()));
    }
    if let Some(user) = &target {
        ctx.flash(Message::new(Msg::LoginEmailSent).arg("email", &user.email));
    }
    send_page(&ctx, None, &FormErrors::new())
}

#[get("/login/<token>")]
async fn token_login(ctx: Ctx<'_>, pl: &State<Arc<Passwordless>>, token: &str) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let core = ctx.config();
    let error_view = pl
        .cfg
        .login_error_view
        .clone()
        .unwrap_or_else(|| core.url("/login"));
    let fail = |msg: Message, user: Option<&User>| {
        if core.spa() {
            let mut params = vec![("error", Param::Msg(msg))];
            if let Some(u) = user {
                params.push(("email", Param::Plain(u.email.clone())));
                params.push(("identity", Param::Plain(u.email.clone())));
            }
            ctx.spa(&error_view, params)
        } else {
            ctx.flash(msg);
            Reply::redirect(core.url("/login"))
        }
    };
    let user = match pl.link.check_user(ctx.state, token).await {
        UserLink::Invalid | UserLink::Expired(None) => {
            return fail(Msg::InvalidLoginToken.into(), None);
        }
        UserLink::Expired(Some(user)) => {
            pl.send(&ctx, &user).await;
            let msg = Message::new(Msg::LoginExpired)
                .arg("email", &user.email)
                .arg("within", within_text(pl.link.max_age()));
            return fail(msg, Some(&user));
        }
        UserLink::Valid(user, _) => user,
    };
    // One use: the claim lasts as long as the link would.
    let now = ctx.state.clock.now_secs();
    let Some(store) = ctx.state.ceremonies.as_deref() else {
        return Reply::unavailable();
    };
    let what = format!(
        "login-link:{}",
        crate::datastore::sessions::record_id(token)
    );
    match ceremony::claim(store, &what, user.id, now, now + pl.link.max_age() + 1).await {
        Ok(true) => {}
        Ok(false) => return fail(Msg::InvalidLoginToken.into(), None),
        Err(e) => return Reply::failed("claiming a sign-in link", &e),
    }
    let email = user.email.clone();
    let attempt = Attempt::new(ctx.req, AuthnMethod::Passwordless).identity(&email);
    let issued = match login::sign_in(&ctx, *user, &attempt).await {
        SignIn::Done(issued) => issued,
        SignIn::Refused(problem) => return fail(problem.into(), None),
        SignIn::Answer(reply) => return reply,
    };
    if core.spa() {
        return ctx.spa(
            &core.post_login_view,
            vec![
                ("email", Param::Plain(issued.user.email.clone())),
                ("identity", Param::Plain(issued.user.email.clone())),
            ],
        );
    }
    ctx.flash(Msg::PasswordlessLoginSuccessful);
    Reply::redirect(core.post_login_view.clone())
}
