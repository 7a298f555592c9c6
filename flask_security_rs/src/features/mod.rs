//! The feature registry. Each feature is one folder: its routes, forms,
//! configuration section, templates and the hooks it plugs into the kernel.
//! [`REGISTRY`] lists them; the fairing installs each one, and each decides
//! from its own configuration keys whether it mounts anything.
//!
//! A new feature adds its folder and one line here. It reaches other features
//! only through the kernel's hooks (login pipeline, account checks, mail
//! context, URLs for templates), never through their internals.

mod change_email;
mod change_password;
mod change_username;
mod confirm;
mod login;
mod passwordless;
mod recover;
mod recover_username;
// Only the code helpers so far; the routes come with the feature.
mod recovery_codes;
mod register;
pub(crate) mod throttle;
mod two_factor;
mod unified_signin;

pub(crate) use two_factor::TwoFactorRule;

use std::sync::Arc;

use rocket::figment::Figment;
use rocket::{Build, Rocket, Route};
use serde::de::DeserializeOwned;

use crate::config::{self, ConfigError, SecurityConfig};
use crate::datastore::UserDatastore;
use crate::state::Hooks;

/// One feature.
pub(crate) struct Feature {
    /// The configuration keys its section reads.
    pub keys: fn() -> &'static [&'static str],
    /// Its built-in templates: `(name, source)`.
    pub templates: &'static [(&'static str, &'static str)],
    /// Reads its section and, when enabled, mounts routes and plugs hooks.
    pub install: fn(&mut Setup<'_>) -> Result<(), ConfigError>,
}

/// Every feature, in the order they are installed.
pub(crate) const REGISTRY: &[Feature] = &[
    login::FEATURE,
    register::FEATURE,
    confirm::FEATURE,
    recover::FEATURE,
    change_password::FEATURE,
    change_email::FEATURE,
    change_username::FEATURE,
    recover_username::FEATURE,
    throttle::FEATURE,
    two_factor::FEATURE,
    recovery_codes::FEATURE,
    passwordless::FEATURE,
    unified_signin::FEATURE,
];

/// Settings the application hands to features through the fairing
/// (an SMS sender, who must use two-factor), one per type.
#[derive(Clone, Default)]
pub(crate) struct AppSettings(
    std::collections::HashMap<std::any::TypeId, Arc<dyn std::any::Any + Send + Sync>>,
);

impl AppSettings {
    pub(crate) fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        self.0.insert(std::any::TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.0
            .get(&std::any::TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }
}

/// See [`Setup::code_kit`].
pub(crate) struct CodeKit {
    pub secrets: Arc<crate::totp::TotpSecrets>,
    pub issuer: String,
    pub sms: Option<Arc<dyn crate::sms::SmsSender>>,
}

/// Adds a feature's state to the Rocket being built.
pub(crate) type Manage = Box<dyn FnOnce(Rocket<Build>) -> Rocket<Build> + Send>;

/// What the features installed: routes, hooks, template URLs, state.
pub(crate) struct Installed {
    pub routes: Vec<Route>,
    pub hooks: Hooks,
    pub urls: Vec<(&'static str, String)>,
    pub manage: Vec<Manage>,
}

/// What a feature's `install` works with.
pub(crate) struct Setup<'a> {
    figment: &'a Figment,
    /// The kernel configuration.
    pub config: &'a SecurityConfig,
    datastore: Arc<dyn UserDatastore>,
    app: AppSettings,
    pub(crate) routes: Vec<Route>,
    pub(crate) hooks: Hooks,
    pub(crate) urls: Vec<(&'static str, String)>,
    manage: Vec<Manage>,
}

impl<'a> Setup<'a> {
    pub(crate) fn new(
        figment: &'a Figment,
        config: &'a SecurityConfig,
        hooks: Hooks,
        datastore: Arc<dyn UserDatastore>,
        app: AppSettings,
    ) -> Self {
        Setup {
            figment,
            config,
            datastore,
            app,
            routes: Vec::new(),
            hooks,
            urls: Vec::new(),
            manage: Vec::new(),
        }
    }

    /// Reads the feature's configuration section.
    pub fn section<T: DeserializeOwned + Default>(&self) -> Result<T, ConfigError> {
        config::extract(self.figment)
    }

    /// The datastore (for the storage extensions it offers).
    pub fn datastore(&self) -> &Arc<dyn UserDatastore> {
        &self.datastore
    }

    /// Mounts `routes` under `url_prefix` and publishes the feature's main
    /// URL to templates as `<name>_url`.
    pub fn mount(&mut self, name: &'static str, path: &str, routes: Vec<Route>) {
        self.routes.extend(routes);
        self.urls.push((name, self.config.url(path)));
    }

    /// Manages `value` as Rocket state (the feature's configuration, say).
    pub fn manage<T: Send + Sync + 'static>(&mut self, value: T) {
        self.manage.push(Box::new(move |r| r.manage(value)));
    }

    /// Adds an account check to the login pipeline.
    pub fn account_check(
        &mut self,
        check: impl Fn(&crate::datastore::User) -> Option<crate::messages::Msg> + Send + Sync + 'static,
    ) {
        self.hooks.account_checks.push(Arc::new(check));
    }

    /// Adds to the context of other features' mails.
    pub fn mail_context(&mut self, hook: impl crate::mail::MailContext) {
        self.hooks.mail_context.push(Arc::new(hook));
    }

    /// Plugs a hook into the login pipeline (throttling, a second factor);
    /// it runs after the application's own hooks.
    pub fn login_hook(&mut self, hook: impl crate::login::LoginHook) {
        self.hooks.login.push(Arc::new(hook));
    }

    /// Sets what `GET /verify` and the 401 `reauth_required` answer say about
    /// another way to re-authenticate (`has_webauthn_verify_credential`,
    /// `oauth_enabled`, `oauth_providers`).
    pub fn reauth_option(&mut self, key: &str, value: serde_json::Value) {
        self.hooks.reauth_options.insert(key.to_string(), value);
    }

    /// Offers another way out while a second factor is awaited (in
    /// `recovery_options`), for the users `option` names one for.
    pub fn rescue_option(
        &mut self,
        option: impl Fn(&crate::datastore::User) -> Option<(&'static str, String)>
        + Send
        + Sync
        + 'static,
    ) {
        self.hooks.rescue_options.push(Arc::new(option));
    }

    /// Lets clients without cookies name a sign-in that waits for its
    /// second factor by a `tf_state_token` in the JSON.
    pub fn pending_state_token(&mut self) {
        self.hooks.pending_state_token = true;
    }

    /// Says in the 401 `reauth_required` answers that unified sign-in is
    /// on (`unified_signin_enabled`), and sends HTML re-authentication to
    /// `/us-verify`.
    pub fn unified_signin(&mut self) {
        self.hooks.unified_signin = true;
    }

    /// A setting the application gave the fairing (see
    /// [`Security::setting`](crate::Security)), by type.
    pub fn app<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.app.get::<T>()
    }

    /// What a feature signing in with one-time codes needs, checked at
    /// ignition: the user model's `fields`, ceremony storage, `totp_secrets`
    /// and `totp_issuer`, and the application's SMS sender (a warning when
    /// `sms` is wanted and none is set). `feature` names the switch in errors.
    pub(crate) fn code_kit(
        &self,
        feature: &'static str,
        fields: &[crate::datastore::UserField],
        sms_wanted: bool,
    ) -> Result<CodeKit, ConfigError> {
        for field in fields {
            if !self.datastore.has_field(*field) {
                return Err(ConfigError::new(
                    feature,
                    format!("needs the user model's {field:?} column"),
                ));
            }
        }
        if self
            .datastore
            .clone()
            .extensions()
            .get::<dyn crate::ceremony::CeremonyStore>()
            .is_none()
        {
            return Err(ConfigError::new(
                feature,
                "needs a datastore with ceremony storage (CeremonyStore)",
            ));
        }
        let secrets =
            self.config.totp_secrets.as_ref().ok_or_else(|| {
                ConfigError::new("totp_secrets", format!("is required by {feature}"))
            })?;
        let plain = secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.expose().to_string()))
            .collect();
        let secrets = crate::totp::TotpSecrets::new(&plain)
            .map_err(|e| ConfigError::new("totp_secrets", e))?;
        let issuer =
            self.config.totp_issuer.clone().ok_or_else(|| {
                ConfigError::new("totp_issuer", format!("is required by {feature}"))
            })?;
        let sms = self
            .app::<Arc<dyn crate::sms::SmsSender>>()
            .map(|s| (*s).clone());
        if sms_wanted && sms.is_none() {
            log::warn!(
                "{feature} has the sms method but no SMS sender is set (Security::sms_sender): codes will not be sent"
            );
        }
        Ok(CodeKit {
            secrets: Arc::new(secrets),
            issuer,
            sms,
        })
    }

    /// What the features installed.
    pub(crate) fn finish(self) -> Installed {
        Installed {
            routes: self.routes,
            hooks: self.hooks,
            urls: self.urls,
            manage: self.manage,
        }
    }
}

/// Every configuration key some section reads: the kernel's, the mail
/// settings, the message overrides and every feature's.
pub(crate) fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = config::field_names::<SecurityConfig>()
        .iter()
        .chain(config::field_names::<config::MailConfig>())
        .chain(config::field_names::<config::CacheConfig>())
        .map(|k| (*k).to_string())
        .collect();
    keys.extend(crate::messages::Msg::ALL.iter().map(|m| m.config_key()));
    for f in REGISTRY {
        keys.extend((f.keys)().iter().map(|k| (*k).to_string()));
    }
    keys
}

/// The built-in templates: the kernel's and every feature's.
pub(crate) fn all_templates() -> Vec<(&'static str, &'static str)> {
    let mut all = crate::http::templates::KERNEL.to_vec();
    for f in REGISTRY {
        all.extend_from_slice(f.templates);
    }
    all
}

/// `include_str!`s of templates in the workspace's `templates/` folder.
macro_rules! templates {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../templates/", $name)))),*]
    };
}
pub(crate) use templates;

/// The keys of a section type, for [`Feature::keys`].
macro_rules! section_keys {
    ($ty:ty) => {
        || $crate::config::field_names::<$ty>()
    };
}
pub(crate) use section_keys;
