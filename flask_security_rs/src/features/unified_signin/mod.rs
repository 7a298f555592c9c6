//! Unified sign-in: an identity and a *passcode*, which is the password or
//! a one-time code of a method the user set up (`email`, `authenticator`,
//! `sms`). Routes: `/us-signin` (and `/us-signin/send-code`), `/us-setup`
//! (and `/us-setup/<state>`), `/us-verify` (and `/us-verify/send-code`,
//! re-authentication, only when `freshness >= 0`) and `/us-verify-link`
//! (the magic link of a mailed code).
//!
//! Each method has its own TOTP secret, stored in `us_totp_secrets` as a
//! JSON object `{method: <passlib-encrypted TOTP JSON>}` (Flask-Security's
//! format, under `totp_secrets`). Codes go through the login pipeline's
//! one-time code checks ([`crate::login::codes`]): throttled, and single
//! use under the scope `us:<method>`; a mailed or texted code is never one
//! that was used already. A sign-in ends in the pipeline's
//! [`sign_in`](crate::login::sign_in); the second factor applies only when
//! the method used is in `us_mfa_required`.
//!
//! A setup in progress is a server-side, single-use ceremony (kind
//! `us_setup`) whose reference is the `state` of the JSON answer.
//!
//! With `us_signin_replaces_login`, `/login` answers as `/us-signin` (GET
//! and POST), so a client that signs in at the login URL (and the redirect
//! of an unauthenticated request) gets unified sign-in.

mod setup;
mod signin;
mod verify;

use std::collections::BTreeMap;
use std::sync::Arc;

use rocket::http::Status;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Feature, Setup, section_keys, templates};
use crate::ceremony::Ceremonies;
use crate::config::ConfigError;
use crate::datastore::{DatastoreError, Lookup, User, UserField};
use crate::http::{Ctx, FormErrors, Reply};
use crate::login::codes::{self, Purpose};
use crate::login::{self, Attempt, CredentialError};
use crate::mail::{self, Outgoing};
use crate::messages::Msg;
use crate::sms::SmsSender;
use crate::totp::{TotpKey, TotpSecrets};

/// The unified sign-in feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct UnifiedSigninConfig {
    /// `SECURITY_UNIFIED_SIGNIN`. _Default:_ `false`.
    unified_signin: bool,
    /// `SECURITY_US_ENABLED_METHODS`: the passcodes `/us-signin` accepts.
    /// _Default:_ `["password", "email", "authenticator", "sms"]`.
    us_enabled_methods: Vec<String>,
    /// `SECURITY_US_MFA_REQUIRED`: the methods after which a second factor
    /// (when the two-factor feature asks for one) is still needed.
    /// _Default:_ `["password", "email"]`.
    us_mfa_required: Vec<String>,
    /// `SECURITY_US_TOKEN_VALIDITY`: seconds either side of now a code is
    /// accepted. _Default:_ `120`.
    us_token_validity: i64,
    /// `SECURITY_US_EMAIL_SUBJECT`. _Default:_ `"Verification Code"`.
    us_email_subject: String,
    /// `SECURITY_US_SETUP_WITHIN`: how long a setup may take, seconds.
    /// _Default:_ `1800`.
    us_setup_within: i64,
    /// `SECURITY_US_POST_SETUP_VIEW`: where a completed setup goes (HTML).
    /// _Default:_ none (`/us-setup`).
    us_post_setup_view: Option<String>,
    /// `SECURITY_US_SIGNIN_REPLACES_LOGIN`: `/login` answers as
    /// `/us-signin`. _Default:_ `false`.
    us_signin_replaces_login: bool,
}

impl Default for UnifiedSigninConfig {
    fn default() -> Self {
        UnifiedSigninConfig {
            unified_signin: false,
            us_enabled_methods: vec![
                "password".into(),
                "email".into(),
                "authenticator".into(),
                "sms".into(),
            ],
            us_mfa_required: vec!["password".into(), "email".into()],
            us_token_validity: 120,
            us_email_subject: "Verification Code".into(),
            us_setup_within: 30 * 60,
            us_post_setup_view: None,
            us_signin_replaces_login: false,
        }
    }
}

/// Keys of other sections this feature reads (not its own).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
struct SharedViews {
    login_error_view: Option<String>,
    post_verify_view: Option<String>,
    default_remember_me: bool,
}

const METHODS: &[&str] = &["password", "email", "authenticator", "sms"];

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(UnifiedSigninConfig),
    templates: templates!(
        "security/us_signin.html.tera",
        "security/us_setup.html.tera",
        "security/us_verify.html.tera",
        "security/email/us_instructions.txt.tera",
        "security/email/us_instructions.html.tera",
    ),
    install,
};

/// The feature's state.
pub(crate) struct UnifiedSignin {
    cfg: UnifiedSigninConfig,
    views: SharedViews,
    secrets: Arc<TotpSecrets>,
    issuer: String,
    sms: Option<Arc<dyn SmsSender>>,
    phone_region: String,
}

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: UnifiedSigninConfig = setup.section()?;
    if !cfg.unified_signin {
        return Ok(());
    }
    let replaces_login = cfg.us_signin_replaces_login;
    for (key, list) in [
        ("us_enabled_methods", &cfg.us_enabled_methods),
        ("us_mfa_required", &cfg.us_mfa_required),
    ] {
        for m in list {
            if !METHODS.contains(&m.as_str()) {
                return Err(ConfigError::new(
                    key,
                    format!("{m:?} is not one of password, email, authenticator, sms"),
                ));
            }
        }
    }
    ConfigError::positive_secs("us_setup_within", cfg.us_setup_within)?;
    ConfigError::positive_secs("us_token_validity", cfg.us_token_validity)?;
    let kit = setup.code_kit(
        "unified_signin",
        &[UserField::UsTotpSecrets, UserField::UsPhoneNumber],
        cfg.us_enabled_methods.iter().any(|m| m == "sms"),
    )?;
    let views: SharedViews = setup.section()?;
    let us = Arc::new(UnifiedSignin {
        cfg,
        views,
        secrets: kit.secrets,
        issuer: kit.issuer,
        sms: kit.sms,
        phone_region: setup.config.phone_region_default.clone(),
    });
    setup.manage(us);
    setup.unified_signin();
    let mut routes = signin::routes();
    if replaces_login {
        routes.extend(signin::at_login());
    }
    setup.mount("us_signin", "/us-signin", routes);
    setup.mount("us_setup", "/us-setup", setup::routes());
    if setup.config.freshness >= 0 {
        setup.mount("us_verify", "/us-verify", verify::routes());
    }
    Ok(())
}

/// The `{method: encrypted secret}` of a user (an unreadable column reads
/// as none set up, logged).
fn stored_secrets(user: &User) -> BTreeMap<String, String> {
    match user.us_totp_secrets.as_deref() {
        None | Some("") => BTreeMap::new(),
        Some(raw) => match serde_json::from_str(raw) {
            Ok(m) => m,
            Err(e) => {
                log::error!(
                    "us_totp_secrets of user {} is not a JSON object: {e}",
                    user.id
                );
                BTreeMap::new()
            }
        },
    }
}

/// The column value of `secrets` (none when empty).
fn secrets_column(secrets: &BTreeMap<String, String>) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    serde_json::to_string(secrets).ok()
}

impl UnifiedSignin {
    fn enabled(&self, method: &str) -> bool {
        self.cfg.us_enabled_methods.iter().any(|m| m == method)
    }

    /// Methods that send codes (email, sms).
    fn code_methods(&self) -> Vec<String> {
        self.cfg
            .us_enabled_methods
            .iter()
            .filter(|m| !matches!(m.as_str(), "password" | "authenticator"))
            .cloned()
            .collect()
    }

    /// Methods that need a setup.
    fn setup_methods(&self) -> Vec<String> {
        self.cfg
            .us_enabled_methods
            .iter()
            .filter(|m| m.as_str() != "password")
            .cloned()
            .collect()
    }

    /// The methods `user` has: `password` when they have one (enabled or
    /// not, as Flask-Security reports it), then the enabled methods they
    /// set up, in the configured order.
    fn active_methods(&self, user: &User) -> Vec<String> {
        let secrets = stored_secrets(user);
        let mut active = Vec::new();
        if user.password.as_deref().is_some_and(|p| !p.is_empty()) {
            active.push("password".to_string());
        }
        active.extend(
            self.cfg
                .us_enabled_methods
                .iter()
                .filter(|m| m.as_str() != "password" && secrets.contains_key(m.as_str()))
                .cloned(),
        );
        active
    }

    /// The active methods that send codes.
    fn active_code_methods(&self, user: &User) -> Vec<String> {
        let codes = self.code_methods();
        self.active_methods(user)
            .into_iter()
            .filter(|m| codes.contains(m))
            .collect()
    }

    /// `identity_attributes` of the answers: the kernel's, and the phone
    /// when sms is enabled.
    fn identity_attributes(&self, ctx: &Ctx<'_>) -> Vec<&'static str> {
        let mut attrs = ctx.config().identity_attributes();
        if self.enabled("sms") {
            attrs.push("us_phone_number");
        }
        attrs
    }

    /// `{available_methods, code_methods, identity_attributes}`.
    fn methods_payload(&self, ctx: &Ctx<'_>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "available_methods".into(),
            json!(self.cfg.us_enabled_methods),
        );
        m.insert("code_methods".into(), json!(self.code_methods()));
        m.insert(
            "identity_attributes".into(),
            json!(self.identity_attributes(ctx)),
        );
        m
    }

    fn post_setup_view(&self, ctx: &Ctx<'_>) -> String {
        self.cfg
            .us_post_setup_view
            .clone()
            .unwrap_or_else(|| ctx.config().url("/us-setup"))
    }

    /// The setup ceremonies.
    fn setups<'a>(&self, ctx: &Ctx<'a>) -> Option<Ceremonies<'a>> {
        ctx.state.ceremonies.as_deref().map(|store| Ceremonies {
            store,
            kind: "us_setup",
        })
    }

    /// Decrypts a stored secret (off the executor: PBKDF2).
    async fn key(&self, stored: &str) -> Option<TotpKey> {
        self.secrets.key_of(stored).await
    }

    /// Sends `user` a code of `key` as `to` says. `Purpose::SignIn` codes
    /// are ones not used yet. `false` (logged) when it could not be sent.
    async fn send_code(
        &self,
        ctx: &Ctx<'_>,
        user: &User,
        key: &TotpKey,
        to: Delivery<'_>,
        purpose: Purpose<'_>,
    ) -> bool {
        let window = self.cfg.us_token_validity;
        let Delivery {
            method,
            phone,
            link,
        } = to;
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
            "email" => {
                let login_link = link.then(|| {
                    let q: String = url::form_urlencoded::Serializer::new(String::new())
                        .append_pair("id", &user.fs_uniquifier)
                        .append_pair("code", &code)
                        .finish();
                    format!("{}?{q}", ctx.external_url("/us-verify-link"))
                });
                let mut c = codes::mail_context(user, &code, window);
                c.insert("login_token", &code);
                c.insert("login_link", &login_link);
                mail::send(
                    ctx,
                    Outgoing {
                        to: &user.email,
                        subject: &self.cfg.us_email_subject,
                        template: "us_instructions",
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

    /// Checks a passcode of `user`: the throttling gate once, then each
    /// enabled method in order (the password, or a code of a set-up method,
    /// claimed when it matches), reporting one failure when none matched.
    /// The method that matched, or `None`.
    async fn check_passcode(
        &self,
        ctx: &Ctx<'_>,
        attempt: &Attempt<'_>,
        user: &User,
        passcode: &str,
    ) -> Result<Option<String>, PasscodeError> {
        login::gate(ctx.state, attempt, Some(user))
            .await
            .map_err(PasscodeError::Refused)?;
        let secrets = stored_secrets(user);
        let digits = passcode.len() == 6 && passcode.bytes().all(|b| b.is_ascii_digit());
        for method in &self.cfg.us_enabled_methods {
            if method == "password" {
                if user.password.as_deref().is_some_and(|p| !p.is_empty())
                    && login::password_matches(ctx.state, Some(user), passcode)
                        .await
                        .map_err(PasscodeError::Refused)?
                {
                    return Ok(Some(method.clone()));
                }
                continue;
            }
            let Some(stored) = secrets.get(method) else {
                continue;
            };
            if !digits {
                continue;
            }
            let Some(key) = self.key(stored).await else {
                continue;
            };
            let scope = format!("us:{method}");
            if codes::matches(
                ctx.state,
                user,
                &key,
                passcode,
                self.cfg.us_token_validity,
                Purpose::SignIn(&scope),
            )
            .await
            .map_err(PasscodeError::Backend)?
            {
                return Ok(Some(method.clone()));
            }
        }
        login::failed(ctx.state, attempt, Some(user)).await;
        Ok(None)
    }

    /// Finds the user an identity names: email, username (when enabled),
    /// then the phone (when sms is enabled).
    async fn lookup(&self, ctx: &Ctx<'_>, identity: &str) -> Result<Option<User>, DatastoreError> {
        let ds = &ctx.state.datastore;
        if let Some(u) = ds.find_user(Lookup::Email(identity)).await? {
            return Ok(Some(u));
        }
        if ctx.config().username_enable
            && let Some(u) = ds.find_user(Lookup::Username(identity)).await?
        {
            return Ok(Some(u));
        }
        if self.enabled("sms")
            && let Some(phone) = crate::sms::normalize_phone(identity, &self.phone_region)
        {
            return ds.find_user(Lookup::UsPhone(&phone)).await;
        }
        Ok(None)
    }
}

/// How a code is sent: `email` (with the magic link when `link`) or
/// `sms` (to `phone`).
#[derive(Debug, Clone, Copy)]
struct Delivery<'a> {
    method: &'a str,
    phone: Option<&'a str>,
    link: bool,
}

/// Why a passcode could not be checked.
#[derive(Debug)]
enum PasscodeError {
    /// The throttling hook refused the attempt (or no hashing slot).
    Refused(CredentialError),
    /// The datastore failed.
    Backend(DatastoreError),
}

/// The answer to a passcode check that failed for another reason than a
/// wrong passcode.
fn passcode_failed(
    ctx: &Ctx<'_>,
    e: PasscodeError,
    page: impl FnOnce(&Ctx<'_>, &FormErrors) -> Reply,
) -> Reply {
    match e {
        PasscodeError::Backend(e) => Reply::failed("checking a passcode", &e),
        PasscodeError::Refused(CredentialError::Throttled(d, m)) => ctx.throttled(d, m, page),
        PasscodeError::Refused(CredentialError::Refused(m)) => {
            ctx.invalid(&FormErrors::one("passcode", m), page)
        }
        PasscodeError::Refused(CredentialError::Busy) => Reply::busy(ctx.state.passwords.wait()),
        PasscodeError::Refused(CredentialError::Invalid) => {
            ctx.invalid(&FormErrors::one("passcode", Msg::InvalidPasswordCode), page)
        }
    }
}

/// 500 `FAILED_TO_SEND_CODE` (JSON), or the page with it on `field`.
fn send_failed(
    ctx: &Ctx<'_>,
    field: &str,
    page: impl FnOnce(&Ctx<'_>, &FormErrors) -> Reply,
) -> Reply {
    if ctx.json() {
        return Reply::error(Status::InternalServerError, Msg::FailedToSendCode);
    }
    page(ctx, &FormErrors::one(field, Msg::FailedToSendCode))
}
