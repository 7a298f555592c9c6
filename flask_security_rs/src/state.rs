//! What the library's routes and guards share, managed by the fairing.

use std::sync::Arc;

use rocket::request::Request;
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::config::SecurityConfig;
use crate::datastore::{Admin, User, UserDatastore};
use crate::http::Reply;
use crate::http::templates::Templates;
use crate::login::{AccountCheck, LoginHook};
use crate::mail::{MailContext, Mailer};
use crate::messages::Catalogue;
use crate::passwords::{PasswordPolicy, Passwords};
use crate::tokens::Serializer;

/// Computes an auth token's `exp` for a user (`SECURITY_TOKEN_EXPIRE_TIMESTAMP`)
/// from the current unix time (the library's [`Clock`]): a unix time, or 0
/// for none.
pub type TokenExpiry = Arc<dyn Fn(&User, i64) -> i64 + Send + Sync>;

/// Answers a refused request (Flask-Security's `unauthn_handler` /
/// `unauthz_handler`). Read why with [`crate::refusal`].
pub type FailureHandler = Arc<dyn for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync>;

/// A way out of a second factor that a feature offers (recovery codes).
pub(crate) type RescueOption = Arc<dyn Fn(&User) -> Option<(&'static str, String)> + Send + Sync>;

/// The hooks features and the application plug into the kernel.
#[derive(Default)]
pub(crate) struct Hooks {
    /// Login pipeline hooks (throttling, second factor, events).
    pub login: Vec<Arc<dyn LoginHook>>,
    /// Account checks features add to the login pipeline.
    pub account_checks: Vec<AccountCheck>,
    /// Features' additions to mails about a user.
    pub mail_context: Vec<Arc<dyn MailContext>>,
    /// What `GET /verify` and the 401 `reauth_required` answer say about the
    /// other ways to re-authenticate (passkeys, OAuth); features override.
    pub reauth_options: Map<String, Value>,
    /// `unified_signin_enabled` in the 401 `reauth_required` answer.
    pub unified_signin: bool,
    /// The other ways out offered while a second factor is awaited
    /// (`recovery_options` of `/tf-validate` and `/tf-rescue`): for a user,
    /// a key and its URL, or nothing.
    pub rescue_options: Vec<RescueOption>,
    /// Whether a sign-in waiting for its second factor can also be named by
    /// a state token in the JSON (for clients without cookies), not only by
    /// the session cookie.
    pub pending_state_token: bool,
}

impl Hooks {
    pub(crate) fn new(login: Vec<Arc<dyn LoginHook>>) -> Self {
        Hooks {
            login,
            ..Hooks::default()
        }
    }
}

/// Everything the library's routes and guards share.
pub(crate) struct SecurityState {
    pub config: SecurityConfig,
    pub datastore: Arc<dyn UserDatastore>,
    /// Server-side session records, when the datastore offers them.
    pub sessions: Option<Arc<dyn crate::datastore::SessionStore>>,
    /// Ceremonies and claims, when the datastore offers them.
    pub ceremonies: Option<Arc<dyn crate::ceremony::CeremonyStore>>,
    /// Lookups of the users of sessions and tokens (through the identity
    /// cache when it is on; `datastore` and `sessions` then invalidate it).
    pub identities: crate::datastore::cache::Identities,
    /// Verified tokens and decrypted session cookies (with the cache on).
    pub decoded: Option<crate::authn::Decoded>,
    pub passwords: Passwords,
    pub policy: PasswordPolicy,
    pub mailer: Arc<dyn Mailer>,
    /// The mail outbox, when the datastore offers one.
    pub outbox: Option<crate::mail::outbox::Outbox>,
    pub clock: Clock,
    pub messages: Catalogue,
    pub templates: Templates,
    pub hooks: Hooks,
    /// Main URLs of the installed features, as templates see them.
    pub urls: Vec<(&'static str, String)>,
    /// Signing keys: `secret_key` then the fallbacks.
    pub keys: Vec<Vec<u8>>,
    /// Token serializers over `keys`, one per salt.
    pub serializers: crate::tokens::Serializers,
    /// Seals the session cookie (keys derived from `keys`).
    pub sealer: crate::tokens::Sealer,
    /// `api_enabled_methods` as mechanism bits.
    pub default_mechanisms: u8,
    pub token_expiry: Option<TokenExpiry>,
    pub unauthn_handler: Option<FailureHandler>,
    pub unauthz_handler: Option<FailureHandler>,
}

impl std::fmt::Debug for SecurityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SecurityState {
    /// The state of the Rocket serving `req`; `None` without the fairing
    /// (guards are sentinels, so only replies built outside our routes see it).
    pub(crate) fn of<'r>(req: &'r Request<'_>) -> Option<&'r SecurityState> {
        req.rocket().state::<SecurityState>()
    }

    /// A token serializer for `salt` with the configured keys.
    pub(crate) fn serializer(&self, salt: &str) -> std::sync::Arc<Serializer> {
        self.serializers.get(salt)
    }

    /// Whether the feature whose main URL is `name` is installed.
    pub(crate) fn has_feature(&self, name: &str) -> bool {
        self.urls.iter().any(|(n, _)| *n == name)
    }

    /// The admin handle on this state.
    pub(crate) fn admin(&self) -> Admin {
        Admin::new(
            self.datastore.clone(),
            self.sessions.clone(),
            self.outbox.as_ref().map(|o| o.store.clone()),
            self.passwords.clone(),
            self.clock.clone(),
        )
    }
}
