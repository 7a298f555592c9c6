//! The login pipeline: the one place every way of signing in ends.
//!
//! 1. **Credentials** ([`check_password`]): the throttling hook
//!    ([`LoginHook::allow`]) may refuse the attempt first; the password is then
//!    verified off the executor (a dummy hash for unknown users, so timing does
//!    not tell them apart) and re-hashed when stored in an old scheme; a
//!    failure is reported to [`LoginHook::failed`]. HTTP basic goes through
//!    this step too.
//! 2. **Account checks** ([`account_problem`]): active, and what features add
//!    (the confirm feature: confirmed).
//! 3. **Second factor** ([`LoginHook::second_factor`]): a hook may answer
//!    with its own challenge instead of a session.
//! 4. **Issuance** ([`sign_in`]): the session (and remember cookie, and a new
//!    CSRF cookie), an auth token when asked for, the trackable columns, then
//!    [`LoginHook::signed_in`].
//!
//! Views never sign a user in themselves: they call [`sign_in`].

use std::sync::Arc;

use rocket::request::Request;
use serde_json::{Map, Value};

use crate::authn::{self, session};
use crate::datastore::{User, UserUpdate};
use crate::http::{Ctx, FormInput, Reply, query_has};
use crate::messages::{Message, Msg};
use crate::passwords::Verified;
use crate::state::SecurityState;

pub(crate) mod codes;
pub(crate) mod pending;

/// How a sign-in came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthnMethod {
    /// Identity and password at `/login`.
    Password,
    /// HTTP basic credentials on a request (no session is issued).
    Basic,
    /// Signed in right after registering.
    Register,
    /// Signed in by a confirmation link.
    Confirm,
    /// Signed in after resetting the password.
    Reset,
    /// The session renewed after a password change (no account checks and no
    /// second factor: the user is already signed in).
    ChangePassword,
    /// A one-time code: a second factor, or a passcode of unified sign-in.
    Code,
    /// A multi-factor recovery code, in place of a second factor.
    RecoveryCode,
    /// A mailed sign-in link (passwordless).
    Passwordless,
    /// Identity and passcode (a password, or a code of a set-up method) at
    /// `/us-signin`, or the magic link of a mailed code.
    UnifiedSignin,
}

impl AuthnMethod {
    /// Whether this is a new sign-in (account checks and second factor
    /// apply), rather than the renewal of an existing one.
    pub fn is_new_sign_in(self) -> bool {
        !matches!(self, AuthnMethod::ChangePassword)
    }
}

/// One sign-in attempt, as hooks see it.
pub struct Attempt<'a> {
    req: &'a Request<'a>,
    method: AuthnMethod,
    identity: Option<&'a str>,
    form: Option<&'a FormInput>,
    remember: bool,
    second_factor_passed: bool,
}

impl std::fmt::Debug for Attempt<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attempt")
            .field("method", &self.method)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl<'a> Attempt<'a> {
    pub(crate) fn new(req: &'a Request<'a>, method: AuthnMethod) -> Self {
        Attempt {
            req,
            method,
            identity: None,
            form: None,
            remember: false,
            second_factor_passed: false,
        }
    }

    /// The second factor was checked already (the sign-in completes a
    /// ceremony): the pipeline skips that step.
    pub(crate) fn second_factor_passed(mut self) -> Self {
        self.second_factor_passed = true;
        self
    }

    pub(crate) fn identity(mut self, identity: &'a str) -> Self {
        self.identity = Some(identity);
        self
    }

    pub(crate) fn form(mut self, form: &'a FormInput) -> Self {
        self.form = Some(form);
        self
    }

    pub(crate) fn remember(mut self, remember: bool) -> Self {
        self.remember = remember;
        self
    }

    /// Whether the caller asked to be remembered.
    pub fn remembers(&self) -> bool {
        self.remember
    }

    /// How the caller signs in.
    pub fn method(&self) -> AuthnMethod {
        self.method
    }

    /// The identity the caller gave (email or username), when there was one.
    pub fn given_identity(&self) -> Option<&str> {
        self.identity
    }

    /// A text field of the submitted form (an application's extra login
    /// field, say), when there is a form and the field is a non-blank string.
    pub fn field(&self, name: &str) -> Option<String> {
        self.form.and_then(|f| f.text(name).ok().flatten())
    }

    /// The request.
    pub fn request(&self) -> &'a Request<'a> {
        self.req
    }
}

/// What the throttling hook says about an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Go on checking the credentials.
    Allow,
    /// Refuse the attempt with this message, without checking credentials
    /// (a 400 form error).
    Refuse(Message),
    /// Too many failures: refuse without checking credentials (not even
    /// hashing the password), answering 429 with `Retry-After`.
    Throttle {
        /// When to try again (sent in whole seconds, at least 1).
        retry_after: std::time::Duration,
        /// What to tell the caller.
        message: Message,
    },
}

/// What the second-factor hook decides for a user whose credentials and
/// account are good.
#[derive(Debug)]
pub enum SecondFactor {
    /// Sign in now.
    NotRequired,
    /// Do not sign in yet: answer with this challenge instead.
    Required(Reply),
}

/// Plugs into the login pipeline; register with `Security::login_hook`.
/// Every method has a default that lets the sign-in proceed, so a hook
/// implements only the steps it cares about.
///
/// ```
/// use flask_security_rs::{Attempt, LoginHook, User};
///
/// /// Logs who signed in, and the app's extra `nickname` login field.
/// struct Audit;
///
/// #[rocket::async_trait]
/// impl LoginHook for Audit {
///     async fn signed_in(&self, attempt: &Attempt<'_>, user: &User) {
///         let nickname = attempt.field("nickname");
///         println!("{} signed in ({:?}), nickname {nickname:?}", user.email, attempt.method());
///     }
/// }
/// ```
#[rocket::async_trait]
pub trait LoginHook: Send + Sync + 'static {
    /// Throttling: called before credentials are checked (Flask-Security's
    /// `is_locked`). `user` is the account the identity names, if any.
    async fn allow(&self, attempt: &Attempt<'_>, user: Option<&User>) -> Verdict {
        let _ = (attempt, user);
        Verdict::Allow
    }

    /// Called after credentials failed (Flask-Security's `track_failed_authn`).
    async fn failed(&self, attempt: &Attempt<'_>, user: Option<&User>) {
        let _ = (attempt, user);
    }

    /// Whether a second factor is needed before `user` is signed in.
    async fn second_factor(&self, attempt: &Attempt<'_>, user: &User) -> SecondFactor {
        let _ = (attempt, user);
        SecondFactor::NotRequired
    }

    /// Called once `user` is signed in (Flask's `user_authenticated` signal).
    async fn signed_in(&self, attempt: &Attempt<'_>, user: &User) {
        let _ = (attempt, user);
    }
}

#[rocket::async_trait]
impl<T: LoginHook + ?Sized> LoginHook for Arc<T> {
    async fn allow(&self, attempt: &Attempt<'_>, user: Option<&User>) -> Verdict {
        (**self).allow(attempt, user).await
    }
    async fn failed(&self, attempt: &Attempt<'_>, user: Option<&User>) {
        (**self).failed(attempt, user).await
    }
    async fn second_factor(&self, attempt: &Attempt<'_>, user: &User) -> SecondFactor {
        (**self).second_factor(attempt, user).await
    }
    async fn signed_in(&self, attempt: &Attempt<'_>, user: &User) {
        (**self).signed_in(attempt, user).await
    }
}

/// An account check a feature adds: the problem with `user`, if any.
pub(crate) type AccountCheck = Arc<dyn Fn(&User) -> Option<Msg> + Send + Sync>;

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CredentialError {
    /// The throttling hook refused the attempt.
    Refused(Message),
    /// The throttling hook holds the attempt back for a while: 429 with
    /// `Retry-After`.
    Throttled(std::time::Duration, Message),
    /// No such user, no password, or the wrong one.
    Invalid,
    /// Every hashing slot stayed busy: answer 503, the caller is not wrong.
    Busy,
}

/// The throttling hook's verdict on an attempt, before any credential
/// (a password, a code) is checked.
pub(crate) async fn gate(
    state: &SecurityState,
    attempt: &Attempt<'_>,
    user: Option<&User>,
) -> Result<(), CredentialError> {
    for hook in &state.hooks.login {
        match hook.allow(attempt, user).await {
            Verdict::Allow => {}
            Verdict::Refuse(m) => return Err(CredentialError::Refused(m)),
            Verdict::Throttle {
                retry_after,
                message,
            } => return Err(CredentialError::Throttled(retry_after, message)),
        }
    }
    Ok(())
}

/// Tells the hooks that the credentials of `attempt` were wrong.
pub(crate) async fn failed(state: &SecurityState, attempt: &Attempt<'_>, user: Option<&User>) {
    for hook in &state.hooks.login {
        hook.failed(attempt, user).await;
    }
}

/// Step 1: the throttling hook, then the password (see the module docs).
pub(crate) async fn check_password(
    state: &SecurityState,
    attempt: &Attempt<'_>,
    user: Option<&User>,
    password: &str,
) -> Result<(), CredentialError> {
    gate(state, attempt, user).await?;
    if password_matches(state, user, password).await? {
        Ok(())
    } else {
        failed(state, attempt, user).await;
        Err(CredentialError::Invalid)
    }
}

/// Whether `password` is `user`'s, without the hooks (the caller runs
/// [`gate`] first and reports a failure to [`failed`]): verified off the
/// executor, a dummy hash for no user or no password, re-hashed when stored
/// in an old scheme. `Err(Busy)` when every hashing slot stayed busy.
pub(crate) async fn password_matches(
    state: &SecurityState,
    user: Option<&User>,
    password: &str,
) -> Result<bool, CredentialError> {
    let stored = user
        .and_then(|u| u.password.clone())
        .filter(|p| !p.is_empty());
    let verdict = match (&stored, user) {
        (Some(stored), Some(_)) => state.passwords.verify(password, stored).await,
        _ => state.passwords.dummy_verify().await.map(|()| Verified::No),
    }
    .map_err(|_| CredentialError::Busy)?;
    match (verdict, user) {
        (Verified::Yes, Some(_)) => Ok(true),
        (Verified::YesNeedsRehash, Some(u)) => {
            if let Ok(h) = state.passwords.hash(password).await
                && let Err(e) = state
                    .datastore
                    .update_user(u.id, UserUpdate::new().password_hash(h))
                    .await
            {
                log::error!("storing re-hashed password failed: {e}");
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// In which order the account checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckOrder {
    /// Features' checks, then `active` (Flask-Security's login form).
    ActiveLast,
    /// `active`, then features' checks (the forms that mail a link).
    ActiveFirst,
}

/// Step 2: the first problem with `user`'s account, if any.
pub(crate) fn account_problem(
    state: &SecurityState,
    user: &User,
    order: CheckOrder,
) -> Option<Msg> {
    let active = (!user.active).then_some(Msg::DisabledAccount);
    let features = || state.hooks.account_checks.iter().find_map(|c| c(user));
    match order {
        CheckOrder::ActiveFirst => active.or_else(features),
        CheckOrder::ActiveLast => features().or(active),
    }
}

/// The outcome of [`sign_in`].
#[derive(Debug)]
pub(crate) enum SignIn {
    /// Signed in; `token` is set when the caller asked for one.
    Done(Box<Issued>),
    /// The account may not sign in.
    Refused(Msg),
    /// Not signed in: send this instead (a second factor's challenge, or a
    /// 503 when the session could not be stored).
    Answer(Reply),
}

/// A completed sign-in.
#[derive(Debug)]
pub(crate) struct Issued {
    pub user: User,
    pub token: Option<String>,
    pub second_factor_checked: bool,
}

impl Issued {
    /// `{csrf_token, user}` with `user.authentication_token` when a token
    /// was issued, and `tf_required: false` after a new sign-in.
    pub(crate) fn payload(&self, ctx: &Ctx<'_>) -> Map<String, Value> {
        let mut m = with_token(ctx, &self.user, self.token.clone());
        if self.second_factor_checked {
            m.insert("tf_required".into(), Value::Bool(false));
        }
        m
    }
}

/// `{csrf_token, user}` of a user who just proved who they are (re-auth),
/// with a new auth token when the query has `include_auth_token`.
pub(crate) fn authenticated_payload(ctx: &Ctx<'_>, user: &User) -> Map<String, Value> {
    let token =
        query_has(ctx.req, "include_auth_token").then(|| authn::auth_token(ctx.state, user));
    with_token(ctx, user, token)
}

fn with_token(ctx: &Ctx<'_>, user: &User, token: Option<String>) -> Map<String, Value> {
    let mut m = ctx.payload(Some(user));
    if let (Some(t), Some(Value::Object(u))) = (token, m.get_mut("user")) {
        u.insert("authentication_token".into(), Value::String(t));
    }
    m
}

/// Steps 2 to 4 for `user`, whose credentials are good.
pub(crate) async fn sign_in(ctx: &Ctx<'_>, user: User, attempt: &Attempt<'_>) -> SignIn {
    let state = ctx.state;
    let new = attempt.method.is_new_sign_in();
    if new {
        if let Some(problem) = account_problem(state, &user, CheckOrder::ActiveLast) {
            return SignIn::Refused(problem);
        }
        if !attempt.second_factor_passed {
            for hook in &state.hooks.login {
                if let SecondFactor::Required(reply) = hook.second_factor(attempt, &user).await {
                    return SignIn::Answer(reply);
                }
            }
        }
    }
    if let Err(e) = session::start(ctx.req, state, &user, attempt.remember).await {
        return SignIn::Answer(Reply::failed("storing the session", &e));
    }
    if state.config.trackable {
        track(ctx.req, state, &user).await;
    }
    let token = query_has(ctx.req, "include_auth_token").then(|| authn::auth_token(state, &user));
    for hook in &state.hooks.login {
        hook.signed_in(attempt, &user).await;
    }
    SignIn::Done(Box::new(Issued {
        user,
        token,
        second_factor_checked: new && !attempt.second_factor_passed,
    }))
}

/// The trackable columns of a sign-in.
async fn track(req: &Request<'_>, state: &SecurityState, user: &User) {
    let ip = req.client_ip().map(|ip| ip.to_string());
    let stamp = state.clock.naive_utc();
    let update = UserUpdate {
        last_login_at: Some(user.current_login_at.or(Some(stamp))),
        current_login_at: Some(Some(stamp)),
        last_login_ip: Some(user.current_login_ip.clone().or(ip.clone())),
        current_login_ip: Some(ip),
        login_count: Some(user.login_count.unwrap_or(0) + 1),
        ..UserUpdate::default()
    };
    if let Err(e) = state.datastore.update_user(user.id, update).await {
        log::error!("updating login tracking failed: {e}");
    }
}
