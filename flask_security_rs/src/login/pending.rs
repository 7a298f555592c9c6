//! A sign-in waiting for its second factor: a [ceremony](crate::ceremony)
//! of kind `tf_login`, named by the session cookie (and, when a feature
//! turns it on, by a `tf_state_token` in the JSON for clients without
//! cookies).
//!
//! Second-factor features (codes, recovery codes, passkeys) start one from
//! the pipeline's second-factor hook, read it with [`current`], and finish
//! it with [`complete`], which consumes it atomically and signs the user
//! in through the pipeline: of two requests completing the same one, one
//! signs in.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Attempt, AuthnMethod, SignIn, sign_in};
use crate::authn::session;
use crate::ceremony::{Ceremonies, Ceremony};
use crate::datastore::{DatastoreError, Lookup, User};
use crate::http::{Ctx, FormInput};

/// The ceremony kind.
const KIND: &str = "tf_login";

/// How long a sign-in may wait for its second factor, seconds.
pub(crate) const TTL: i64 = 30 * 60;

/// Where the sign-in is (Flask-Security's `tf_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Stage {
    /// A method is set up: waiting for its code.
    Ready,
    /// Two-factor is required but no method is set up yet.
    SetupFromLogin,
    /// A method is being set up during the sign-in: waiting for its code.
    ValidatingProfile,
    /// More than one method: waiting for the user to pick one.
    Select,
}

impl Stage {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Ready => "ready",
            Stage::SetupFromLogin => "setup_from_login",
            Stage::ValidatingProfile => "validating_profile",
            Stage::Select => "select",
        }
    }
}

/// The state of a waiting sign-in.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub stage: Stage,
    /// The user's `fs_uniquifier` when it started: a password reset or
    /// change meanwhile voids it.
    pub uniquifier: String,
    /// Whether the user asked to be remembered.
    #[serde(default)]
    pub remember: bool,
    /// The method being set up (`ValidatingProfile`).
    #[serde(default)]
    pub method: Option<String>,
    /// Its secret, encrypted as stored (`ValidatingProfile`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Its phone number (sms).
    #[serde(default)]
    pub phone: Option<String>,
}

impl Pending {
    /// A new waiting sign-in of `user` at `stage`.
    pub(crate) fn new(user: &User, stage: Stage, remember: bool) -> Pending {
        Pending {
            stage,
            uniquifier: user.fs_uniquifier.clone(),
            remember,
            method: None,
            secret: None,
            phone: None,
        }
    }
}

/// A waiting sign-in and its user.
pub(crate) struct Found {
    pub ceremony: Ceremony<Pending>,
    pub user: User,
}

fn ceremonies<'a>(ctx: &Ctx<'a>) -> Result<Ceremonies<'a>, DatastoreError> {
    match &ctx.state.ceremonies {
        Some(store) => Ok(Ceremonies {
            store: store.as_ref(),
            kind: KIND,
        }),
        None => Err(DatastoreError::Unsupported("ceremonies (CeremonyStore)")),
    }
}

/// Starts a waiting sign-in for `user` (voiding one this session had) and
/// names it in the session.
pub(crate) async fn begin(
    ctx: &Ctx<'_>,
    user: &User,
    pending: Pending,
) -> Result<Ceremony<Pending>, DatastoreError> {
    let store = ceremonies(ctx)?;
    if let Some(old) = session::with(ctx.req, |s| s.ceremony.clone()) {
        store.cancel(&old).await?;
    }
    let c = store
        .start(user.id, pending, ctx.state.clock.now_secs(), TTL)
        .await?;
    session::update(ctx.req, |s| s.ceremony = Some(c.reference.clone()));
    Ok(c)
}

/// Adds `tf_state_token` to a second-factor answer when clients without
/// cookies may name the sign-in that way.
pub(crate) fn add_state_token(
    ctx: &Ctx<'_>,
    c: &Ceremony<Pending>,
    payload: &mut Map<String, Value>,
) {
    if ctx.state.hooks.pending_state_token {
        payload.insert("tf_state_token".into(), Value::String(c.reference.clone()));
    }
}

/// The reference the request names: the session's, else (when allowed) a
/// `tf_state_token` field of the form.
fn reference(ctx: &Ctx<'_>, form: Option<&FormInput>) -> Option<String> {
    session::with(ctx.req, |s| s.ceremony.clone()).or_else(|| {
        if !ctx.state.hooks.pending_state_token {
            return None;
        }
        form.and_then(|f| f.text("tf_state_token").ok().flatten())
    })
}

/// The waiting sign-in the request names, if it is at one of `stages` and
/// its user is still the one who started it; `Ok(None)` otherwise (the
/// session's reference is then dropped).
pub(crate) async fn current(
    ctx: &Ctx<'_>,
    form: Option<&FormInput>,
    stages: &[Stage],
) -> Result<Option<Found>, DatastoreError> {
    let Some(reference) = reference(ctx, form) else {
        return Ok(None);
    };
    let store = ceremonies(ctx)?;
    let now = ctx.state.clock.now_secs();
    let found = match store.find::<Pending>(&reference, now).await? {
        Some(c) if stages.contains(&c.state.stage) => {
            let user = ctx
                .state
                .datastore
                .find_user(Lookup::Id(c.user_id))
                .await?
                .filter(|u| u.fs_uniquifier == c.state.uniquifier);
            user.map(|user| Found { ceremony: c, user })
        }
        _ => None,
    };
    if found.is_none() {
        forget(ctx);
    }
    Ok(found)
}

/// Moves the waiting sign-in to `next`; `false` when another request
/// changed or finished it first.
pub(crate) async fn advance(
    ctx: &Ctx<'_>,
    found: &mut Found,
    next: Pending,
) -> Result<bool, DatastoreError> {
    let now = ctx.state.clock.now_secs();
    ceremonies(ctx)?
        .advance(&mut found.ceremony, next, now)
        .await
}

/// Drops the session's reference (the record, if any, expires).
pub(crate) fn forget(ctx: &Ctx<'_>) {
    if session::with(ctx.req, |s| s.ceremony.is_some()) {
        session::update(ctx.req, |s| s.ceremony = None);
    }
}

/// What [`complete`] did.
pub(crate) enum Completed {
    /// Signed in (or refused by the account checks, or not stored).
    SignIn(SignIn),
    /// Another request completed or changed it first.
    Lost,
}

/// Finishes the waiting sign-in (atomically: one of concurrent callers
/// wins) and signs its user in, second factor passed, by `method`.
pub(crate) async fn complete(
    ctx: &Ctx<'_>,
    found: Found,
    method: AuthnMethod,
) -> Result<Completed, DatastoreError> {
    let now = ctx.state.clock.now_secs();
    if !ceremonies(ctx)?.finish(&found.ceremony, now).await? {
        forget(ctx);
        return Ok(Completed::Lost);
    }
    forget(ctx);
    let attempt = Attempt::new(ctx.req, method)
        .identity(&found.user.email)
        .remember(found.ceremony.state.remember)
        .second_factor_passed();
    Ok(Completed::SignIn(
        sign_in(ctx, found.user.clone(), &attempt).await,
    ))
}
