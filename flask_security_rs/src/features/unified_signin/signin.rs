//! `/us-signin` (identity and passcode), `/us-signin/send-code` (a code by
//! email, with a magic link, or by sms) and `/us-verify-link` (the magic
//! link).

use std::sync::Arc;

use rocket::http::Status;
use rocket::{Route, State, get, post, routes};

use super::{
    Delivery, PasscodeError, UnifiedSignin, passcode_failed, secrets_column, send_failed,
    stored_secrets,
};
use crate::authn;
use crate::datastore::{Lookup, User};
use crate::http::redirect::{next_param, redirect_allowed, redirect_target};
use crate::http::{Ctx, FormErrors, FormInput, Param, Reply, code_text, query_value, text};
use crate::login::codes::{self, Purpose};
use crate::login::{self, Attempt, AuthnMethod, CheckOrder, SignIn, pending};
use crate::messages::{Category, Message, Msg};

pub(super) fn routes() -> Vec<Route> {
    routes![signin_get, signin_post, send_code, verify_link]
}

/// WTForms' `DataRequired` message.
pub(super) fn field_required() -> Message {
    Message::text("This field is required.", Category::Error)
}

/// WTForms' `RadioField` message for a value not among its choices.
pub(super) fn not_a_choice() -> Message {
    Message::text("Not a valid choice.", Category::Error)
}

pub(super) fn signin_page(
    ctx: &Ctx<'_>,
    us: &UnifiedSignin,
    form: Option<&FormInput>,
    chosen: Option<&str>,
    errors: &FormErrors,
) -> Reply {
    let mut c = ctx.form_context(form, &["identity"]);
    c.insert("action", &ctx.config().url("/us-signin"));
    c.insert(
        "send_code_action",
        &ctx.config().url("/us-signin/send-code"),
    );
    c.insert("available_methods", &us.cfg.us_enabled_methods);
    c.insert("code_methods", &us.code_methods());
    c.insert("chosen_method", &chosen.unwrap_or_default());
    c.insert(
        "next",
        &form
            .and_then(|f| f.text("next").ok().flatten())
            .or_else(|| query_value(ctx.req, "next"))
            .unwrap_or_default(),
    );
    ctx.page("security/us_signin.html.tera", c, errors)
}

#[get("/us-signin")]
async fn signin_get(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>) -> Reply {
    let user = authn::current_user(ctx.req).await;
    if !ctx.json() {
        if user.is_some() {
            return Reply::redirect(ctx.config().post_login_view.clone());
        }
        let token = authn::csrf::generate(ctx.req, ctx.state);
        authn::csrf::set_cookie(ctx.req, ctx.state, &token);
        return signin_page(&ctx, us, None, None, &FormErrors::new());
    }
    let mut body = ctx.payload(user);
    if user.is_none()
        && let Some(serde_json::Value::String(token)) = body.get("csrf_token")
    {
        authn::csrf::set_cookie(ctx.req, ctx.state, token);
    }
    body.extend(us.methods_payload(&ctx));
    Reply::ok(body)
}

/// The fields of the sign-in form, checked the way WTForms does.
struct SigninForm {
    identity: String,
    passcode: Option<String>,
    remember: bool,
    next: Option<String>,
}

fn read_signin(
    ctx: &Ctx<'_>,
    us: &UnifiedSignin,
    form: &FormInput,
) -> Result<SigninForm, FormErrors> {
    let mut errors = FormErrors::new();
    let identity = text(form, "identity", &mut errors);
    if identity.is_none() && !errors.has("identity") {
        errors.add("identity", field_required());
    }
    let passcode = code_text(form, "passcode", &mut errors);
    let chosen = text(form, "chosen_method", &mut errors);
    if let Some(m) = &chosen
        && !matches!(m.as_str(), "email" | "sms")
    {
        errors.add("chosen_method", not_a_choice());
    }
    let remember = match form.boolean("remember") {
        Ok(v) => v.unwrap_or(us.views.default_remember_me),
        Err(_) => {
            errors.add("remember", Msg::ApiError);
            false
        }
    };
    let next = next_param(form, ctx.req, &mut errors);
    if let Some(n) = &next
        && !redirect_allowed(ctx.req, n)
    {
        errors.add("next", Msg::InvalidRedirect);
    }
    match identity {
        Some(identity) if errors.is_empty() => Ok(SigninForm {
            identity,
            passcode,
            remember,
            next,
        }),
        _ => Err(errors),
    }
}

/// Generic-responses mode: the errors of `identity` and `passcode` become
/// one form-level `GENERIC_AUTHN_FAILED` each.
fn generic(ctx: &Ctx<'_>, errors: FormErrors) -> FormErrors {
    if !ctx.config().return_generic_responses {
        return errors;
    }
    errors.munge(&[
        ("identity", Some(Msg::GenericAuthnFailed)),
        ("passcode", Some(Msg::GenericAuthnFailed)),
    ])
}

#[post("/us-signin", data = "<form>")]
async fn signin_post(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let us: &UnifiedSignin = us;
    // An earlier sign-in that waited for a second factor is abandoned.
    pending::forget(&ctx);
    let page = |c: &Ctx<'_>, e: &FormErrors| signin_page(c, us, Some(&form), None, e);
    let failed = |errors: FormErrors| {
        let errors = generic(&ctx, errors);
        ctx.invalid(&errors, page)
    };
    let input = match read_signin(&ctx, us, &form) {
        Ok(i) => i,
        Err(errors) => return failed(errors),
    };
    let user = match us.lookup(&ctx, &input.identity).await {
        Ok(Some(u)) => u,
        Ok(None) => return failed(FormErrors::one("identity", Msg::UsSpecifyIdentity)),
        Err(e) => return Reply::failed("identity lookup", &e),
    };
    if !user.active {
        return failed(FormErrors::one("identity", Msg::DisabledAccount));
    }
    let Some(passcode) = input.passcode.as_deref() else {
        return failed(FormErrors::one("passcode", Msg::InvalidPasswordCode));
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::UnifiedSignin)
        .identity(&input.identity)
        .form(&form);
    let method = match us.check_passcode(&ctx, &attempt, &user, passcode).await {
        Ok(Some(m)) => m,
        Ok(None) => return failed(FormErrors::one("passcode", Msg::InvalidPasswordCode)),
        Err(PasscodeError::Refused(crate::login::CredentialError::Invalid)) => {
            return failed(FormErrors::one("passcode", Msg::InvalidPasswordCode));
        }
        Err(e) => return passcode_failed(&ctx, e, page),
    };
    if let Some(problem) = login::account_problem(ctx.state, &user, CheckOrder::ActiveFirst) {
        return failed(FormErrors::one("identity", problem));
    }
    let issued = match finish_signin(&ctx, us, user, &method, input.remember, Some(&form)).await {
        SignIn::Done(issued) => issued,
        SignIn::Refused(problem) => return failed(FormErrors::one("identity", problem)),
        SignIn::Answer(reply) => return reply,
    };
    if !ctx.json() {
        let to = match input.next.as_deref() {
            Some(n) if redirect_allowed(ctx.req, n) => redirect_target(n),
            _ => ctx.config().post_login_view.clone(),
        };
        return Reply::redirect(to);
    }
    let mut body = issued.payload(&ctx);
    body.insert("tf_required".into(), serde_json::Value::Bool(false));
    Reply::ok(body)
}

/// Signs `user` in through the pipeline after `method`: the second factor
/// applies only when `method` is in `us_mfa_required`.
async fn finish_signin(
    ctx: &Ctx<'_>,
    us: &UnifiedSignin,
    user: User,
    method: &str,
    remember: bool,
    form: Option<&FormInput>,
) -> SignIn {
    let identity = user.email.clone();
    let mut attempt = Attempt::new(ctx.req, AuthnMethod::UnifiedSignin)
        .identity(&identity)
        .remember(remember);
    if let Some(f) = form {
        attempt = attempt.form(f);
    }
    if !us.cfg.us_mfa_required.iter().any(|m| m == method) {
        attempt = attempt.second_factor_passed();
    }
    login::sign_in(ctx, user, &attempt).await
}

#[post("/us-signin/send-code", data = "<form>")]
async fn send_code(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let us: &UnifiedSignin = us;
    let mut errors = FormErrors::new();
    let identity = text(&form, "identity", &mut errors);
    if identity.is_none() && !errors.has("identity") {
        errors.add("identity", field_required());
    }
    let chosen = text(&form, "chosen_method", &mut errors);
    match &chosen {
        Some(m) if !matches!(m.as_str(), "email" | "sms") => {
            errors.add("chosen_method", not_a_choice());
        }
        _ => {}
    }
    let _ = code_text(&form, "passcode", &mut errors);
    let chosen_str = chosen.clone();
    let page =
        |c: &Ctx<'_>, e: &FormErrors| signin_page(c, us, Some(&form), chosen_str.as_deref(), e);
    let invalid = |errors: FormErrors| {
        if errors.is_unavailable() {
            return Reply::unavailable();
        }
        if ctx.config().return_generic_responses {
            let rest = errors.munge(&[
                ("identity", None),
                ("passcode", None),
                ("chosen_method", None),
            ]);
            if rest.is_empty() {
                if ctx.json() {
                    let mut body = ctx.payload(None);
                    body.extend(us.methods_payload(&ctx));
                    return Reply::ok(body);
                }
                ctx.flash(Msg::GenericUsSignin);
                return page(&ctx, &FormErrors::new());
            }
            return ctx.invalid(&rest, page);
        }
        ctx.invalid(&errors, page)
    };
    let (Some(identity), true) = (identity, errors.is_empty()) else {
        return invalid(errors);
    };
    let user = match us.lookup(&ctx, &identity).await {
        Ok(Some(u)) => u,
        Ok(None) => return invalid(FormErrors::one("identity", Msg::UsSpecifyIdentity)),
        Err(e) => return Reply::failed("identity lookup", &e),
    };
    if !user.active {
        return invalid(FormErrors::one("identity", Msg::DisabledAccount));
    }
    let mut secrets = stored_secrets(&user);
    let method = chosen.unwrap_or_default();
    // An account registered without a password signs in by mailed codes:
    // its email method is set up the first time one is asked for (as
    // Flask-Security sets it up at registration).
    if method == "email"
        && us.enabled("email")
        && !secrets.contains_key("email")
        && !user.has_password()
    {
        match us
            .secrets
            .encrypt_blocking(crate::totp::TotpKey::generate())
            .await
        {
            Ok(enc) => {
                secrets.insert("email".into(), enc);
                let update =
                    crate::datastore::UserUpdate::new().us_totp_secrets(secrets_column(&secrets));
                if let Err(e) = ctx.state.datastore.update_user(user.id, update).await {
                    return Reply::failed("setting up the email method", &e);
                }
            }
            Err(e) => return Reply::failed("encrypting a TOTP secret", &e),
        }
    }
    let stored = match secrets.get(&method) {
        Some(s) if us.enabled(&method) => s.clone(),
        _ => return invalid(FormErrors::one("chosen_method", Msg::UsMethodNotAvailable)),
    };
    if method == "sms" && user.us_phone_number.is_none() {
        return invalid(FormErrors::one("chosen_method", Msg::PhoneInvalid));
    }
    if let Some(problem) = login::account_problem(ctx.state, &user, CheckOrder::ActiveFirst) {
        return invalid(FormErrors::one("identity", problem));
    }
    let Some(key) = us.key(&stored).await else {
        return Reply::failed("reading a TOTP secret", &"undecryptable");
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
                link: true,
            },
            Purpose::SignIn(&scope),
        )
        .await;
    if !sent {
        return send_failed(&ctx, "chosen_method", page);
    }
    if ctx.json() {
        return Reply::ok(ctx.payload(None));
    }
    ctx.flash(if ctx.config().return_generic_responses {
        Msg::GenericUsSignin
    } else {
        Msg::CodeHasBeenSent
    });
    signin_page(&ctx, us, Some(&form), Some(&method), &FormErrors::new())
}

/// Where the magic link's failures go: the SPA's `login_error_view` with
/// the message (and the user's identity, when known), else `/us-signin`
/// with a flash.
fn link_error(ctx: &Ctx<'_>, us: &UnifiedSignin, msg: Msg, user: Option<&User>) -> Reply {
    if ctx.config().spa() {
        let view = us
            .views
            .login_error_view
            .clone()
            .unwrap_or_else(|| ctx.config().url("/login"));
        let mut params = Vec::new();
        if let Some(u) = user {
            params.push(("email", Param::Plain(u.email.clone())));
            params.push(("identity", Param::Plain(u.email.clone())));
        }
        params.push(("error", Param::Msg(msg.into())));
        return ctx.spa(&view, params);
    }
    ctx.flash(msg);
    Reply::redirect(ctx.config().url("/us-signin"))
}

fn generic_msg(ctx: &Ctx<'_>, detailed: Msg) -> Msg {
    if ctx.config().return_generic_responses {
        Msg::GenericAuthnFailed
    } else {
        detailed
    }
}

#[get("/us-verify-link")]
async fn verify_link(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    let us: &UnifiedSignin = us;
    let id = query_value(ctx.req, "id").filter(|v| !v.is_empty());
    let code = query_value(ctx.req, "code").filter(|v| !v.is_empty());
    let (Some(id), Some(code)) = (id, code) else {
        return link_error(&ctx, us, Msg::ApiError, None);
    };
    let user = match ctx.state.datastore.find_user(Lookup::Uniquifier(&id)).await {
        Ok(u) => u,
        Err(e) => return Reply::failed("identity lookup", &e),
    };
    let Some(user) = user else {
        return link_error(&ctx, us, generic_msg(&ctx, Msg::UserDoesNotExist), None);
    };
    if !user.active {
        return link_error(&ctx, us, generic_msg(&ctx, Msg::DisabledAccount), None);
    }
    let invalid = |ctx: &Ctx<'_>, user: &User| {
        link_error(ctx, us, generic_msg(ctx, Msg::InvalidCode), Some(user))
    };
    let stored = match stored_secrets(&user).get("email") {
        Some(s) if us.enabled("email") => s.clone(),
        _ => return invalid(&ctx, &user),
    };
    let Some(key) = us.key(&stored).await else {
        return invalid(&ctx, &user);
    };
    let attempt = Attempt::new(ctx.req, AuthnMethod::UnifiedSignin).identity(&user.email);
    match codes::check(
        ctx.state,
        &attempt,
        &user,
        &key,
        &code,
        us.cfg.us_token_validity,
        Purpose::SignIn("us:email"),
    )
    .await
    {
        Ok(true) => {}
        Ok(false) => return invalid(&ctx, &user),
        Err(codes::CodeError::Backend(e)) => return Reply::failed("checking a code", &e),
        Err(codes::CodeError::Refused(crate::login::CredentialError::Throttled(d, m))) => {
            return ctx.throttled(d, m, |c, e| signin_page(c, us, None, None, e));
        }
        Err(codes::CodeError::Refused(_)) => return invalid(&ctx, &user),
    }
    if let Some(problem) = login::account_problem(ctx.state, &user, CheckOrder::ActiveFirst) {
        return link_error(&ctx, us, generic_msg(&ctx, problem), Some(&user));
    }
    let issued = match finish_signin(&ctx, us, user.clone(), "email", false, None).await {
        SignIn::Done(issued) => issued,
        SignIn::Refused(problem) => {
            return link_error(&ctx, us, generic_msg(&ctx, problem), Some(&user));
        }
        SignIn::Answer(reply) => {
            // A second factor is needed: the SPA is told so (a magic link
            // cannot carry the two-factor flow); pages follow it.
            if ctx.config().spa() && reply.status() != Status::ServiceUnavailable {
                let view = us
                    .views
                    .login_error_view
                    .clone()
                    .unwrap_or_else(|| ctx.config().url("/login"));
                return ctx.spa(
                    &view,
                    vec![
                        ("email", Param::Plain(user.email.clone())),
                        ("identity", Param::Plain(user.email.clone())),
                        ("tf_required", Param::Plain("1".into())),
                    ],
                );
            }
            return reply;
        }
    };
    if ctx.config().spa() {
        return ctx.spa(
            &ctx.config().post_login_view,
            vec![
                ("email", Param::Plain(issued.user.email.clone())),
                ("identity", Param::Plain(issued.user.email.clone())),
            ],
        );
    }
    ctx.flash(Msg::PasswordlessLoginSuccessful);
    let to = match query_value(ctx.req, "next") {
        Some(n) if redirect_allowed(ctx.req, &n) => redirect_target(&n),
        _ => ctx.config().post_login_view.clone(),
    };
    Reply::redirect(to)
}

/// Rocket's rank of a static path is -12: a lower one answers `/login`
/// instead of the login feature (and of passwordless, at -20).
const LOGIN_RANK: isize = -21;

#[get("/login")]
async fn login_get(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>) -> Reply {
    signin_get(ctx, us).await
}

#[post("/login", data = "<form>")]
async fn login_post(ctx: Ctx<'_>, us: &State<Arc<UnifiedSignin>>, form: FormInput) -> Reply {
    signin_post(ctx, us, form).await
}

/// `/us-signin` (GET and POST) at `/login` too, ranked to win
/// (`us_signin_replaces_login`).
pub(super) fn at_login() -> Vec<Route> {
    let mut routes = routes![login_get, login_post];
    for r in &mut routes {
        r.rank = LOGIN_RANK;
    }
    routes
}
