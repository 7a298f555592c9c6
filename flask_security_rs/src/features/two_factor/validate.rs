//! `/tf-validate` (the code that completes a sign-in, or a setup by a
//! signed-in user) and `/tf-rescue` (another way out for a user without
//! their device).

use std::sync::Arc;

use rocket::http::Status;
use rocket::{Route, State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::Value;

use super::{SetupState, TwoFactor, code_failed, illegal_state, is_set_up, user_key};
use crate::authn::{self, session};
use crate::datastore::UserUpdate;
use crate::http::redirect::{redirect_allowed, redirect_target};
use crate::http::{Ctx, FormErrors, FormInput, Reply, query_value, text};
use crate::login::codes::{self, Purpose};
use crate::login::pending::{self, Completed, Found, Stage};
use crate::login::{Attempt, AuthnMethod, SignIn};
use crate::mail::{self, Outgoing};
use crate::messages::Msg;

pub(super) fn routes() -> Vec<Route> {
    routes![validate_get, validate_post, rescue_get, rescue_post]
}

fn code_page(
    ctx: &Ctx<'_>,
    tf: &TwoFactor,
    found: Option<&Found>,
    problem: &str,
    errors: &FormErrors,
) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    if let Some(f) = found {
        let method = f
            .ceremony
            .state
            .method
            .clone()
            .or_else(|| f.user.tf_primary_method.clone());
        c.insert("chosen_method", &method);
        if f.ceremony.state.stage == Stage::Ready {
            c.insert("rescue_action", &ctx.config().url("/tf-rescue"));
            let options = tf.recovery_options(ctx, &f.user);
            let labels: Vec<(&str, &str)> = [
                ("help", "Contact Administrator"),
                ("email", "Send code via email"),
                ("recovery_code", "Use previously downloaded recovery code"),
            ]
            .into_iter()
            .filter(|(k, _)| options.contains_key(*k))
            .collect();
            c.insert("rescue_choices", &labels);
        }
    }
    c.insert("problem", problem);
    c.insert("rescue_mail", &tf.cfg.two_factor_rescue_mail);
    ctx.page("security/two_factor_verify_code.html.tera", c, errors)
}

/// Where to go after signing in: a valid `next`, else `post_login_view`.
fn post_login(ctx: &Ctx<'_>) -> String {
    match query_value(ctx.req, "next") {
        Some(n) if redirect_allowed(ctx.req, &n) => redirect_target(&n),
        _ => ctx.config().post_login_view.clone(),
    }
}

#[get("/tf-validate")]
async fn validate_get(ctx: Ctx<'_>, tf: &State<Arc<TwoFactor>>) -> Reply {
    if let Some(user) = authn::current_user(ctx.req).await {
        // A signed-in user validating a new method.
        if !ctx.json() {
            return code_page(&ctx, tf, None, "", &FormErrors::new());
        }
        return Reply::ok(ctx.payload(Some(user)));
    }
    let stages = [Stage::Ready, Stage::ValidatingProfile];
    let found = match pending::current(&ctx, None, &stages).await {
        Ok(Some(f)) => f,
        Ok(None) => return illegal_state(&ctx, tf),
        Err(e) => return Reply::failed("reading the sign-in in progress", &e),
    };
    if !ctx.json() {
        return code_page(&ctx, tf, Some(&found), "", &FormErrors::new());
    }
    let mut body = ctx.payload(Some(&found.user));
    body.insert(
        "recovery_options".into(),
        Value::Object(tf.recovery_options(&ctx, &found.user)),
    );
    Reply::ok(body)
}

#[post("/tf-validate", data = "<form>")]
async fn validate_post(
    ctx: Ctx<'_>,
    tf: &State<Arc<TwoFactor>>,
    form: FormInput,
) -> Result<Reply, Status> {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return Ok(reply);
    }
    let tf: &TwoFactor = tf;
    let mut errors = FormErrors::new();
    let code = text(&form, "code", &mut errors);
    if let Some(user) = authn::current_shared(ctx.req).await.cloned() {
        return Ok(validate_setup(&ctx, tf, &user, code.as_deref()).await);
    }
    let stages = [Stage::Ready, Stage::ValidatingProfile];
    let found = match pending::current(&ctx, Some(&form), &stages).await {
        Ok(Some(f)) => f,
        Ok(None) => return Ok(illegal_state(&ctx, tf)),
        Err(e) => return Ok(Reply::failed("reading the sign-in in progress", &e)),
    };
    let p = &found.ceremony.state;
    let (method, stored) = match p.stage {
        Stage::ValidatingProfile => (p.method.clone(), p.secret.clone()),
        _ => (
            found.user.tf_primary_method.clone(),
            found.user.tf_totp_secret.clone(),
        ),
    };
    let (Some(method), Some(stored)) = (method, stored) else {
        return Ok(illegal_state(&ctx, tf));
    };
    let page = |c: &Ctx<'_>, e: &FormErrors| code_page(c, tf, Some(&found), "", e);
    let Some(code) = code else {
        return Ok(ctx.invalid(&FormErrors::one("code", Msg::TwoFactorInvalidToken), page));
    };
    let Some(key) = tf.key(&stored).await else {
        return Ok(Reply::failed("reading a TOTP secret", &"undecryptable"));
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::Code).identity(&found.user.email);
    let purpose = match p.stage {
        Stage::ValidatingProfile => Purpose::Setup,
        _ => Purpose::SignIn("tf"),
    };
    let window = tf.window(&method);
    match codes::check(
        ctx.state,
        &attempt,
        &found.user,
        &key,
        &code,
        window,
        purpose,
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => {
            return Ok(ctx.invalid(&FormErrors::one("code", Msg::TwoFactorInvalidToken), page));
        }
        Err(e) => return Ok(code_failed(&ctx, e, page)),
    }
    let remember = p.remember;
    if p.stage == Stage::ValidatingProfile {
        let update = UserUpdate::new().two_factor(Some(method), Some(stored), p.phone.clone());
        if let Err(e) = ctx.state.datastore.update_user(found.user.id, update).await {
            return Ok(Reply::failed("storing a two-factor method", &e));
        }
    }
    let issued = match pending::complete(&ctx, found, AuthnMethod::Code).await {
        Ok(Completed::SignIn(SignIn::Done(issued))) => issued,
        Ok(Completed::SignIn(SignIn::Refused(problem))) => {
            return Ok(ctx.invalid(&FormErrors::one("", problem), |c, e| {
                code_page(c, tf, None, "", e)
            }));
        }
        Ok(Completed::SignIn(SignIn::Answer(reply))) => return Ok(reply),
        Ok(Completed::Lost) => return Ok(illegal_state(&ctx, tf)),
        Err(e) => return Ok(Reply::failed("completing the sign-in", &e)),
    };
    if remember && !tf.cfg.two_factor_always_validate {
        tf.send_validity(&ctx, &issued.user);
    }
    if !ctx.json() {
        ctx.flash(Msg::TwoFactorLoginSuccessful);
        return Ok(Reply::redirect(post_login(&ctx)));
    }
    Ok(Reply::ok(issued.payload(&ctx)))
}

/// `/tf-validate` by a signed-in user: the code of the method they are
/// setting up (named by the session).
async fn validate_setup(
    ctx: &Ctx<'_>,
    tf: &TwoFactor,
    user: &crate::datastore::User,
    code: Option<&str>,
) -> Reply {
    let reference = session::with(ctx.req, |s| s.ceremony.clone());
    let now = ctx.state.clock.now_secs();
    let c = match (reference, tf.setups(ctx)) {
        (Some(r), Some(setups)) => match setups.find::<SetupState>(&r, now).await {
            Ok(c) => c.filter(|c| c.user_id == user.id),
            Err(e) => return Reply::failed("reading a two-factor setup", &e),
        },
        _ => None,
    };
    let Some(c) = c else {
        // Nothing being set up: Flask-Security ends the session too.
        if let Err(e) = authn::logout_user(ctx.req, ctx.state).await {
            return Reply::failed("revoking the session", &e);
        }
        return illegal_state(ctx, tf);
    };
    let updated = match super::setup::finish_setup(ctx, tf, user, &c, code).await {
        Ok(u) => u,
        Err(reply) => return reply,
    };
    if !ctx.json() {
        ctx.flash(Msg::TwoFactorChangeMethodSuccessful);
        return Reply::redirect(tf.post_setup_view(ctx));
    }
    Reply::ok(crate::login::authenticated_payload(ctx, &updated))
}

/// The sign-in in progress at `ready` that `/tf-rescue` helps with.
async fn rescue_found(
    ctx: &Ctx<'_>,
    tf: &TwoFactor,
    form: Option<&FormInput>,
) -> Result<Found, Reply> {
    ctx.anonymous_only().await?;
    match pending::current(ctx, form, &[Stage::Ready]).await {
        Ok(Some(f)) if is_set_up(&f.user) => Ok(f),
        Ok(_) => Err(illegal_state(ctx, tf)),
        Err(e) => Err(Reply::failed("reading the sign-in in progress", &e)),
    }
}

fn rescue_body(ctx: &Ctx<'_>, tf: &TwoFactor, found: &Found) -> Reply {
    let mut body = ctx.payload(None);
    body.insert(
        "recovery_options".into(),
        Value::Object(tf.recovery_options(ctx, &found.user)),
    );
    Reply::ok(body)
}

#[get("/tf-rescue")]
async fn rescue_get(ctx: Ctx<'_>, tf: &State<Arc<TwoFactor>>) -> Reply {
    let found = match rescue_found(&ctx, tf, None).await {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    if !ctx.json() {
        return code_page(&ctx, tf, Some(&found), "", &FormErrors::new());
    }
    rescue_body(&ctx, tf, &found)
}

#[post("/tf-rescue", data = "<form>")]
async fn rescue_post(ctx: Ctx<'_>, tf: &State<Arc<TwoFactor>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let tf: &TwoFactor = tf;
    let found = match rescue_found(&ctx, tf, Some(&form)).await {
        Ok(f) => f,
        Err(reply) => return reply,
    };
    let mut errors = FormErrors::new();
    let choice = text(&form, "help_setup", &mut errors).unwrap_or_default();
    let options = tf.recovery_options(&ctx, &found.user);
    if !options.contains_key(choice.as_str()) {
        return Reply::html(Status::NotFound, "");
    }
    match choice.as_str() {
        "email" => {
            let key = match user_key(tf, &found.user).await {
                Ok(k) => k,
                Err(e) => return Reply::failed("reading a TOTP secret", &e),
            };
            let sent = tf
                .send_code(
                    &ctx,
                    &found.user,
                    &key,
                    "email",
                    None,
                    Purpose::SignIn("tf"),
                )
                .await;
            if !sent {
                if ctx.json() {
                    return Reply::error(Status::InternalServerError, Msg::FailedToSendCode);
                }
                let errors = FormErrors::one("help_setup", Msg::FailedToSendCode);
                return code_page(&ctx, tf, Some(&found), "", &errors);
            }
        }
        "help" => {
            let mut c = Context::new();
            c.insert("email", &found.user.email);
            let sent = mail::send(
                &ctx,
                Outgoing {
                    to: &tf.cfg.two_factor_rescue_mail,
                    subject: &tf.cfg.email_subject_two_factor_rescue,
                    template: "two_factor_rescue",
                    context: c,
                    about: Some(&found.user),
                },
            )
            .await;
            if !sent {
                return Reply::error(Status::InternalServerError, Msg::FailedToSendCode);
            }
        }
        _ => {
            // Another feature's way out (recovery codes): its page.
            if let Some(Value::String(url)) = options.get(choice.as_str()) {
                return Reply::redirect(url.clone());
            }
        }
    }
    if !ctx.json() {
        return code_page(&ctx, tf, Some(&found), &choice, &FormErrors::new());
    }
    rescue_body(&ctx, tf, &found)
}
