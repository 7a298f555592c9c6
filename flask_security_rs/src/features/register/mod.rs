//! Registerable: `/register`, and the welcome mail.

use rocket::{State, get, post, routes};
use rocket_dyn_templates::tera::Context;
use serde::Deserialize;

use super::{Feature, Setup, section_keys, templates};
use crate::config::ConfigError;
use crate::datastore::{DatastoreError, Lookup, NewUser, User, new_uniquifier};
use crate::http::redirect::{next_param, redirect_allowed};
use crate::http::{Ctx, FormErrors, FormInput, Reply, text};
use crate::identity::{check_username, normalize_email};
use crate::login::{self, Attempt, AuthnMethod, SignIn};
use crate::mail::{self, Outgoing};
use crate::messages::{Message, Msg};
use crate::passwords::HashFailure;

/// The register feature's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct RegisterConfig {
    /// `SECURITY_REGISTERABLE`. _Default:_ `false`.
    registerable: bool,
    /// `SECURITY_SEND_REGISTER_EMAIL`. _Default:_ `true`.
    send_register_email: bool,
    /// `SECURITY_EMAIL_SUBJECT_REGISTER`. _Default:_ `"Welcome"`.
    email_subject_register: String,
    /// `SECURITY_POST_REGISTER_VIEW`. _Default:_ none (`post_login_view`).
    post_register_view: Option<String>,
    /// `SECURITY_PASSWORD_CONFIRM_REQUIRED`. _Default:_ `true`.
    password_confirm_required: bool,
    /// `SECURITY_PASSWORD_REQUIRED`: when `false`, an account may be
    /// registered without a password (it signs in with unified sign-in's
    /// codes, or sets a password through a reset). _Default:_ `true`.
    password_required: bool,
}

impl Default for RegisterConfig {
    fn default() -> Self {
        RegisterConfig {
            registerable: false,
            send_register_email: true,
            email_subject_register: "Welcome".into(),
            post_register_view: None,
            password_confirm_required: true,
            password_required: true,
        }
    }
}

pub(crate) const FEATURE: Feature = Feature {
    keys: section_keys!(RegisterConfig),
    templates: templates!(
        "security/register_user.html.tera",
        "security/email/welcome.txt.tera",
        "security/email/welcome.html.tera",
        "security/email/welcome_existing.txt.tera",
        "security/email/welcome_existing.html.tera",
        "security/email/welcome_existing_username.txt.tera",
        "security/email/welcome_existing_username.html.tera",
    ),
    install,
};

fn install(setup: &mut Setup<'_>) -> Result<(), ConfigError> {
    let cfg: RegisterConfig = setup.section()?;
    if cfg.registerable {
        setup.manage(cfg);
        setup.mount(
            "register",
            "/register",
            routes![register_get, register_post],
        );
    }
    Ok(())
}

fn register_page(ctx: &Ctx<'_>, form: Option<&FormInput>, errors: &FormErrors) -> Reply {
    let c = ctx.form_context(form, &["email", "username"]);
    ctx.page("security/register_user.html.tera", c, errors)
}

#[get("/register")]
async fn register_get(ctx: Ctx<'_>) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    ctx.form_get(|c, e| register_page(c, None, e))
}

/// What the form asks for, once it is valid.
struct Registration {
    email: String,
    username: Option<String>,
    /// None when `password_required` is off and none was given.
    password: Option<String>,
    /// Generic responses: the address (or the username) is someone's already.
    taken: Option<Taken>,
}

enum Taken {
    Email(Box<User>),
    Username,
}

async fn read_form(
    ctx: &Ctx<'_>,
    cfg: &RegisterConfig,
    form: &FormInput,
) -> Result<Registration, FormErrors> {
    let core = ctx.config();
    let ds = &ctx.state.datastore;
    let mut errors = FormErrors::new();
    let email_raw = text(form, "email", &mut errors);
    let username_raw = if core.username_enable {
        text(form, "username", &mut errors)
    } else {
        None
    };
    let password = text(form, "password", &mut errors);
    let confirm = text(form, "password_confirm", &mut errors);
    let generic = core.return_generic_responses;
    let mut email = None;
    let mut taken = None;
    match &email_raw {
        None if !errors.has("email") => errors.add("email", Msg::EmailNotProvided),
        None => {}
        Some(raw) => match normalize_email(raw) {
            None => errors.add("email", Msg::InvalidEmailAddress),
            Some(e) => match ds.find_user(Lookup::Email(&e)).await {
                Ok(Some(owner)) if generic => {
                    taken = Some(Taken::Email(Box::new(owner)));
                    email = Some(e);
                }
                Ok(Some(_)) => errors.add(
                    "email",
                    Message::new(Msg::EmailAlreadyAssociated).arg("email", &e),
                ),
                Ok(None) => email = Some(e),
                Err(err) => {
                    errors.backend_failed("register lookup", &err);
                }
            },
        },
    }
    // Field order of Flask-Security's form: email, password, password_confirm, username.
    match &password {
        None if !cfg.password_required => {}
        None if !errors.has("password") => errors.add("password", Msg::PasswordNotProvided),
        None => {}
        Some(pw) => {
            let inputs = [
                email.as_deref().unwrap_or(""),
                username_raw.as_deref().unwrap_or(""),
            ];
            for e in ctx.state.policy.validate(pw, &inputs).await {
                errors.add("password", e);
            }
        }
    }
    // Without a password there is nothing to confirm.
    let confirming = password.is_some() || cfg.password_required;
    if cfg.password_confirm_required && confirming && !errors.has("password_confirm") {
        match &confirm {
            None => errors.add("password_confirm", Msg::PasswordNotProvided),
            Some(c) if password.as_deref() != Some(c.as_str()) => {
                errors.add("password_confirm", Msg::RetypePasswordMismatch)
            }
            _ => {}
        }
    }
    let mut username = None;
    match &username_raw {
        None if core.username_required && !errors.has("username") => {
            errors.add("username", Msg::UsernameNotProvided)
        }
        None => {}
        Some(raw) => match check_username(core, raw) {
            Err(msg) => errors.add("username", msg),
            Ok(name) => match ds.find_user(Lookup::Username(&name)).await {
                Ok(Some(_)) if generic => {
                    taken = taken.or(Some(Taken::Username));
                    username = Some(name);
                }
                Ok(Some(_)) => errors.add(
                    "username",
                    Message::new(Msg::UsernameAlreadyAssociated).arg("username", &name),
                ),
                Ok(None) => username = Some(name),
                Err(err) => {
                    errors.backend_failed("register lookup", &err);
                }
            },
        },
    }
    if let Some(n) = next_param(form, ctx.req, &mut errors)
        && !redirect_allowed(ctx.req, &n)
    {
        errors.add("next", Msg::InvalidRedirect);
    }
    match (email, errors.is_empty()) {
        (Some(email), true) if password.is_some() || !cfg.password_required => Ok(Registration {
            email,
            username,
            password,
            taken,
        }),
        _ => Err(errors),
    }
}

/// The hash of the password given, if one was.
async fn hash_given(ctx: &Ctx<'_>, password: Option<&str>) -> Result<Option<String>, HashFailure> {
    match password {
        Some(pw) => ctx.state.passwords.hash(pw).await.map(Some),
        None => Ok(None),
    }
}

fn post_register_view(ctx: &Ctx<'_>, cfg: &RegisterConfig) -> String {
    cfg.post_register_view
        .clone()
        .unwrap_or_else(|| ctx.config().post_login_view.clone())
}

#[post("/register", data = "<form>")]
async fn register_post(ctx: Ctx<'_>, cfg: &State<RegisterConfig>, form: FormInput) -> Reply {
    if let Err(reply) = ctx.anonymous_only().await {
        return reply;
    }
    if let Err(reply) = ctx.unauth_csrf(&form).await {
        return reply;
    }
    let reg = match read_form(&ctx, cfg, &form).await {
        Ok(r) => r,
        Err(errors) => return ctx.invalid(&errors, |c, e| register_page(c, Some(&form), e)),
    };

    // Generic responses: an existing identity gets a mail, the caller the same
    // answer as a registration (minus `user`), after the same hashing work.
    // In both cases the mail's links (digests of the email or of the stored
    // password) are made while the password hash runs, so that neither
    // answer takes longer for the digest's input (generic-mode timing).
    if let Some(taken) = &reg.taken {
        let _ = tokio::join!(
            hash_given(&ctx, reg.password.as_deref()),
            send_existing(&ctx, cfg, taken, &reg)
        );
        return if ctx.json() {
            Reply::ok(ctx.payload(None))
        } else {
            Reply::redirect(post_register_view(&ctx, cfg))
        };
    }
    let mut new = NewUser {
        email: reg.email.clone(),
        username: reg.username.clone(),
        active: true,
        fs_uniquifier: Some(new_uniquifier()),
        ..Default::default()
    };
    // The welcome mail is queued in the transaction that creates the user:
    // both happen, or neither.
    let prospective = User::prospective(&new);
    let welcome = async {
        if !cfg.send_register_email {
            return None;
        }
        let mail = Outgoing {
            to: &prospective.email,
            subject: &cfg.email_subject_register,
            template: "welcome",
            context: Context::new(),
            about: Some(&prospective),
        };
        mail::render(&ctx, mail).await
    };
    let (hash, welcome) = tokio::join!(hash_given(&ctx, reg.password.as_deref()), welcome);
    new.password_hash = match hash {
        Ok(h) => h,
        Err(HashFailure::Busy) => return Reply::busy(ctx.state.passwords.wait()),
        Err(_) => {
            return Reply::error(rocket::http::Status::InternalServerError, Msg::ApiError);
        }
    };
    new.mails.extend(welcome);
    let mails = new.mails.clone();
    let user = match ctx.state.datastore.create_user(new).await {
        Ok(u) => u,
        // A concurrent registration of the same identity won.
        Err(DatastoreError::Conflict(_)) => {
            let msg = Message::new(Msg::EmailAlreadyAssociated).arg("email", &reg.email);
            let errors = FormErrors::one("email", msg);
            return ctx.invalid(&errors, |c, e| register_page(c, Some(&form), e));
        }
        Err(e) => return Reply::failed("creating the user", &e),
    };
    mail::written(ctx.state, mails).await;
    let attempt = Attempt::new(ctx.req, AuthnMethod::Register).form(&form);
    let outcome = login::sign_in(&ctx, user.clone(), &attempt).await;
    if let SignIn::Answer(reply) = outcome {
        return reply;
    }
    if !ctx.json() {
        if ctx.state.has_feature("confirm") {
            ctx.flash(Message::new(Msg::ConfirmRegistration).arg("email", &user.email));
        }
        return Reply::redirect(post_register_view(&ctx, cfg));
    }
    match outcome {
        SignIn::Done(issued) => Reply::ok(issued.payload(&ctx)),
        _ => Reply::ok(ctx.payload(Some(&user))),
    }
}

/// Generic mode: tells the owner of an address (or the registering address,
/// when the username was taken) that someone tried to register it.
async fn send_existing(ctx: &Ctx<'_>, cfg: &RegisterConfig, taken: &Taken, reg: &Registration) {
    let subject = &cfg.email_subject_register;
    match taken {
        Taken::Email(owner) => {
            mail::send(
                ctx,
                Outgoing {
                    to: &owner.email,
                    subject,
                    template: "welcome_existing",
                    context: Context::new(),
                    about: Some(owner),
                },
            )
            .await;
        }
        Taken::Username => {
            let mut c = Context::new();
            c.insert("email", &reg.email);
            c.insert("username", &reg.username.clone().unwrap_or_default());
            mail::send(
                ctx,
                Outgoing {
                    to: &reg.email,
                    subject,
                    template: "welcome_existing_username",
                    context: c,
                    about: None,
                },
            )
            .await;
        }
    }
}
