//! `/us-setup` (add or delete methods; signed in and fresh) and
//! `/us-setup/<state>` (the code that completes adding one).

use std::sync::Arc;

use rocket::http::Status;
use rocket::{Route, State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::signin::field_required;
use super::{Delivery, UnifiedSignin, secrets_column, send_failed, stored_secrets};
use crate::datastore::{DatastoreError, Lookup, User, UserUpdate};
use crate::http::{Ctx, FormErrors, FormInput, Reply, code_text, text};
use crate::login::codes::{self, CodeError, Purpose};
use crate::login::{Attempt, AuthnMethod, CredentialError};
use crate::messages::{Message, Msg, within_text};
use crate::totp::{AuthenticatorSetup, TotpKey};

pub(super) fn routes() -> Vec<Route> {
    routes![setup_get, setup_post, setup_validate]
}

/// A setup in progress: the method, its new secret (encrypted) and phone.
#[derive(Clone, Serialize, Deserialize)]
struct SetupState {
    method: String,
    secret: String,
    #[serde(default)]
    phone: Option<String>,
}

/// What a just-chosen method shows on the setup page.
struct Chosen<'a> {
    method: &'a str,
    key: Option<&'a TotpKey>,
    state: &'a str,
}

fn setup_page(
    ctx: &Ctx<'_>,
    us: &UnifiedSignin,
    user: &User,
    chosen: Option<Chosen<'_>>,
    errors: &FormErrors,
) -> Reply {
    let active = us.active_methods(user);
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/us-setup"));
    c.insert("available_methods", &us.cfg.us_enabled_methods);
    c.insert("active_methods", &active);
    let addable: Vec<String> = us
        .setup_methods()
        .into_iter()
        .filter(|m| !active.contains(m))
        .collect();
    c.insert("setup_choices", &addable);
    let deletable: Vec<&String> = active.iter().filter(|m| m.as_str() != "password").collect();
    c.insert("delete_choices", &deletable);
    c.insert(
        "current_methods_msg",
        &Message::new(Msg::UsCurrentMethods)
            .arg(
                "method_list",
                if active.is_empty() {
                    "None".to_string()
                } else {
                    active.join(", ")
                },
            )
            .render(&ctx.state.messages),
    );
    c.insert("phone", &user.us_phone_number);
    if let Some(ch) = chosen {
        c.insert("chosen_method", ch.method);
        c.insert("state", ch.state);
        c.insert(
            "code_action",
            &ctx.config().url(&format!("/us-setup/{}", ch.state)),
        );
        c.insert(
            "code_sent",
            &us.code_methods().iter().any(|m| m == ch.method),
        );
        if let Some(key) = ch.key {
            AuthenticatorSetup::new(key, &us.issuer, user).to_page(&mut c);
        }
    }
    ctx.page("security/us_setup.html.tera", c, errors)
}

#[get("/us-setup")]
async fn setup_get(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    if !ctx.json() {
        return Ok(setup_page(&ctx, us, &user, None, &FormErrors::new()));
    }
    Ok(Reply::ok(setup_payload(&ctx, us, &user)))
}

fn setup_payload(ctx: &Ctx<'_>, us: &UnifiedSignin, user: &User) -> serde_json::Map<String, Value> {
    let mut body = ctx.payload(None);
    body.insert(
        "identity_attributes".into(),
        json!(us.identity_attributes(ctx)),
    );
    body.insert("available_methods".into(), json!(us.cfg.us_enabled_methods));
    body.insert("active_methods".into(), json!(us.active_methods(user)));
    body.insert("setup_methods".into(), json!(us.setup_methods()));
    let phone = if us.enabled("sms") {
        user.us_phone_number.clone()
    } else {
        None
    };
    body.insert("phone".into(), json!(phone));
    body
}

#[post("/us-setup", data = "<form>")]
async fn setup_post(
    ctx: Ctx<'_>,
    us: &State<Arc<UnifiedSignin>>,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let us: &UnifiedSignin = us;
    let page = |c: &Ctx<'_>, e: &FormErrors| setup_page(c, us, &user, None, e);
    let mut errors = FormErrors::new();
    let chosen = text(&form, "chosen_method", &mut errors);
    let phone_in = text(&form, "phone", &mut errors);
    let delete = match form.list("delete_method") {
        Ok(l) => l,
        Err(_) => {
            errors.add("delete_method", Msg::ApiError);
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Ok(ctx.invalid(&errors, page));
    }
    if chosen.is_none() && delete.is_empty() {
        return Ok(ctx.invalid(&FormErrors::one("", Msg::ApiError), page));
    }
    let mut phone = None;
    if let Some(m) = &chosen {
        if !us.setup_methods().contains(m) {
            return Ok(ctx.invalid(
                &FormErrors::one("chosen_method", Msg::UsMethodNotAvailable),
                page,
            ));
        }
        if m == "sms" {
            let Some(p) = phone_in
                .as_deref()
                .and_then(|p| crate::sms::normalize_phone(p, &us.phone_region))
            else {
                return Ok(ctx.invalid(&FormErrors::one("phone", Msg::PhoneInvalid), page));
            };
            match ctx.state.datastore.find_user(Lookup::UsPhone(&p)).await {
                Ok(Some(other)) if other.id != user.id => {
                    return Ok(ctx.invalid(&phone_taken(&p), page));
                }
                Ok(_) => {}
                Err(e) => return Ok(Reply::failed("phone lookup", &e)),
            }
            phone = Some(p);
        }
    }
    if !delete.is_empty() {
        let active = us.active_methods(&user);
        if !delete.iter().all(|m| active.contains(m)) {
            return Ok(ctx.invalid(
                &FormErrors::one("delete_method", Msg::UsMethodNotAvailable),
                page,
            ));
        }
    }
    let mut user: User = (*user).clone();
    if !delete.is_empty() {
        let mut secrets = stored_secrets(&user);
        for m in &delete {
            secrets.remove(m);
        }
        let mut update = UserUpdate::new().us_totp_secrets(secrets_column(&secrets));
        if delete.iter().any(|m| m == "sms") {
            update = update.us_phone_number(None);
            user.us_phone_number = None;
        }
        if let Err(e) = ctx.state.datastore.update_user(user.id, update).await {
            return Ok(Reply::failed("deleting sign-in methods", &e));
        }
        user.us_totp_secrets = secrets_column(&secrets);
    }
    let Some(method) = chosen else {
        if !ctx.json() {
            return Ok(setup_page(&ctx, us, &user, None, &FormErrors::new()));
        }
        return Ok(Reply::ok(ctx.payload(None)));
    };
    let key = TotpKey::generate();
    let secret = match us.secrets.encrypt_blocking(key.clone()).await {
        Ok(s) => s,
        Err(e) => return Ok(Reply::failed("encrypting a TOTP secret", &e)),
    };
    let page = |c: &Ctx<'_>, e: &FormErrors| setup_page(c, us, &user, None, e);
    if matches!(method.as_str(), "email" | "sms")
        && !us
            .send_code(
                &ctx,
                &user,
                &key,
                Delivery {
                    method: &method,
                    phone: phone.as_deref(),
                    link: false,
                },
                Purpose::Setup,
            )
            .await
    {
        return Ok(send_failed(&ctx, "chosen_method", page));
    }
    let Some(setups) = us.setups(&ctx) else {
        return Ok(Reply::failed("starting a setup", &"no ceremony store"));
    };
    let state = SetupState {
        method: method.clone(),
        secret,
        phone: phone.clone(),
    };
    let now = ctx.state.clock.now_secs();
    let c = match setups
        .start(user.id, state, now, us.cfg.us_setup_within)
        .await
    {
        Ok(c) => c,
        Err(e) => return Ok(Reply::failed("starting a setup", &e)),
    };
    if !ctx.json() {
        let authr = (method == "authenticator").then_some(&key);
        let chosen = Chosen {
            method: &method,
            key: authr,
            state: &c.reference,
        };
        return Ok(setup_page(
            &ctx,
            us,
            &user,
            Some(chosen),
            &FormErrors::new(),
        ));
    }
    let mut body = ctx.payload(None);
    body.insert("chosen_method".into(), Value::String(method.clone()));
    body.insert("phone".into(), json!(phone));
    body.insert("state".into(), Value::String(c.reference.clone()));
    if method == "authenticator" {
        AuthenticatorSetup::new(&key, &us.issuer, &user).to_json("", &mut body);
    }
    Ok(Reply::ok(body))
}

/// `IDENTITY_ALREADY_ASSOCIATED` on `phone`.
fn phone_taken(phone: &str) -> FormErrors {
    FormErrors::one(
        "phone",
        Message::new(Msg::IdentityAlreadyAssociated)
            .arg("attr", "us_phone_number")
            .arg("value", phone),
    )
}

/// A bad or expired setup state: a form-level error (JSON), else back to
/// `/us-setup` with a flash.
fn bad_state(ctx: &Ctx<'_>, msg: Message) -> Reply {
    if ctx.json() {
        return Reply::form(FormErrors::one("", msg));
    }
    ctx.flash(msg);
    Reply::redirect(ctx.config().url("/us-setup"))
}

#[post("/us-setup/<token>", data = "<form>")]
async fn setup_validate(
    ctx: Ctx<'_>,
    us: &State<Arc<UnifiedSignin>>,
    token: &str,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let us: &UnifiedSignin = us;
    let Some(setups) = us.setups(&ctx) else {
        return Ok(bad_state(&ctx, Msg::ApiError.into()));
    };
    let now = ctx.state.clock.now_secs();
    let c = match setups.find::<SetupState>(token, now).await {
        Ok(Some(c)) if c.user_id == user.id => c,
        Ok(Some(_)) => return Ok(bad_state(&ctx, Msg::ApiError.into())),
        Ok(None) => {
            // Expired (if the record is still there) or unknown.
            let expired = matches!(
                setups.find::<SetupState>(token, i64::MIN).await,
                Ok(Some(c)) if c.user_id == user.id
            );
            let msg = if expired {
                Message::new(Msg::UsSetupExpired).arg("within", within_text(us.cfg.us_setup_within))
            } else {
                Msg::ApiError.into()
            };
            return Ok(bad_state(&ctx, msg));
        }
        Err(e) => return Ok(Reply::failed("reading a setup", &e)),
    };
    let wrong = |ctx: &Ctx<'_>, errors: &FormErrors| {
        if ctx.json() {
            return Reply::form(errors.clone());
        }
        ctx.flash(Msg::InvalidPasswordCode);
        Reply::redirect(ctx.config().url("/us-setup"))
    };
    let mut errors = FormErrors::new();
    let Some(code) = code_text(&form, "passcode", &mut errors) else {
        if !errors.has("passcode") {
            errors.add("passcode", field_required());
        }
        return Ok(wrong(&ctx, &errors));
    };
    let Some(key) = us.key(&c.state.secret).await else {
        return Ok(bad_state(&ctx, Msg::ApiError.into()));
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::UnifiedSignin).identity(&user.email);
    match codes::check(
        ctx.state,
        &attempt,
        &user,
        &key,
        &code,
        us.cfg.us_token_validity,
        Purpose::Setup,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Ok(wrong(
                &ctx,
                &FormErrors::one("passcode", Msg::InvalidPasswordCode),
            ));
        }
        Err(CodeError::Backend(e)) => return Ok(Reply::failed("checking a code", &e)),
        Err(CodeError::Refused(CredentialError::Throttled(d, m))) => {
            return Ok(ctx.throttled(d, m, |c, e| setup_page(c, us, &user, None, e)));
        }
        Err(CodeError::Refused(CredentialError::Busy)) => return Ok(Reply::unavailable()),
        Err(CodeError::Refused(CredentialError::Refused(m))) => {
            return Ok(wrong(&ctx, &FormErrors::one("passcode", m)));
        }
        Err(CodeError::Refused(CredentialError::Invalid)) => {
            return Ok(wrong(
                &ctx,
                &FormErrors::one("passcode", Msg::InvalidPasswordCode),
            ));
        }
    }
    match setups.finish(&c, now).await {
        Ok(true) => {}
        Ok(false) => return Ok(bad_state(&ctx, Msg::ApiError.into())),
        Err(e) => return Ok(Reply::failed("finishing a setup", &e)),
    }
    // The user as stored now (a method added meanwhile is kept).
    let fresh = match ctx.state.datastore.find_user(Lookup::Id(user.id)).await {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(bad_state(&ctx, Msg::ApiError.into())),
        Err(e) => return Ok(Reply::failed("reading the user", &e)),
    };
    let mut secrets = stored_secrets(&fresh);
    secrets.insert(c.state.method.clone(), c.state.secret.clone());
    let mut update = UserUpdate::new().us_totp_secrets(secrets_column(&secrets));
    let mut phone = fresh.us_phone_number.clone();
    if c.state.method == "sms" {
        update = update.us_phone_number(c.state.phone.clone());
        phone = c.state.phone.clone();
    }
    match ctx.state.datastore.update_user(user.id, update).await {
        Ok(_) => {}
        Err(DatastoreError::Conflict(_)) => {
            let p = c.state.phone.clone().unwrap_or_default();
            return Ok(ctx.invalid(&phone_taken(&p), |c, e| setup_page(c, us, &user, None, e)));
        }
        Err(e) => return Ok(Reply::failed("storing a sign-in method", &e)),
    }
    if !ctx.json() {
        ctx.flash(Msg::UsSetupSuccessful);
        return Ok(Reply::redirect(us.post_setup_view(&ctx)));
    }
    let mut body = ctx.payload(None);
    body.insert(
        "chosen_method".into(),
        Value::String(c.state.method.clone()),
    );
    let phone = if us.enabled("sms") { phone } else { None };
    body.insert("phone".into(), json!(phone));
    Ok(Reply::ok(body))
}
