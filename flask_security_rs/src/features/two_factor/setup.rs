//! `/tf-setup` and `/tf-setup/<state_token>`: choosing, changing or
//! turning off a method, by a signed-in user (fresh) or during a sign-in
//! that requires two-factor.

use std::sync::Arc;

use rocket::http::Status;
use rocket::{Route, State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::{Value, json};

use super::{SetupState, TwoFactor, code_failed, illegal_state};
use crate::authn::{self, session};
use crate::ceremony::Ceremony;
use crate::datastore::{User, UserUpdate};
use crate::http::{Ctx, FormErrors, FormInput, Reply, text};
use crate::login::codes::{self, Purpose};
use crate::login::pending::{self, Found, Pending, Stage};
use crate::login::{Attempt, AuthnMethod};
use crate::messages::Msg;
use crate::totp::{AuthenticatorSetup, TotpKey};

pub(super) fn routes() -> Vec<Route> {
    routes![setup_get, setup_post, setup_validate]
}

/// Who is setting up.
enum Who {
    /// A signed-in user, freshly authenticated.
    Changing(Arc<User>),
    /// A sign-in waiting for its second factor, with no method yet.
    Login(Box<Found>),
}

impl Who {
    fn user(&self) -> &User {
        match self {
            Who::Changing(u) => u,
            Who::Login(f) => &f.user,
        }
    }
}

/// The signed-in user (who must be fresh), or the sign-in in progress;
/// `Ok(None)` when there is neither.
async fn who(
    ctx: &Ctx<'_>,
    form: Option<&FormInput>,
) -> Result<Result<Option<Who>, Reply>, Status> {
    if authn::current_user(ctx.req).await.is_some() {
        return ctx
            .require_user(true)
            .await
            .map(|u| Ok(Some(Who::Changing(u))));
    }
    let stages = [Stage::SetupFromLogin, Stage::ValidatingProfile];
    Ok(match pending::current(ctx, form, &stages).await {
        Ok(found) => Ok(found.map(|f| Who::Login(Box::new(f)))),
        Err(e) => Err(Reply::failed("reading the sign-in in progress", &e)),
    })
}

/// What a chosen method shows on the setup page.
struct Chosen<'a> {
    method: &'a str,
    key: Option<&'a TotpKey>,
    state_token: Option<&'a str>,
}

fn setup_page(
    ctx: &Ctx<'_>,
    tf: &TwoFactor,
    who: &Who,
    chosen: Option<Chosen<'_>>,
    errors: &FormErrors,
) -> Reply {
    let user = who.user();
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/tf-setup"));
    c.insert("choices", &tf.choices(user));
    c.insert("primary_method", &user.tf_primary_method);
    c.insert("two_factor_required", &tf.required(user));
    c.insert("changing", &matches!(who, Who::Changing(_)));
    c.insert("phone", &user.tf_phone_number);
    if let Some(ch) = chosen {
        c.insert("chosen_method", ch.method);
        let code_action = match ch.state_token {
            Some(t) => ctx.config().url(&format!("/tf-setup/{t}")),
            None => ctx.config().url("/tf-validate"),
        };
        c.insert("code_action", &code_action);
        c.insert("state_token", &ch.state_token);
        if let Some(key) = ch.key {
            AuthenticatorSetup::new(key, &tf.issuer, user).to_page(&mut c);
        }
    }
    ctx.page("security/two_factor_setup.html.tera", c, errors)
}

#[get("/tf-setup")]
async fn setup_get(ctx: Ctx<'_>, tf: &State<Arc<TwoFactor>>) -> Result<Reply, Status> {
    let who = match who(&ctx, None).await? {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(illegal_state(&ctx, tf)),
        Err(reply) => return Ok(reply),
    };
    if !ctx.json() {
        return Ok(setup_page(&ctx, tf, &who, None, &FormErrors::new()));
    }
    let user = who.user();
    let mut body = ctx.payload(None);
    body.insert("tf_required".into(), Value::Bool(tf.required(user)));
    body.insert("tf_primary_method".into(), json!(user.tf_primary_method));
    body.insert("tf_method".into(), json!(user.tf_primary_method));
    body.insert("tf_phone_number".into(), json!(user.tf_phone_number));
    body.insert("tf_available_methods".into(), json!(tf.choices(user)));
    Ok(Reply::ok(body))
}

#[post("/tf-setup", data = "<form>")]
async fn setup_post(
    ctx: Ctx<'_>,
    tf: &State<Arc<TwoFactor>>,
    form: FormInput,
) -> Result<Reply, Status> {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let who = match who(&ctx, Some(&form)).await? {
        Ok(Some(w)) => w,
        Ok(None) => return Ok(illegal_state(&ctx, tf)),
        Err(reply) => return Ok(reply),
    };
    let tf: &TwoFactor = tf;
    let user = who.user().clone();
    let mut errors = FormErrors::new();
    let choice = text(&form, "setup", &mut errors);
    let mut allowed: Vec<&str> = tf
        .cfg
        .two_factor_enabled_methods
        .iter()
        .map(String::as_str)
        .collect();
    if allowed.contains(&"email") {
        allowed.push("mail");
    }
    let changing = matches!(who, Who::Changing(_));
    if changing && !tf.required(&user) {
        allowed.push("disable");
    }
    let method = match choice.as_deref() {
        Some(m) if allowed.contains(&m) => m.to_string(),
        _ => {
            errors.add("setup", Msg::TwoFactorMethodNotAvailable);
            return Ok(ctx.invalid(&errors, |c, e| setup_page(c, tf, &who, None, e)));
        }
    };
    if method == "disable" {
        let update = UserUpdate::new().two_factor(None, None, None);
        if let Err(e) = ctx.state.datastore.update_user(user.id, update).await {
            return Ok(Reply::failed("turning two-factor off", &e));
        }
        if !ctx.json() {
            ctx.flash(Msg::TwoFactorDisabled);
            return Ok(Reply::redirect(tf.post_setup_view(&ctx)));
        }
        return Ok(Reply::ok(ctx.payload(Some(&user))));
    }
    let phone = if method == "sms" {
        let given = text(&form, "phone", &mut errors);
        match given.and_then(|p| crate::sms::normalize_phone(&p, &tf.phone_region)) {
            Some(p) => Some(p),
            None => {
                errors.add("phone", Msg::PhoneInvalid);
                return Ok(ctx.invalid(&errors, |c, e| setup_page(c, tf, &who, None, e)));
            }
        }
    } else {
        None
    };
    let key = TotpKey::generate();
    let secret = match tf.secrets.encrypt_blocking(key.clone()).await {
        Ok(s) => s,
        Err(e) => return Ok(Reply::failed("encrypting a TOTP secret", &e)),
    };
    let now = ctx.state.clock.now_secs();
    let state_token = match &who {
        Who::Changing(u) => {
            let Some(setups) = tf.setups(&ctx) else {
                return Ok(illegal_state(&ctx, tf));
            };
            let state = SetupState {
                method: method.clone(),
                secret,
                phone: phone.clone(),
            };
            if let Some(old) = session::with(ctx.req, |s| s.ceremony.clone()) {
                let _ = setups.cancel(&old).await;
            }
            match setups
                .start(u.id, state, now, tf.cfg.two_factor_setup_within)
                .await
            {
                Ok(c) => {
                    session::update(ctx.req, |s| s.ceremony = Some(c.reference.clone()));
                    Some(c.reference)
                }
                Err(e) => return Ok(Reply::failed("starting a two-factor setup", &e)),
            }
        }
        Who::Login(found) => {
            let mut found = Found {
                ceremony: found.ceremony.clone(),
                user: found.user.clone(),
            };
            let next = Pending {
                stage: Stage::ValidatingProfile,
                method: Some(method.clone()),
                secret: Some(secret),
                phone: phone.clone(),
                ..found.ceremony.state.clone()
            };
            match pending::advance(&ctx, &mut found, next).await {
                Ok(true) => None,
                Ok(false) => return Ok(illegal_state(&ctx, tf)),
                Err(e) => return Ok(Reply::failed("starting a two-factor setup", &e)),
            }
        }
    };
    if matches!(method.as_str(), "email" | "mail" | "sms")
        && !tf
            .send_code(&ctx, &user, &key, &method, phone.as_deref(), Purpose::Setup)
            .await
    {
        if ctx.json() {
            return Ok(Reply::error(
                Status::InternalServerError,
                Msg::FailedToSendCode,
            ));
        }
        let errors = FormErrors::one("setup", Msg::FailedToSendCode);
        return Ok(setup_page(&ctx, tf, &who, None, &errors));
    }
    if !ctx.json() {
        let authr = (method == "authenticator").then_some(&key);
        let chosen = Chosen {
            method: &method,
            key: authr,
            state_token: state_token.as_deref(),
        };
        return Ok(setup_page(&ctx, tf, &who, Some(chosen), &FormErrors::new()));
    }
    let mut body = ctx.payload(None);
    body.insert(
        "tf_state".into(),
        Value::String(Stage::ValidatingProfile.as_str().into()),
    );
    body.insert("tf_primary_method".into(), Value::String(method.clone()));
    body.insert("tf_method".into(), Value::String(method.clone()));
    body.insert("tf_state_token".into(), json!(state_token));
    if method == "authenticator" {
        AuthenticatorSetup::new(&key, &tf.issuer, &user).to_json("tf_", &mut body);
    }
    Ok(Reply::ok(body))
}

/// The answer to a setup state token that names no setup of this user.
fn bad_state(ctx: &Ctx<'_>) -> Reply {
    if ctx.json() {
        return Reply::form(FormErrors::one("", Msg::ApiError));
    }
    ctx.flash(Msg::ApiError);
    Reply::redirect(ctx.config().url("/tf-setup"))
}

/// Checks `code` for the setup `c` of `user` and, when right, stores the
/// method: the user as updated, or the answer to give.
pub(super) async fn finish_setup(
    ctx: &Ctx<'_>,
    tf: &TwoFactor,
    user: &User,
    c: &Ceremony<SetupState>,
    code: Option<&str>,
) -> Result<User, Reply> {
    let page = |ctx: &Ctx<'_>, _: &FormErrors| {
        ctx.flash(Msg::TwoFactorInvalidToken);
        Reply::redirect(ctx.config().url("/tf-setup"))
    };
    let Some(code) = code else {
        return Err(ctx.invalid(&FormErrors::one("code", Msg::TwoFactorInvalidToken), page));
    };
    let Some(key) = tf.key(&c.state.secret).await else {
        return Err(bad_state(ctx));
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::Code).identity(&user.email);
    let window = tf.window(&c.state.method);
    match codes::check(
        ctx.state,
        &attempt,
        user,
        &key,
        code,
        window,
        Purpose::Setup,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Err(ctx.invalid(&FormErrors::one("code", Msg::TwoFactorInvalidToken), page));
        }
        Err(e) => return Err(code_failed(ctx, e, page)),
    }
    let Some(setups) = tf.setups(ctx) else {
        return Err(bad_state(ctx));
    };
    match setups.finish(c, ctx.state.clock.now_secs()).await {
        Ok(true) => {}
        Ok(false) => return Err(bad_state(ctx)),
        Err(e) => return Err(Reply::failed("finishing a two-factor setup", &e)),
    }
    if session::with(ctx.req, |s| {
        s.ceremony.as_deref() == Some(c.reference.as_str())
    }) {
        session::update(ctx.req, |s| s.ceremony = None);
    }
    let phone = c
        .state
        .phone
        .clone()
        .or_else(|| user.tf_phone_number.clone());
    let update = UserUpdate::new().two_factor(
        Some(c.state.method.clone()),
        Some(c.state.secret.clone()),
        phone.clone(),
    );
    if let Err(e) = ctx.state.datastore.update_user(user.id, update).await {
        return Err(Reply::failed("storing a two-factor method", &e));
    }
    let mut updated = user.clone();
    updated.tf_primary_method = Some(c.state.method.clone());
    updated.tf_totp_secret = Some(c.state.secret.clone());
    updated.tf_phone_number = phone;
    Ok(updated)
}

#[post("/tf-setup/<token>", data = "<form>")]
async fn setup_validate(
    ctx: Ctx<'_>,
    tf: &State<Arc<TwoFactor>>,
    token: &str,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let Some(setups) = tf.setups(&ctx) else {
        return Ok(bad_state(&ctx));
    };
    let now = ctx.state.clock.now_secs();
    let c = match setups.find::<SetupState>(token, now).await {
        Ok(Some(c)) if c.user_id == user.id => c,
        Ok(_) => return Ok(bad_state(&ctx)),
        Err(e) => return Ok(Reply::failed("reading a two-factor setup", &e)),
    };
    let mut errors = FormErrors::new();
    let code = text(&form, "code", &mut errors);
    let updated = match finish_setup(&ctx, tf, &user, &c, code.as_deref()).await {
        Ok(u) => u,
        Err(reply) => return Ok(reply),
    };
    if !ctx.json() {
        ctx.flash(Msg::TwoFactorChangeMethodSuccessful);
        return Ok(Reply::redirect(tf.post_setup_view(&ctx)));
    }
    let mut body = ctx.payload(None);
    body.insert("tf_method".into(), json!(updated.tf_primary_method));
    body.insert("tf_primary_method".into(), json!(updated.tf_primary_method));
    body.insert("tf_phone".into(), json!(updated.tf_phone_number));
    Ok(Reply::ok(body))
}
