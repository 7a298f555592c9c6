//! `/confirm` and `/confirm/<token>`.

use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::{Value, json};

use super::{Ctx, normalize_email, text};
use crate::datastore::{Lookup, User, UserField};
use crate::reply::{FormErrors, FormInput, Reply};
use crate::token::TokenError;
use crate::{SecurityState, auth, messages};

pub(super) fn routes() -> Vec<Route> {
    routes![confirm_get, confirm_post, confirm_token, confirm_token_post]
}

/// A signed confirmation token: `[fs_uniquifier, hash_data(email)]`.
pub(crate) async fn confirmation_token(state: &SecurityState, user: &User) -> String {
    let email = user.email.clone();
    let hashed = rocket::tokio::task::spawn_blocking(move || crate::password::hash_data(&email))
        .await
        .unwrap_or_default();
    let payload = json!([user.fs_uniquifier, hashed]);
    state
        .serializer(&state.config.confirm_salt)
        .dumps_at(&payload, state.clock.now_secs())
}

fn confirm_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.req.uri().to_string());
    c.insert(
        "email",
        &form
            .and_then(|f| f.text("email").ok().flatten())
            .unwrap_or_default(),
    );
    ctx.page("security/send_confirmation.html.tera", c, errors)
}

#[get("/confirm")]
async fn confirm_get(ctx: Ctx<'_>) -> Reply {
    ctx.form_get(|c, e| confirm_page(c, None, e))
}

pub(crate) async fn send_confirmation(ctx: &Ctx<'_>, user: &User) {
    let token = confirmation_token(ctx.state, user).await;
    let mut c = super::mail_context(user);
    c.insert(
        "confirmation_link",
        &ctx.external_url(&format!("/confirm/{token}")),
    );
    let subject = ctx.config().email_subject_confirm.clone();
    if let Err(e) = ctx
        .state
        .send_mail(&user.email, &subject, "confirmation_instructions", &c)
        .await
    {
        log::error!("sending confirmation instructions failed: {e}");
    }
}

#[post("/confirm", data = "<form>")]
async fn confirm_post(ctx: Ctx<'_>, form: FormInput) -> Reply {
    if let Err(e) = ctx.unauth_csrf(&form).await {
        return ctx.csrf_failed(e);
    }
    let generic = ctx.config().return_generic_responses;
    let mut errors = FormErrors::new();
    let email = text(&form, "email", &mut errors);
    let mut target = None;
    match &email {
        None if !errors.has("email") => errors.add("email", messages::EMAIL_NOT_PROVIDED),
        None => {}
        Some(raw) => match normalize_email(raw) {
            None => errors.add("email", messages::INVALID_EMAIL_ADDRESS),
            Some(e) => match ctx.state.datastore.find_user(Lookup::Email(&e)).await {
                Ok(Some(u)) if u.confirmed_at.is_some() => {
                    errors.add("email", messages::ALREADY_CONFIRMED)
                }
                Ok(Some(u)) => target = Some(u),
                Ok(None) => errors.add("email", messages::USER_DOES_NOT_EXIST),
                Err(err) => {
                    log::error!("confirm lookup failed: {err}");
                    errors.add("", messages::API_ERROR);
                }
            },
        },
    }
    if generic && !errors.has("") {
        errors = FormErrors::new();
    }
    if !errors.is_empty() {
        return if ctx.json() {
            Reply::form_errors(&errors)
        } else {
            confirm_page(&ctx, Some(&form), &errors)
        };
    }
    if let Some(user) = &target {
        send_confirmation(&ctx, user).await;
    }
    if ctx.json() {
        Reply::ok(ctx.payload(None))
    } else {
        let mut c = Context::new();
        let shown = target
            .as_ref()
            .map(|u| u.email.clone())
            .or(email)
            .unwrap_or_default();
        c.insert(
            "messages",
            &json!([{"category": "info", "text": messages::confirmation_request(&shown)}]),
        );
        c.insert("action", &ctx.req.uri().to_string());
        c.insert("email", "");
        ctx.page(
            "security/send_confirmation.html.tera",
            c,
            &FormErrors::new(),
        )
    }
}

enum Outcome {
    Confirmed(Box<User>),
    AlreadyConfirmed,
    /// The link is too old; the user it names gets a new one.
    Expired(Box<User>),
    Invalid,
}

async fn check_token(state: &SecurityState, token: &str) -> Outcome {
    let ser = state.serializer(&state.config.confirm_salt);
    let (payload, expired) = match ser.loads_at(
        token,
        Some(state.config.confirm_email_within),
        state.clock.now_secs(),
    ) {
        Ok(p) => (p, false),
        Err(TokenError::Expired { payload, .. }) => (payload, true),
        Err(_) => return Outcome::Invalid,
    };
    let Some(uid) = payload.get(0).and_then(Value::as_str) else {
        return Outcome::Invalid;
    };
    let Ok(Some(user)) = state.datastore.find_user(Lookup::Uniquifier(uid)).await else {
        return Outcome::Invalid;
    };
    if expired {
        return Outcome::Expired(Box::new(user));
    }
    if let Some(hash) = payload.get(1).and_then(Value::as_str) {
        let (hash, email) = (hash.to_string(), user.email.clone());
        let ok = rocket::tokio::task::spawn_blocking(move || {
            crate::password::verify_hash(&hash, &email)
        })
        .await
        .unwrap_or(false);
        if !ok {
            return Outcome::Invalid;
        }
    }
    if user.confirmed_at.is_some() {
        return Outcome::AlreadyConfirmed;
    }
    Outcome::Confirmed(Box::new(user))
}

/// The link also works as a POST (Flask-Security routes both).
#[post("/confirm/<token>")]
async fn confirm_token_post(ctx: Ctx<'_>, token: &str) -> Reply {
    confirm_token(ctx, token).await
}

#[get("/confirm/<token>")]
async fn confirm_token(ctx: Ctx<'_>, token: &str) -> Reply {
    let cfg = ctx.config();
    let spa = cfg.spa();
    let error_view = cfg
        .confirm_error_view
        .clone()
        .unwrap_or_else(|| cfg.url("/confirm"));
    let fail = |kind: &str, msg: &str| {
        if spa {
            ctx.redirect_with(&error_view, &[(kind, msg)])
        } else {
            ctx.flash(kind, msg.to_string());
            Reply::Redirect(error_view.clone())
        }
    };
    match check_token(ctx.state, token).await {
        Outcome::Invalid => fail("error", messages::INVALID_CONFIRMATION_TOKEN),
        Outcome::AlreadyConfirmed => fail("info", messages::ALREADY_CONFIRMED),
        Outcome::Expired(user) => {
            send_confirmation(&ctx, &user).await;
            let msg =
                messages::confirmation_expired(&messages::within_text(cfg.confirm_email_within));
            fail("error", &msg)
        }
        Outcome::Confirmed(user) => {
            let stamp = ctx.state.clock.naive_utc();
            let change = vec![(
                UserField::ConfirmedAt,
                sea_orm::Value::ChronoDateTime(Some(stamp)),
            )];
            if let Err(e) = ctx.state.datastore.update_user(user.id, change).await {
                log::error!("confirming user failed: {e}");
                return fail("error", messages::INVALID_CONFIRMATION_TOKEN);
            }
            // Whoever else was logged in in this browser is logged out.
            if auth::current_user(ctx.req)
                .await
                .is_none_or(|current| current.id != user.id)
            {
                auth::logout_user(ctx.req, ctx.state);
            }
            if cfg.auto_login_after_confirm {
                auth::login_user(ctx.req, ctx.state, &user, false).await;
            }
            let view = cfg.post_confirm_view.clone().unwrap_or_else(|| {
                if cfg.auto_login_after_confirm {
                    cfg.post_login_view.clone()
                } else {
                    cfg.url("/login")
                }
            });
            if spa {
                ctx.redirect_with(
                    &view,
                    &[
                        ("success", messages::EMAIL_CONFIRMED),
                        ("email", &user.email),
                        ("identity", &user.email),
                    ],
                )
            } else {
                ctx.flash("success", messages::EMAIL_CONFIRMED);
                Reply::Redirect(view)
            }
        }
    }
}
