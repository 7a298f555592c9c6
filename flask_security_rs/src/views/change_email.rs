//! Change email: `/change-email` and `/change-email/<token>`.

use rocket::http::Status;
use rocket::{Route, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde_json::{Value, json};

use super::{Ctx, normalize_email, text};
use crate::datastore::{Lookup, User, UserField};
use crate::reply::{FormErrors, FormInput, Reply};
use crate::token::TokenError;
use crate::{SecurityState, messages};

pub(super) fn routes() -> Vec<Route> {
    routes![change_email_get, change_email_post, change_email_confirm]
}

fn page(ctx: &Ctx<'_>, user: &User, errors: &FormErrors) -> Reply {
    let mut c = Context::new();
    c.insert("action", &ctx.config().url("/change-email"));
    c.insert("current_email", &user.email);
    ctx.page("security/change_email.html.tera", c, errors)
}

fn body(ctx: &Ctx<'_>, user: &User) -> Reply {
    let mut b = ctx.payload(Some(user));
    b.insert("current_email".into(), Value::String(user.email.clone()));
    Reply::ok(b)
}

#[get("/change-email")]
async fn change_email_get(ctx: Ctx<'_>) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    Ok(if ctx.json() {
        body(&ctx, &user)
    } else {
        page(&ctx, &user, &FormErrors::new())
    })
}

#[post("/change-email", data = "<form>")]
async fn change_email_post(ctx: Ctx<'_>, form: FormInput) -> Result<Reply, Status> {
    let user = ctx.require_user(true).await?;
    let cfg = ctx.config();
    let mut errors = FormErrors::new();
    let raw = text(&form, "email", &mut errors);
    let mut new_email = None;
    let mut taken = false;
    match &raw {
        None if !errors.has("email") => errors.add("email", messages::EMAIL_NOT_PROVIDED),
        None => {}
        Some(r) => match normalize_email(r) {
            None => errors.add("email", messages::INVALID_EMAIL_ADDRESS),
            Some(e) => match ctx.state.datastore.find_user(Lookup::Email(&e)).await {
                Ok(Some(_)) if cfg.return_generic_responses => taken = true,
                Ok(Some(_)) => errors.add("email", messages::email_already_associated(&e)),
                Ok(None) => new_email = Some(e),
                Err(err) => {
                    log::error!("lookup failed: {err}");
                    errors.add("", messages::API_ERROR);
                }
            },
        },
    }
    if !errors.is_empty() {
        return Ok(ctx.invalid(&errors, |c, e| page(c, &user, e)));
    }
    if let (Some(new_email), false) = (&new_email, taken) {
        let token = change_email_token(ctx.state, &user, new_email).await;
        let mut c = super::mail_context(&user);
        c.insert("new_email", new_email);
        c.insert("link", &ctx.external_url(&format!("/change-email/{token}")));
        c.insert("within", &messages::within_text(cfg.change_email_within));
        ctx.mail(
            new_email,
            &cfg.change_email_subject.clone(),
            "change_email_instructions",
            &c,
        )
        .await;
    }
    if !ctx.json() {
        let shown = new_email.or(raw).unwrap_or_default();
        ctx.flash("info", messages::change_email_sent(&shown));
        return Ok(page(&ctx, &user, &FormErrors::new()));
    }
    Ok(body(&ctx, &user))
}

/// `[fs_uniquifier, hash_data(old_email), new_email]`.
async fn change_email_token(state: &SecurityState, user: &User, new_email: &str) -> String {
    let old = user.email.clone();
    let hashed = rocket::tokio::task::spawn_blocking(move || crate::password::hash_data(&old))
        .await
        .unwrap_or_default();
    let payload = json!([user.fs_uniquifier, hashed, new_email]);
    state
        .serializer(&state.config.change_email_salt)
        .dumps_at(&payload, state.clock.now_secs())
}

enum Checked {
    Valid(Box<User>, String),
    Error(String),
}

async fn check(state: &SecurityState, token: &str) -> Checked {
    let invalid = || Checked::Error(messages::API_ERROR.to_string());
    let ser = state.serializer(&state.config.change_email_salt);
    let payload = match ser.loads_at(
        token,
        Some(state.config.change_email_within),
        state.clock.now_secs(),
    ) {
        Ok(p) => p,
        Err(TokenError::Expired { .. }) => {
            return Checked::Error(messages::change_email_expired(&messages::within_text(
                state.config.change_email_within,
            )));
        }
        Err(_) => return invalid(),
    };
    let (Some(uid), Some(old_hash), Some(new_email)) = (
        payload.get(0).and_then(Value::as_str),
        payload.get(1).and_then(Value::as_str),
        payload.get(2).and_then(Value::as_str),
    ) else {
        return invalid();
    };
    let Ok(Some(user)) = state.datastore.find_user(Lookup::Uniquifier(uid)).await else {
        return invalid();
    };
    let (h, e) = (old_hash.to_string(), user.email.clone());
    // The old address must still be the current one: a used link is dead.
    if !rocket::tokio::task::spawn_blocking(move || crate::password::verify_hash(&h, &e))
        .await
        .unwrap_or(false)
    {
        return invalid();
    }
    match state.datastore.find_user(Lookup::Email(new_email)).await {
        Ok(None) => Checked::Valid(Box::new(user), new_email.to_string()),
        // Taken meanwhile: say no more than for any other bad link.
        Ok(Some(_)) => invalid(),
        Err(_) => invalid(),
    }
}

#[get("/change-email/<token>")]
async fn change_email_confirm(ctx: Ctx<'_>, token: &str) -> Reply {
    let cfg = ctx.config();
    let error_view = cfg
        .change_email_error_view
        .clone()
        .unwrap_or_else(|| cfg.url("/change-email"));
    let fail = |msg: &str| {
        if cfg.spa() {
            ctx.redirect_with(&error_view, &[("error", msg)])
        } else {
            ctx.flash("error", msg.to_string());
            Reply::Redirect(error_view.clone())
        }
    };
    let (user, new_email) = match check(ctx.state, token).await {
        Checked::Valid(u, e) => (u, e),
        Checked::Error(msg) => return fail(&msg),
    };
    let stamp = ctx.state.clock.naive_utc();
    let changes = vec![
        (
            UserField::Email,
            sea_orm::Value::String(Some(new_email.clone())),
        ),
        (
            UserField::ConfirmedAt,
            sea_orm::Value::ChronoDateTime(Some(stamp)),
        ),
    ];
    // The unique index settles a race with someone registering the address meanwhile.
    if let Err(e) = ctx.state.datastore.update_user(user.id, changes).await {
        log::warn!("changing the email failed: {e}");
        return fail(messages::API_ERROR);
    }
    let view = cfg
        .post_change_email_view
        .clone()
        .unwrap_or_else(|| cfg.post_login_view.clone());
    if cfg.spa() {
        return ctx.redirect_with(
            &view,
            &[
                ("success", messages::CHANGE_EMAIL_CONFIRMED),
                ("email", &new_email),
                ("identity", &new_email),
            ],
        );
    }
    ctx.flash("success", messages::CHANGE_EMAIL_CONFIRMED);
    Reply::Redirect(view)
}
