//! `/us-verify` (re-authentication with a passcode) and
//! `/us-verify/send-code` (a code to re-authenticate with; no magic link).

use std::sync::Arc;

use rocket::http::Status;
use rocket::{Route, State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::json;

use super::signin::not_a_choice;
use super::{Delivery, UnifiedSignin, passcode_failed, send_failed, stored_secrets};
use crate::authn;
use crate::datastore::User;
use crate::http::redirect::{next_param, redirect_allowed, redirect_target};
use crate::http::{Ctx, FormErrors, FormInput, Reply, code_text, query_value, text};
use crate::login::codes::Purpose;
use crate::login::{self, Attempt, AuthnMethod};
use crate::messages::Msg;

pub(super) fn routes() -> Vec<Route> {
    routes![verify_get, verify_post, verify_send_code]
}

fn verify_page(
    ctx: &Ctx<'_>,
    us: &UnifiedSignin,
    user: &User,
    chosen: Option<&str>,
    errors: &FormErrors,
) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    c.insert(
        "send_code_action",
        &ctx.config().url("/us-verify/send-code"),
    );
    c.insert("code_methods", &us.active_code_methods(user));
    c.insert("chosen_method", &chosen.unwrap_or_default());
    c.insert("next", &query_value(ctx.req, "next").unwrap_or_default());
    ctx.page("security/us_verify.html.tera", c, errors)
}

#[get("/us-verify")]
async fn verify_get(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    if !ctx.json() {
        return Ok(verify_page(&ctx, us, &user, None, &FormErrors::new()));
    }
    let mut body = ctx.payload(None);
    body.insert("available_methods".into(), json!(us.cfg.us_enabled_methods));
    body.insert("code_methods".into(), json!(us.active_code_methods(&user)));
    body.extend(ctx.state.hooks.reauth_options.clone());
    Ok(Reply::ok(body))
}

#[post("/us-verify", data = "<form>")]
async fn verify_post(
    ctx: Ctx<'_>,
    us: &State<Arc<UnifiedSignin>>,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    let us: &UnifiedSignin = us;
    let page = |c: &Ctx<'_>, e: &FormErrors| verify_page(c, us, &user, None, e);
    let mut errors = FormErrors::new();
    let passcode = code_text(&form, "passcode", &mut errors);
    let next = next_param(&form, ctx.req, &mut errors);
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", Msg::InvalidRedirect);
    }
    if !errors.is_empty() {
        return Ok(ctx.invalid(&errors, page));
    }
    let Some(passcode) = passcode else {
        return Ok(ctx.invalid(&FormErrors::one("passcode", Msg::InvalidPasswordCode), page));
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::UnifiedSignin)
        .identity(&user.email)
        .form(&form);
    match us.check_passcode(&ctx, &attempt, &user, &passcode).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Ok(ctx.invalid(&FormErrors::one("passcode", Msg::InvalidPasswordCode), page));
        }
        Err(e) => return Ok(passcode_failed(&ctx, e, page)),
    }
    authn::reauthenticated(ctx.req, ctx.state);
    if !ctx.json() {
        ctx.flash(Msg::ReauthenticationSuccessful);
        let to = next
            .filter(|n| redirect_allowed(ctx.req, n))
            .map(|n| redirect_target(&n))
            .or_else(|| us.views.post_verify_view.clone())
            .unwrap_or_else(|| ctx.config().post_login_view.clone());
        return Ok(Reply::redirect(to));
    }
    Ok(Reply::ok(login::authenticated_payload(&ctx, &user)))
}

#[post("/us-verify/send-code", data = "<form>")]
async fn verify_send_code(
    ctx: Ctx<'_>,
    us: &State<Arc<UnifiedSignin>>,
    form: FormInput,
) -> Result<Reply, Status> {
    let user = ctx.require_user(false).await?;
    let us: &UnifiedSignin = us;
    let mut errors = FormErrors::new();
    let chosen = text(&form, "chosen_method", &mut errors);
    let page_chosen = chosen.clone();
    let page = |c: &Ctx<'_>, e: &FormErrors| verify_page(c, us, &user, page_chosen.as_deref(), e);
    if !errors.is_empty() {
        return Ok(ctx.invalid(&errors, page));
    }
    let method = match chosen {
        Some(m) if matches!(m.as_str(), "email" | "sms") => m,
        Some(_) => return Ok(ctx.invalid(&FormErrors::one("chosen_method", not_a_choice()), page)),
        None => {
            return Ok(ctx.invalid(
                &FormErrors::one("chosen_method", Msg::UsMethodNotAvailable),
                page,
            ));
        }
    };
    let secrets = stored_secrets(&user);
    let stored = match secrets.get(&method) {
        Some(s) if us.enabled(&method) => s.clone(),
        _ => {
            return Ok(ctx.invalid(
                &FormErrors::one("chosen_method", Msg::UsMethodNotAvailable),
                page,
            ));
        }
    };
    if method == "sms" && user.us_phone_number.is_none() {
        return Ok(ctx.invalid(&FormErrors::one("chosen_method", Msg::PhoneInvalid), page));
    }
    let Some(key) = us.key(&stored).await else {
        return Ok(Reply::failed("reading a TOTP secret", &"undecryptable"));
    };
    let scope = format!("us:{method}");
    let sent = us
        .send_code(
            &ctx,
            &user,
            &key,
            Delivery {
                method: &method,
                phone: user.us_phone_number.as_deref(),
                link: false,
            },
            Purpose::SignIn(&scope),
        )
        .await;
    if !sent {
        return Ok(send_failed(&ctx, "chosen_method", page));
    }
    if ctx.json() {
        return Ok(Reply::ok(ctx.payload(None)));
    }
    ctx.flash(Msg::CodeHasBeenSent);
    Ok(verify_page(
        &ctx,
        us,
        &user,
        Some(&method),
        &FormErrors::new(),
    ))
}
