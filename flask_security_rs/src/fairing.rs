//! The [`Security`] fairing: reads and checks the configuration, manages the
//! state, installs the enabled features and registers the catchers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use rocket::data::Data;
use rocket::fairing::{self, Fairing, Info, Kind};
use rocket::{Build, Request, Rocket};

use crate::authn::BodyPeek;
use crate::clock::Clock;
use crate::config::{
    self, CacheConfig, ConfigError, MailConfig, Mechanism, Secret, SecurityConfig,
};
use crate::datastore::cache::Identities;
use crate::datastore::{Admin, DatastoreError, User, UserDatastore};
use crate::features::{self, Setup};
use crate::http::templates::Templates;
use crate::http::{self, Reply};
use crate::login::LoginHook;
use crate::mail::{ConsoleMailer, Mailer, SmtpMailer};
use crate::messages::Catalogue;
use crate::passwords::{PasswordPolicy, PasswordUtil, Passwords};
use crate::state::{FailureHandler, Hooks, SecurityState, TokenExpiry};

type Seed = Arc<
    dyn Fn(Admin) -> Pin<Box<dyn Future<Output = Result<(), DatastoreError>> + Send>> + Send + Sync,
>;

/// The fairing that installs Flask-Security: state, routes, catchers.
///
/// ```no_run
/// use flask_security_rs::entity::{role, user};
/// use flask_security_rs::{SeaOrmDatastore, Security};
///
/// #[rocket::launch]
/// async fn rocket() -> _ {
///     let db = sea_orm::Database::connect("sqlite://app.db?mode=rwc").await.unwrap();
///     flask_security_rs::migration::create_tables::<user::Entity>(&db).await.unwrap();
///     rocket::build().attach(Security::new(SeaOrmDatastore::<user::Model, role::Model>::new(db)))
/// }
/// ```
pub struct Security {
    datastore: Arc<dyn UserDatastore>,
    mailer: Option<Arc<dyn Mailer>>,
    clock: Clock,
    token_expiry: Option<TokenExpiry>,
    unauthn_handler: Option<FailureHandler>,
    unauthz_handler: Option<FailureHandler>,
    login_hooks: Vec<Arc<dyn LoginHook>>,
    seed: Option<Seed>,
    register_catchers: bool,
    settings: features::AppSettings,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

impl Security {
    /// Flask-Security on `datastore`; configuration comes from Rocket's
    /// figment (`[default.security]`).
    pub fn new(datastore: impl UserDatastore) -> Self {
        Self::with_datastore(Arc::new(datastore))
    }

    /// Like [`Security::new`] with a shared datastore.
    pub fn with_datastore(datastore: Arc<dyn UserDatastore>) -> Self {
        Security {
            datastore,
            mailer: None,
            clock: Clock::new(),
            token_expiry: None,
            unauthn_handler: None,
            unauthz_handler: None,
            login_hooks: Vec::new(),
            seed: None,
            register_catchers: true,
            settings: features::AppSettings::default(),
        }
    }

    /// Uses `mailer` instead of the one the configuration implies.
    pub fn mailer(mut self, mailer: impl Mailer) -> Self {
        self.mailer = Some(Arc::new(mailer));
        self
    }

    /// Uses a shared `mailer`.
    pub fn shared_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Who must use two-factor besides those who set it up (Flask-Security's
    /// `check_tf_required`; `two_factor_required` makes it everyone): admins
    /// only, say.
    ///
    /// ```
    /// # use flask_security_rs::Security;
    /// # fn f(s: Security) -> Security {
    /// s.two_factor_required_if(|user| user.has_role("admin"))
    /// # }
    /// ```
    pub fn two_factor_required_if(
        mut self,
        rule: impl Fn(&User) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.settings
            .insert(crate::features::TwoFactorRule(Arc::new(rule)));
        self
    }

    /// Sends two-factor and sign-in codes by SMS through `sender` (without
    /// one, the `sms` method sends nothing and says so in the log).
    pub fn sms_sender(mut self, sender: impl crate::sms::SmsSender) -> Self {
        let shared: Arc<dyn crate::sms::SmsSender> = Arc::new(sender);
        self.settings.insert(shared);
        self
    }

    /// Uses `clock` (tests move it to check expiry).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Per-user auth token expiry (`SECURITY_TOKEN_EXPIRE_TIMESTAMP`): given
    /// the user and the current unix time, a unix time, or 0 for none.
    /// `token_max_age` still applies; set it to 0 to let this decide alone.
    ///
    /// ```
    /// # use flask_security_rs::Security;
    /// # fn f(s: Security) -> Security {
    /// // Admins' tokens last a day, everyone else's an hour.
    /// s.token_expiry(|user, now| {
    ///     let hours = if user.has_role("admin") { 24 } else { 1 };
    ///     now + hours * 3600
    /// })
    /// # }
    /// ```
    pub fn token_expiry(mut self, f: impl Fn(&User, i64) -> i64 + Send + Sync + 'static) -> Self {
        self.token_expiry = Some(Arc::new(f));
        self
    }

    /// Replaces the answer to unauthenticated requests (401 / redirect to login).
    pub fn unauthn_handler(
        mut self,
        f: impl for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.unauthn_handler = Some(Arc::new(f));
        self
    }

    /// Replaces the answer to unauthorized requests (403); return
    /// [`Reply::custom`] for a body of your own.
    pub fn unauthz_handler(
        mut self,
        f: impl for<'r> Fn(&'r Request<'_>) -> Reply + Send + Sync + 'static,
    ) -> Self {
        self.unauthz_handler = Some(Arc::new(f));
        self
    }

    /// Plugs `hook` into the login pipeline (throttling, second factor,
    /// events); hooks run in the order they were added.
    pub fn login_hook(mut self, hook: impl LoginHook) -> Self {
        self.login_hooks.push(Arc::new(hook));
        self
    }

    /// Runs `seed` at ignite, once the state is ready: create roles and
    /// users with the configured password hasher. A failure stops launch.
    ///
    /// ```
    /// # use flask_security_rs::{NewUser, Security, UserDatastoreExt};
    /// # fn f(s: Security) -> Security {
    /// s.seed(|admin| async move {
    ///     admin.datastore().find_or_create_role("admin", &["admin-read"]).await?;
    ///     if admin.find_user("admin@example.com").await?.is_none() {
    ///         let new = NewUser::new("admin@example.com").roles(["admin"]);
    ///         admin.create_user(new, "password").await?;
    ///     }
    ///     Ok(())
    /// })
    /// # }
    /// ```
    pub fn seed<F, Fut>(mut self, seed: F) -> Self
    where
        F: Fn(Admin) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), DatastoreError>> + Send + 'static,
    {
        self.seed = Some(Arc::new(move |admin| Box::pin(seed(admin))));
        self
    }

    /// Leaves catcher registration to the application
    /// (register [`crate::catchers()`] yourself, possibly under a base).
    pub fn without_catchers(mut self) -> Self {
        self.register_catchers = false;
        self
    }

    /// Builds the state and the routes from the figment.
    fn build(&self, figment: &rocket::figment::Figment, debug: bool) -> Result<Built, String> {
        let err = |e: ConfigError| e.to_string();
        let mut config: SecurityConfig = config::extract(figment).map_err(err)?;
        for (name, value) in [
            ("secret_key", &mut config.secret_key),
            ("password_salt", &mut config.password_salt),
        ] {
            if value.as_ref().is_none_or(|v| v.expose().is_empty()) {
                if !debug {
                    return Err(format!(
                        "`security.{name}` must be set outside the debug profile"
                    ));
                }
                log::warn!("`security.{name}` is not set: using a random one (debug profile only)");
                *value = Some(Secret::new(random_secret()));
            }
        }
        config.validate().map_err(err)?;
        if !debug && config.server_name.is_none() && config.trusted_hosts.is_none() {
            // Otherwise mailed links would follow whatever `Host` a caller sends.
            return Err(
                "`security.server_name` or `security.trusted_hosts` must be set outside the debug profile"
                    .into(),
            );
        }
        let mail: MailConfig = config::extract(figment).map_err(err)?;
        mail.validate().map_err(err)?;
        let messages = Catalogue::from_figment(figment).map_err(err)?;

        let hooks = Hooks::new(self.login_hooks.clone());
        let mut setup = Setup::new(
            figment,
            &config,
            hooks,
            self.datastore.clone(),
            self.settings.clone(),
        );
        for feature in features::REGISTRY {
            (feature.install)(&mut setup).map_err(err)?;
        }
        let known = features::known_keys();
        let known: Vec<&str> = known.iter().map(String::as_str).collect();
        config::check_unknown_keys(figment, &known).map_err(err)?;
        let features::Installed {
            mut routes,
            hooks,
            urls,
            manage,
        } = setup.finish();
        let extra = http::method_routes(&routes);
        routes.extend(extra);

        let templates = Templates::load(config.templates_dir.as_deref(), features::all_templates())
            .map_err(|e| format!("loading security templates failed: {e}"))?;
        let mailer: Arc<dyn Mailer> = match (&self.mailer, &mail.mail_server) {
            (Some(m), _) => m.clone(),
            (None, Some(_)) => Arc::new(
                SmtpMailer::from_config(&mail).map_err(|e| format!("mail configuration: {e}"))?,
            ),
            (None, None) => Arc::new(ConsoleMailer),
        };
        let (m, t, p) = config.argon2_params();
        let salt = config
            .password_salt
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_default();
        let passwords = Passwords::new(
            PasswordUtil::new(&salt).with_argon2_params(m, t, p),
            config.hash_concurrency(),
            std::time::Duration::from_secs_f64(config.password_hash_queue_timeout),
        );
        let cache: CacheConfig = config::extract(figment).map_err(err)?;
        cache.validate().map_err(err)?;
        let extensions = self.datastore.clone().extensions();
        let identities = Identities::new(self.datastore.clone(), &extensions, &cache);
        let keys = config.signing_keys();
        let state = SecurityState {
            policy: PasswordPolicy::new(&config),
            serializers: crate::tokens::Serializers::new(keys.clone()),
            sealer: crate::tokens::Sealer::new(&keys),
            keys,
            default_mechanisms: Mechanism::mask(&config.api_enabled_methods),
            config,
            datastore: identities.users.clone(),
            sessions: identities.sessions.clone(),
            ceremonies: extensions.get::<dyn crate::ceremony::CeremonyStore>(),
            identities,
            decoded: crate::authn::Decoded::new(&cache),
            outbox: extensions
                .get::<dyn crate::datastore::OutboxStore>()
                .map(|store| {
                    crate::mail::outbox::Outbox::new(
                        store,
                        crate::mail::outbox::Settings {
                            send_timeout: std::time::Duration::from_secs_f64(
                                mail.mail_send_timeout,
                            ),
                            max_attempts: mail.mail_max_attempts,
                            retry_delay: mail.mail_retry_delay,
                            poll_interval: std::time::Duration::from_secs_f64(
                                mail.mail_outbox_poll_interval,
                            ),
                        },
                    )
                }),
            passwords,
            mailer,
            clock: self.clock.clone(),
            messages,
            templates,
            hooks,
            urls,
            token_expiry: self.token_expiry.clone(),
            unauthn_handler: self.unauthn_handler.clone(),
            unauthz_handler: self.unauthz_handler.clone(),
        };
        Ok(Built {
            state,
            routes,
            manage,
        })
    }
}

struct Built {
    state: SecurityState,
    routes: Vec<rocket::Route>,
    manage: Vec<features::Manage>,
}

fn random_secret() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

#[rocket::async_trait]
impl Fairing for Security {
    fn info(&self) -> Info {
        Info {
            name: "Flask-Security",
            kind: Kind::Ignite | Kind::Liftoff | Kind::Request | Kind::Response | Kind::Singleton,
        }
    }

    async fn on_ignite(&self, rocket: Rocket<Build>) -> fairing::Result {
        let debug = rocket.figment().profile() == rocket::Config::DEBUG_PROFILE;
        let built = match self.build(rocket.figment(), debug) {
            Ok(b) => b,
            Err(e) => {
                log::error!("flask_security_rs: {e}");
                return Err(rocket);
            }
        };
        let base = built
            .state
            .config
            .url_prefix
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let admin = built.state.admin();
        let mut rocket = rocket.manage(built.state).mount(base, built.routes);
        for manage in built.manage {
            rocket = manage(rocket);
        }
        if self.register_catchers {
            rocket = rocket.register("/", http::catchers());
        }
        if let Err(e) = self.datastore.prepare().await {
            log::error!("flask_security_rs: preparing the datastore failed: {e}");
            return Err(rocket);
        }
        if rocket
            .state::<SecurityState>()
            .is_some_and(|s| s.sessions.is_none())
        {
            log::warn!(
                "flask_security_rs: the datastore keeps no session records: sessions live in \
                 the cookie alone and logout cannot revoke copies of it"
            );
        }
        if let Some(seed) = &self.seed
            && let Err(e) = seed(admin).await
        {
            log::error!("flask_security_rs: seeding failed: {e}");
            return Err(rocket);
        }
        Ok(rocket)
    }

    async fn on_liftoff(&self, rocket: &Rocket<rocket::Orbit>) {
        let Some(state) = rocket.state::<SecurityState>() else {
            return;
        };
        let shutdown = rocket.shutdown();
        state.identities.start_feed(async move {
            shutdown.await;
        });
        if let Some(outbox) = state.outbox.clone() {
            let shutdown = rocket.shutdown();
            let (mailer, clock) = (state.mailer.clone(), state.clock.clone());
            rocket::tokio::spawn(outbox.run(mailer, clock, async move {
                shutdown.await;
            }));
        }
    }

    async fn on_request(&self, req: &mut Request<'_>, data: &mut Data<'_>) {
        // Only a JSON body can carry a token, and only a form's a CSRF field:
        // other requests are left alone. The bytes are parsed only if a
        // guard asks (see `authn::body_fields`).
        let json = http::is_json_body(req);
        if !json && !req.content_type().is_some_and(|ct| ct.is_form()) {
            return;
        }
        // Rocket lets a fairing see at most the first 512 bytes of a body.
        let bytes = data.peek(512).await.to_vec();
        req.local_cache(|| BodyPeek { json, bytes });
    }

    async fn on_response<'r>(&self, req: &'r Request<'_>, res: &mut rocket::Response<'r>) {
        http::cookies::apply(req, res);
    }
}
