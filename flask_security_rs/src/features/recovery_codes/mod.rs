//! Multi-factor recovery codes: `/mf-recovery-codes` (a signed-in, fresh
//! user makes or reads them) and `/mf-recovery` (one code in place of the
//! second factor of a sign-in in progress).
//!
//! A code is single use: the column is rewritten only if it still holds
//! what was read, so of concurrent uses of one code exactly one signs in.
//! Codes are checked through the throttling hook like passwords and codes.

pub(crate) mod codes;

use std::sync::Arc;

use rocket::http::Status;
use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;
use serde_json::json;

use super::{Feature, Setup, section_keys, templates};
use crate::config::ConfigError;
use crate::datastore::{User, UserField, UserUpdate};
use crate::http::redirect::{redirect_allowed, redirect_target};
use crate::http::{Ctx, FormErrors, FormInput, Reply, query_has, query_value, text};
use crate::login::pending::{self, Completed, Stage};
use crate::login::{Attempt, AuthnMethod, CredentialError, SignIn, failed, gate};
use crate::messages::Msg;
use codes::CodeVault;

/// The recovery-codes feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RecoveryCodesConfig {
    /// `SECURITY_MULTI_FACTOR_RECOVERY_CODES`. _Default:_ `false`.
    multi_factor_recovery_codes: bool,
    /// `SECURITY_MULTI_FACTOR_RECOVERY_CODES_N`. _Default:_ `5`.
    multi_factor_recovery_codes_n: usize,
    /// `SECURITY_MULTI_FACTOR_RECOVERY_CODES_KEYS`: Fernet keys that
    /// encrypt the stored codes (the first encrypts). _Default:_ none (plain).
    multi_factor_recovery_codes_keys: Option<Vec<crate::config::Secret>>,
    /// `SECURITY_MULTI_FACTOR_RECOVERY_CODE_TTL`: the largest age, seconds,
    /// of an encrypted code still accepted. _Default:_ none.
    multi_factor_recovery_code_ttl: Option<u64>,
}

impl Default for RecoveryCodesConfig {
    fn default() -> Self {
        RecoveryCodesConfig {
            multi_factor_recovery_codes: false,
            multi_factor_recovery_codes_n: 5,
            multi_factor_recovery_codes_keys: None,
            multi_factor_recovery_code_ttl: None,
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(RecoveryCodesConfig),
    templates: templates!(
        "security/mf_recovery_codes.html.tera",
        "security/mf_recovery.html.tera",
    ),
    install,
};

/// The feature's state.
pub(crate) struct RecoveryCodes {
    n: usize,
    vault: CodeVault,
}

impl RecoveryCodes {
    fn now(ctx: &Ctx<'_>) -> u64 {
        u64::try_from(ctx.state.clock.now_secs()).unwrap_or(0)
    }

    fn of(&self, ctx: &Ctx<'_>, user: &User) -> Vec<String> {
        match &user.mf_recovery_codes {
            Some(stored) => self.vault.open_at(stored, Self::now(ctx)),
            None => Vec::new(),
        }
    }
}

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: RecoveryCodesConfig = setup.section()?;
    if !cfg.multi_factor_recovery_codes {
        return Ok(());
    }
    if !setup.datastore().has_field(UserField::MfRecoveryCodes) {
        return Err(ConfigError::new(
            "multi_factor_recovery_codes",
            "needs the user model's mf_recovery_codes column",
        ));
    }
    if !(1..=100).contains(&cfg.multi_factor_recovery_codes_n) {
        return Err(ConfigError::new(
            "multi_factor_recovery_codes_n",
            "must be between 1 and 100",
        ));
    }
    let keys: Option<Vec<String>> = cfg
        .multi_factor_recovery_codes_keys
        .as_ref()
        .map(|ks| ks.iter().map(|k| k.expose().to_string()).collect());
    let vault = CodeVault::new(keys.as_deref(), cfg.multi_factor_recovery_code_ttl)
        .map_err(|e| ConfigError::new("multi_factor_recovery_codes_keys", e))?;
    let rc = Arc::new(RecoveryCodes {
        n: cfg.multi_factor_recovery_codes_n,
        vault,
    });
    let url = setup.config.url("/mf-recovery");
    let offer = rc.clone();
    setup.rescue_option(move |user| {
        let has = user
            .mf_recovery_codes
            .as_deref()
            .is_some_and(|s| !offer.vault.open(s).is_empty());
        has.then(|| ("recovery_code", url.clone()))
    });
    setup.manage(rc);
    setup.mount(
        "mf_recovery_codes",
        "/mf-recovery-codes",
        routes![codes_get, codes_post, recovery_get, recovery_post],
    );
    Ok(())
}

fn codes_page(ctx: &Ctx<'_>, codes: &[String], errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    let action = ctx.config().url("/mf-recovery-codes");
    c.insert("show_codes_url", &format!("{action}?show_codes=1"));
    c.insert("action", &action);
    c.insert("recovery_codes", codes);
    ctx.page("security/mf_recovery_codes.html.tera", c, errors)
}

#[get("/mf-recovery-codes")]
async fn codes_get(ctx: Ctx<'_>, rc: &State<Arc<RecoveryCodes>>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    let codes = rc.of(&ctx, &user);
    if !ctx.json() {
        if !query_has(ctx.req, "show_codes") {
            return Ok(codes_page(&ctx, &[], &FormErrors::new()));
        }
        let errors = if codes.is_empty() {
            FormErrors::one("show_codes", Msg::NoRecoveryCodesSetup)
        } else {
            FormErrors::new()
        };
        return Ok(codes_page(&ctx, &codes, &errors));
    }
    let mut body = ctx.payload(None);
    body.insert("recovery_codes".into(), json!(codes));
    Ok(Reply::ok(body))
}

#[post("/mf-recovery-codes", data = "<form>")]
async fn codes_post(
    ctx: Ctx<'_>,
    rc: &State<Arc<RecoveryCodes>>,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let codes = codes::generate(rc.n);
    let stored = rc.vault.seal_at(&codes, RecoveryCodes::now(&ctx));
    let update = UserUpdate::new().recovery_codes(Some(stored));
    if let Err(e) = ctx.state.datastore.update_user(user.id, update).await {
        return Ok(Reply::failed("storing recovery codes", &e));
    }
    if !ctx.json() {
        return Ok(codes_page(&ctx, &codes, &FormErrors::new()));
    }
    let mut body = ctx.payload(None);
    body.insert("recovery_codes".into(), json!(codes));
    Ok(Reply::ok(body))
}

fn recovery_page(ctx: &Ctx<'_>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    ctx.page("security/mf_recovery.html.tera", c, errors)
}

/// The answer when no sign-in waits at `ready`.
fn denied(ctx: &Ctx<'_>) -> Reply {
    if ctx.json() {
        return Reply::form(FormErrors::one("", Msg::TwoFactorPermissionDenied));
    }
    ctx.flash(Msg::TwoFactorPermissionDenied);
    Reply::redirect(ctx.config().url("/login"))
}

#[get("/mf-recovery")]
async fn recovery_get(ctx: Ctx<'_>) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    match pending::current(&ctx, None, &[Stage::Ready]).await {
        Ok(Some(_)) => {}
        Ok(None) => return denied(&ctx),
        Err(e) => return Reply::failed("reading the sign-in in progress", &e),
    }
    if !ctx.json() {
        return recovery_page(&ctx, &FormErrors::new());
    }
    Reply::ok(ctx.payload(None))
}

#[post("/mf-recovery", data = "<form>")]
async fn recovery_post(ctx: Ctx<'_>, rc: &State<Arc<RecoveryCodes>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let found = match pending::current(&ctx, Some(&form), &[Stage::Ready]).await {
        Ok(Some(f)) => f,
        Ok(None) => return denied(&ctx),
        Err(e) => return Reply::failed("reading the sign-in in progress", &e),
    };
    let mut errors = FormErrors::new();
    let code = text(&form, "code", &mut errors);
    let Some(code) = code else {
        if !errors.has("code") {
            errors.add("code", Msg::InvalidRecoveryCode);
        }
        return ctx.invalid(&errors, recovery_page);
    };
    let user = &found.user;
    let attempt = Attempt::new(ctx.req, AuthnMethod::RecoveryCode).identity(&user.email);
    match gate(ctx.state, &attempt, Some(user)).await {
        Ok(()) => {}
        Err(CredentialError::Throttled(d, m)) => return ctx.throttled(d, m, recovery_page),
        Err(CredentialError::Refused(m)) => {
            return ctx.invalid(&FormErrors::one("code", m), recovery_page);
        }
        Err(_) => return Reply::unavailable(),
    }
    let stored = user.mf_recovery_codes.clone().unwrap_or_default();
    let left = rc
        .vault
        .consume_at(&stored, &code, RecoveryCodes::now(&ctx));
    let used = match left {
        None => false,
        Some(left) => {
            // Only if nobody used a code meanwhile: one of concurrent uses wins.
            let update = UserUpdate::new()
                .recovery_codes(Some(left))
                .if_recovery_codes(user.mf_recovery_codes.as_deref());
            match ctx.state.datastore.update_user(user.id, update).await {
                Ok(applied) => applied,
                Err(e) => return Reply::failed("using a recovery code", &e),
            }
        }
    };
    if !used {
        failed(ctx.state, &attempt, Some(user)).await;
        return ctx.invalid(
            &FormErrors::one("code", Msg::InvalidRecoveryCode),
            recovery_page,
        );
    }
    let issued = match pending::complete(&ctx, found, AuthnMethod::RecoveryCode).await {
        Ok(Completed::SignIn(SignIn::Done(issued))) => issued,
        Ok(Completed::SignIn(SignIn::Refused(problem))) => {
            return ctx.invalid(&FormErrors::one("", problem), recovery_page);
        }
        Ok(Completed::SignIn(SignIn::Answer(reply))) => return reply,
        Ok(Completed::Lost) => return denied(&ctx),
        Err(e) => return Reply::failed("completing the sign-in", &e),
    };
    if !ctx.json() {
        let to = match query_value(ctx.req, "next") {
            Some(n) if redirect_allowed(ctx.req, &n) => redirect_target(&n),
            _ => ctx.config().post_login_view.clone(),
        };
        return Reply::redirect(to);
    }
    Reply::ok(issued.payload(&ctx))
}
