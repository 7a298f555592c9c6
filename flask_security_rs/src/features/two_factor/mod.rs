//! Two-factor sign-in with one-time codes: `/tf-setup` (and
//! `/tf-setup/<state_token>`), `/tf-validate`, `/tf-rescue`.
//!
//! Methods: `email`, `sms` (through the application's [`SmsSender`]) and
//! `authenticator` (an app reading a QR code). It plugs into the login
//! pipeline's second-factor hook ([`Hook`]): a user who set a method up,
//! or whom `two_factor_required` or the application's rule
//! ([`Security::two_factor_required_if`](crate::Security::two_factor_required_if))
//! names, is not signed in after the password; the sign-in waits (a
//! server-side record, see [`crate::login::pending`]) for a code at
//! `/tf-validate`.
//!
//! Secrets are stored in `tf_totp_secret` encrypted in passlib's format
//! under `totp_secrets` (readable by Flask-Security, and the other way
//! round). A setup in progress is a server-side, single-use record too; its
//! reference is the `tf_state_token`.

mod setup;
mod validate;

use std::sync::Arc;

use rocket::http::{Cookie, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Feature, Setup, section_keys, templates};
use crate::ceremony::Ceremonies;
use crate::config::ConfigError;
use crate::datastore::{DatastoreError, User, UserField};
use crate::http::{Ctx, FormErrors, Reply, query_value};
use crate::login::codes::{self, CodeError, Purpose};
use crate::login::pending::{self, Pending, Stage};
use crate::login::{Attempt, CredentialError, LoginHook, SecondFactor};
use crate::mail::{self, Outgoing};
use crate::messages::Msg;
use crate::sms::SmsSender;
use crate::tokens::{LinkCheck, SignedLink};
use crate::totp::{TotpKey, TotpSecrets};

/// The application's rule of who must use two-factor (see
/// [`Security::two_factor_required_if`](crate::Security::two_factor_required_if)).
#[derive(Clone)]
pub(crate) struct TwoFactorRule(pub Arc<dyn Fn(&User) -> bool + Send + Sync>);

/// The two-factor feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct TwoFactorConfig {
    /// `SECURITY_TWO_FACTOR`. _Default:_ `false`.
    two_factor: bool,
    /// `SECURITY_TWO_FACTOR_REQUIRED`: every user must use it. _Default:_ `false`.
    two_factor_required: bool,
    /// `SECURITY_TWO_FACTOR_ENABLED_METHODS`. _Default:_ `["email", "authenticator", "sms"]`.
    two_factor_enabled_methods: Vec<String>,
    /// `SECURITY_TWO_FACTOR_AUTHENTICATOR_VALIDITY`: seconds either side of
    /// now a code is accepted. _Default:_ `120`.
    two_factor_authenticator_validity: i64,
    /// `SECURITY_TWO_FACTOR_MAIL_VALIDITY`. _Default:_ `300`.
    two_factor_mail_validity: i64,
    /// `SECURITY_TWO_FACTOR_SMS_VALIDITY`. _Default:_ `120`.
    two_factor_sms_validity: i64,
    /// `SECURITY_TWO_FACTOR_SETUP_WITHIN`, seconds. _Default:_ `1800`.
    two_factor_setup_within: i64,
    /// `SECURITY_TWO_FACTOR_RESCUE_MAIL`: where "help" requests go.
    /// _Default:_ `"no-reply@localhost"`.
    two_factor_rescue_mail: String,
    /// `SECURITY_TWO_FACTOR_RESCUE_EMAIL`: offer a code by email as rescue.
    /// _Default:_ `true`.
    two_factor_rescue_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_TWO_FACTOR`. _Default:_ `"Two-Factor Login"`.
    email_subject_two_factor: String,
    /// `SECURITY_EMAIL_SUBJECT_TWO_FACTOR_RESCUE`. _Default:_ `"Two-Factor Rescue"`.
    email_subject_two_factor_rescue: String,
    /// `SECURITY_TWO_FACTOR_ERROR_VIEW`: where pages without a sign-in in
    /// progress go. _Default:_ none (the login page).
    two_factor_error_view: Option<String>,
    /// `SECURITY_TWO_FACTOR_POST_SETUP_VIEW`. _Default:_ none (`/tf-setup`).
    two_factor_post_setup_view: Option<String>,
    /// `SECURITY_TWO_FACTOR_ALWAYS_VALIDATE`: ask for a code on every
    /// sign-in; when `false`, a sign-in with `remember` sets the
    /// `tf_validity` cookie, which spares the code for
    /// `two_factor_login_validity`. _Default:_ `true`.
    two_factor_always_validate: bool,
    /// `SECURITY_TWO_FACTOR_LOGIN_VALIDITY`, seconds. _Default:_ `2592000` (30 days).
    two_factor_login_validity: i64,
    /// `SECURITY_TWO_FACTOR_VALIDITY_COOKIE_NAME`. _Default:_ `"tf_validity"`.
    two_factor_validity_cookie_name: String,
    /// Salt of the validity cookie. _Default:_ `"tf-validity-salt"`.
    two_factor_validity_salt: String,
    /// Not in Flask-Security: the second-factor answer of a sign-in also
    /// carries `tf_state_token`, which `/tf-validate`, `/tf-setup`,
    /// `/tf-rescue` and `/mf-recovery` accept in the JSON body in place of
    /// the session cookie, for clients that keep no cookies (mobile apps,
    /// command-line tools). _Default:_ `false`.
    two_factor_state_token: bool,
}

impl Default for TwoFactorConfig {
    fn default() -> Self {
        TwoFactorConfig {
            two_factor: false,
            two_factor_required: false,
            two_factor_enabled_methods: vec!["email".into(), "authenticator".into(), "sms".into()],
            two_factor_authenticator_validity: 120,
            two_factor_mail_validity: 300,
            two_factor_sms_validity: 120,
            two_factor_setup_within: 30 * 60,
            two_factor_rescue_mail: "no-reply@localhost".into(),
            two_factor_rescue_email: true,
            email_subject_two_factor: "Two-Factor Login".into(),
            email_subject_two_factor_rescue: "Two-Factor Rescue".into(),
            two_factor_error_view: None,
            two_factor_post_setup_view: None,
            two_factor_always_validate: true,
            two_factor_login_validity: 30 * 24 * 3600,
            two_factor_validity_cookie_name: "tf_validity".into(),
            two_factor_validity_salt: "tf-validity-salt".into(),
            two_factor_state_token: false,
        }
    }
}

const METHODS: &[&str] = &["email", "authenticator", "sms"];

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(TwoFactorConfig),
    templates: templates!(
        "security/two_factor_setup.html.tera",
        "security/two_factor_verify_code.html.tera",
        "security/two_factor_select.html.tera",
        "security/email/two_factor_instructions.txt.tera",
        "security/email/two_factor_instructions.html.tera",
        "security/email/two_factor_rescue.txt.tera",
        "security/email/two_factor_rescue.html.tera",
    ),
    install,
};

/// The feature's state.
pub(crate) struct TwoFactor {
    cfg: TwoFactorConfig,
    secrets: Arc<TotpSecrets>,
    issuer: String,
    rule: Option<TwoFactorRule>,
    sms: Option<Arc<dyn SmsSender>>,
    phone_region: String,
    validity: SignedLink<String>,
}

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: TwoFactorConfig = setup.section()?;
    if !cfg.two_factor {
        return Ok(());
    }
    for m in &cfg.two_factor_enabled_methods {
        if !METHODS.contains(&m.as_str()) {
            return Err(ConfigError::new(
                "two_factor_enabled_methods",
                format!("{m:?} is not one of email, authenticator, sms"),
            ));
        }
    }
    for (key, v) in [
        ("two_factor_setup_within", cfg.two_factor_setup_within),
        ("two_factor_login_validity", cfg.two_factor_login_validity),
    ] {
        ConfigError::positive_secs(key, v)?;
    }
    let kit = setup.code_kit(
        "two_factor",
        &[
            UserField::TfPrimaryMethod,
            UserField::TfTotpSecret,
            UserField::TfPhoneNumber,
        ],
        cfg.two_factor_enabled_methods.iter().any(|m| m == "sms"),
    )?;
    if cfg.two_factor_state_token {
        setup.pending_state_token();
    }
    let tf = Arc::new(TwoFactor {
        validity: SignedLink::new(&cfg.two_factor_validity_salt, cfg.two_factor_login_validity),
        rule: setup.app::<TwoFactorRule>().map(|r| (*r).clone()),
        phone_region: setup.config.phone_region_default.clone(),
        secrets: kit.secrets,
        issuer: kit.issuer,
        sms: kit.sms,
        cfg,
    });
    setup.login_hook(Hook(tf.clone()));
    setup.manage(tf);
    setup.mount("two_factor_setup", "/tf-setup", setup::routes());
    setup.mount(
        "two_factor_token_validation",
        "/tf-validate",
        validate::routes(),
    );
    Ok(())
}

/// Whether `user` has a method set up.
fn is_set_up(user: &User) -> bool {
    user.tf_primary_method.is_some() && user.tf_totp_secret.is_some()
}

impl TwoFactor {
    /// Whether `user` must use two-factor even without a method set up.
    fn required(&self, user: &User) -> bool {
        self.cfg.two_factor_required || self.rule.as_ref().is_some_and(|r| (r.0)(user))
    }

    /// Seconds either side of now a code of `method` is accepted.
    fn window(&self, method: &str) -> i64 {
        match method {
            "authenticator" | "google_authenticator" => self.cfg.two_factor_authenticator_validity,
            "email" | "mail" => self.cfg.two_factor_mail_validity,
            "sms" => self.cfg.two_factor_sms_validity,
            _ => 0,
        }
    }

    /// The methods a user may pick at `/tf-setup`.
    fn choices(&self, user: &User) -> Vec<String> {
        let mut c = self.cfg.two_factor_enabled_methods.clone();
        if !self.required(user) && user.tf_primary_method.is_some() {
            c.insert(0, "disable".into());
        }
        c
    }

    fn error_view(&self, ctx: &Ctx<'_>) -> String {
        self.cfg
            .two_factor_error_view
            .clone()
            .unwrap_or_else(|| ctx.config().url("/login"))
    }

    fn post_setup_view(&self, ctx: &Ctx<'_>) -> String {
        self.cfg
            .two_factor_post_setup_view
            .clone()
            .unwrap_or_else(|| ctx.config().url("/tf-setup"))
    }

    /// Whether the request's `tf_validity` cookie vouches for `user`.
    fn validity_ok(&self, ctx: &Ctx<'_>, user: &User) -> bool {
        let Some(c) = ctx
            .req
            .cookies()
            .get(&self.cfg.two_factor_validity_cookie_name)
        else {
            return false;
        };
        matches!(self.validity.check(ctx.state, c.value()), LinkCheck::Valid(uid) if uid == user.fs_uniquifier)
    }

    /// Sends the `tf_validity` cookie for `user`.
    fn send_validity(&self, ctx: &Ctx<'_>, user: &User) {
        let token = self.validity.issue(ctx.state, &user.fs_uniquifier);
        let cookie = Cookie::build((self.cfg.two_factor_validity_cookie_name.clone(), token))
            .max_age(rocket::time::Duration::seconds(
                self.cfg.two_factor_login_validity,
            ))
            .secure(true)
            .http_only(true)
            .same_site(SameSite::Strict)
            .path("/")
            .build();
        crate::http::cookies::send(ctx.req, cookie);
    }

    /// Decrypts a stored secret (off the executor: PBKDF2).
    async fn key(&self, stored: &str) -> Option<TotpKey> {
        self.secrets.key_of(stored).await
    }

    /// Sends `user` a code of `key` by `method` (email or sms, to `phone`);
    /// `false` (logged) when it could not be sent. `Purpose::SignIn` codes
    /// are ones not used yet.
    async fn send_code(
        &self,
        ctx: &Ctx<'_>,
        user: &User,
        key: &TotpKey,
        method: &str,
        phone: Option<&str>,
        purpose: Purpose<'_>,
    ) -> bool {
        let window = self.window(method);
        let code = match purpose {
            Purpose::SignIn(scope) => {
                match codes::to_send(ctx.state, user, key, scope, window).await {
                    Ok(c) => c,
                    Err(e) => {
                        log::error!("choosing a code failed: {e}");
                        return false;
                    }
                }
            }
            Purpose::Setup => key.code_at(ctx.state.clock.now_secs()),
        };
        match method {
            "email" | "mail" => {
                let c = codes::mail_context(user, &code, window);
                mail::send(
                    ctx,
                    Outgoing {
                        to: &user.email,
                        subject: &self.cfg.email_subject_two_factor,
                        template: "two_factor_instructions",
                        context: c,
                        about: Some(user),
                    },
                )
                .await
            }
            "sms" => codes::text(ctx.state, self.sms.as_ref(), phone, &code).await,
            _ => true,
        }
    }

    /// The setup ceremonies of signed-in users.
    fn setups<'a>(&self, ctx: &Ctx<'a>) -> Option<Ceremonies<'a>> {
        ctx.state.ceremonies.as_deref().map(|store| Ceremonies {
            store,
            kind: "tf_setup",
        })
    }

    /// `recovery_options` while a second factor is awaited.
    fn recovery_options(&self, ctx: &Ctx<'_>, user: &User) -> Map<String, Value> {
        let rescue = Value::String(ctx.config().url("/tf-rescue"));
        let mut m = Map::new();
        m.insert("help".into(), rescue.clone());
        if self.cfg.two_factor_rescue_email {
            m.insert("email".into(), rescue);
        }
        for option in &ctx.state.hooks.rescue_options {
            if let Some((k, url)) = option(user) {
                m.insert(k.into(), Value::String(url));
            }
        }
        m
    }
}

/// A setup in progress: the method, its secret (encrypted) and phone.
#[derive(Clone, Serialize, Deserialize)]
struct SetupState {
    method: String,
    secret: String,
    #[serde(default)]
    phone: Option<String>,
}

/// The answer to a request that names no sign-in in progress
/// (`TWO_FACTOR_PERMISSION_DENIED`).
fn illegal_state(ctx: &Ctx<'_>, tf: &TwoFactor) -> Reply {
    if ctx.json() {
        return Reply::form(FormErrors::one("", Msg::TwoFactorPermissionDenied));
    }
    ctx.flash(Msg::TwoFactorPermissionDenied);
    Reply::redirect(tf.error_view(ctx))
}

/// The answer to a failure of the datastore or the throttle while checking
/// a code.
fn code_failed(
    ctx: &Ctx<'_>,
    e: CodeError,
    page: impl FnOnce(&Ctx<'_>, &FormErrors) -> Reply,
) -> Reply {
    match e {
        CodeError::Backend(e) => Reply::failed("checking a code", &e),
        CodeError::Refused(CredentialError::Throttled(d, m)) => ctx.throttled(d, m, page),
        CodeError::Refused(CredentialError::Refused(m)) => {
            ctx.invalid(&FormErrors::one("code", m), page)
        }
        CodeError::Refused(CredentialError::Busy) => Reply::unavailable(),
        CodeError::Refused(CredentialError::Invalid) => {
            ctx.invalid(&FormErrors::one("code", Msg::TwoFactorInvalidToken), page)
        }
    }
}

/// `next` of the request, for the redirect to the next step.
fn with_next(ctx: &Ctx<'_>, url: String) -> String {
    match query_value(ctx.req, "next") {
        Some(n) => format!(
            "{url}?next={}",
            url::form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>()
        ),
        None => url,
    }
}

/// The pipeline's second-factor step.
struct Hook(Arc<TwoFactor>);

#[rocket::async_trait]
impl LoginHook for Hook {
    async fn second_factor(&self, attempt: &Attempt<'_>, user: &User) -> SecondFactor {
        let tf = &self.0;
        let Some(state) = crate::state::SecurityState::of(attempt.request()) else {
            return SecondFactor::NotRequired;
        };
        let ctx = Ctx {
            req: attempt.request(),
            state,
        };
        let set_up = is_set_up(user);
        if !set_up && !tf.required(user) {
            return SecondFactor::NotRequired;
        }
        if !tf.cfg.two_factor_always_validate && tf.validity_ok(&ctx, user) {
            return SecondFactor::NotRequired;
        }
        let stage = if set_up {
            Stage::Ready
        } else {
            Stage::SetupFromLogin
        };
        let c = match pending::begin(&ctx, user, Pending::new(user, stage, attempt.remembers()))
            .await
        {
            Ok(c) => c,
            Err(e) => return SecondFactor::Required(Reply::failed("starting two-factor", &e)),
        };
        let mut body = ctx.payload(None);
        body.insert("tf_required".into(), Value::Bool(true));
        body.insert("tf_state".into(), Value::String(stage.as_str().into()));
        if let (true, Some(method), Some(secret)) =
            (set_up, &user.tf_primary_method, &user.tf_totp_secret)
        {
            body.insert("tf_primary_method".into(), Value::String(method.clone()));
            body.insert("tf_method".into(), Value::String(method.clone()));
            if matches!(method.as_str(), "email" | "mail" | "sms") {
                let sent = match tf.key(secret).await {
                    Some(key) => {
                        let phone = user.tf_phone_number.as_deref();
                        tf.send_code(&ctx, user, &key, method, phone, Purpose::SignIn("tf"))
                            .await
                    }
                    None => false,
                };
                if !sent {
                    if !ctx.json() {
                        ctx.flash(Msg::FailedToSendCode);
                        return SecondFactor::Required(Reply::redirect(ctx.config().url("/login")));
                    }
                    return SecondFactor::Required(Reply::error(
                        rocket::http::Status::InternalServerError,
                        Msg::FailedToSendCode,
                    ));
                }
            }
        }
        pending::add_state_token(&ctx, &c, &mut body);
        if !ctx.json() {
            let to = if set_up { "/tf-validate" } else { "/tf-setup" };
            return SecondFactor::Required(Reply::redirect(with_next(&ctx, ctx.config().url(to))));
        }
        SecondFactor::Required(Reply::ok(body))
    }
}

/// Loads a user's key, or the answer to give when it cannot be read.
async fn user_key(tf: &TwoFactor, user: &User) -> Result<TotpKey, DatastoreError> {
    match &user.tf_totp_secret {
        Some(s) => tf
            .key(s)
            .await
            .ok_or(DatastoreError::InvalidIdentity("stored TOTP secret")),
        None => Err(DatastoreError::InvalidIdentity("stored TOTP secret")),
    }
}
