//! Outgoing mail: the [`Mailer`] trait, an SMTP transport (lettre), a
//! console transport for development, and [`send`], which renders a mail's
//! templates after every feature added what it has to the context.

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use rocket_dyn_templates::tera::Context;

use crate::config::MailConfig;
use crate::datastore::User;
use crate::http::Ctx;

pub(crate) mod outbox;

/// One mail, rendered. Its `Debug` leaves the bodies out: they hold links
/// that sign in or reset a password.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    /// Sender.
    pub from: String,
    /// Recipient.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: Option<String>,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from)
            .field("to", &self.to)
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Why a mail was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// A sender or recipient address did not parse.
    #[error("bad address: {0}")]
    Address(String),
    /// The message could not be built.
    #[error("cannot build message: {0}")]
    Build(String),
    /// The transport failed.
    #[error("transport error: {0}")]
    Transport(String),
}

/// Sends mail (Flask-Security's `MailUtil`). Implement it to use another
/// transport. With an outbox (the SeaORM datastore has one), `send` is
/// called by a background sender, with a time limit and retries; else during
/// the request.
#[rocket::async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Delivers `mail`.
    async fn send(&self, mail: Email) -> Result<(), MailError>;
}

/// How long the SMTP client waits to connect and for each reply. (The
/// outbox also bounds a whole delivery: `mail_send_timeout`.)
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// SMTP through lettre: plain, STARTTLS or implicit TLS.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer").finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer for `host:port`, plain SMTP (a local relay or test sink).
    pub fn plain(host: &str, port: u16) -> Self {
        SmtpMailer {
            transport: AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(port)
                .timeout(Some(COMMAND_TIMEOUT))
                .build(),
        }
    }

    /// A mailer from Flask-Mail style settings.
    pub fn from_config(cfg: &MailConfig) -> Result<Self, MailError> {
        let host = cfg.mail_server.as_deref().unwrap_or("localhost");
        let mut builder = if cfg.mail_use_ssl {
            AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| MailError::Transport(e.to_string()))?
        } else if cfg.mail_use_tls {
            AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| MailError::Transport(e.to_string()))?
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        };
        let default_port = if cfg.mail_use_ssl {
            465
        } else if cfg.mail_use_tls {
            587
        } else {
            25
        };
        builder = builder
            .port(cfg.mail_port.unwrap_or(default_port))
            .timeout(Some(COMMAND_TIMEOUT));
        if let (Some(user), Some(pass)) = (&cfg.mail_username, &cfg.mail_password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
        })
    }
}

/// Builds the MIME message of `mail`.
pub(crate) fn build_message(mail: &Email) -> Result<Message, MailError> {
    let from: Mailbox = mail
        .from
        .parse()
        .map_err(|_| MailError::Address(mail.from.clone()))?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|_| MailError::Address(mail.to.clone()))?;
    let builder = Message::builder()
        .from(from)
        .to(to)
        .subject(mail.subject.clone());
    let msg = match &mail.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            html.clone(),
        )),
        None => builder.body(mail.text.clone()),
    };
    msg.map_err(|e| MailError::Build(e.to_string()))
}

#[rocket::async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Email) -> Result<(), MailError> {
        let msg = build_message(&mail)?;
        self.transport
            .send(msg)
            .await
            .map_err(|e| MailError::Transport(e.to_string()))?;
        Ok(())
    }
}

/// Prints mails to standard output (development without a mail server).
#[derive(Debug, Default, Clone, Copy)]
pub struct ConsoleMailer;

#[rocket::async_trait]
impl Mailer for ConsoleMailer {
    async fn send(&self, mail: Email) -> Result<(), MailError> {
        println!(
            "----- mail -----\nFrom: {}\nTo: {}\nSubject: {}\n\n{}\n----------------",
            mail.from, mail.to, mail.subject, mail.text
        );
        Ok(())
    }
}

/// Adds to the context of mails other features send (a confirmation link in
/// the welcome mail, a reset link in the change notice, ...).
#[rocket::async_trait]
pub(crate) trait MailContext: Send + Sync + 'static {
    /// Adds what this feature has for mail `template` about `user`.
    async fn extend(&self, ctx: &Ctx<'_>, template: &str, user: &User, context: &mut Context);
}

/// One mail to send: template `security/email/<template>.{txt,html}.tera`.
pub(crate) struct Outgoing<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub template: &'static str,
    pub context: Context,
    /// The user the mail is about: features extend its context, and it gets
    /// `email` and `user` (the security payload).
    pub about: Option<&'a User>,
}

/// The context every mail about `user` starts from.
fn user_context(user: &User, context: &mut Context) {
    if !context.contains_key("email") {
        context.insert("email", &user.email);
    }
    context.insert("user", user.security_payload());
}

/// Renders `mail` after every feature added to its context; `None` (logged)
/// when a template fails.
pub(crate) async fn render(ctx: &Ctx<'_>, mail: Outgoing<'_>) -> Option<Email> {
    let Outgoing {
        to,
        subject,
        template,
        mut context,
        about,
    } = mail;
    if let Some(user) = about {
        user_context(user, &mut context);
        for hook in &ctx.state.hooks.mail_context {
            hook.extend(ctx, template, user, &mut context).await;
        }
    }
    let state = ctx.state;
    match state.templates.render_email(template, &context) {
        Ok((text, html)) => Some(Email {
            from: state.config.email_sender.clone(),
            to: to.to_string(),
            subject: subject.to_string(),
            text,
            html,
        }),
        Err(e) => {
            log::error!("rendering the {template} mail failed: {e}");
            None
        }
    }
}

/// Renders `mail` and hands it over for delivery (see [`deliver`]); whether
/// it was accepted.
pub(crate) async fn send(ctx: &Ctx<'_>, mail: Outgoing<'_>) -> bool {
    match render(ctx, mail).await {
        Some(email) => deliver(ctx.state, vec![email]).await,
        None => false,
    }
}

/// Hands rendered mails over: into the outbox, for the background sender
/// (no request waits on SMTP), or, when the datastore has no outbox, to the
/// mailer right away. Whether they were accepted (failures are logged).
pub(crate) async fn deliver(state: &crate::state::SecurityState, mails: Vec<Email>) -> bool {
    if mails.is_empty() {
        return true;
    }
    match &state.outbox {
        Some(outbox) => match outbox.store.enqueue(&mails, state.clock.now_secs()).await {
            Ok(()) => {
                outbox.wake();
                true
            }
            Err(e) => {
                log::error!("queueing mail failed: {e}");
                false
            }
        },
        None => {
            let mut all = true;
            for mail in mails {
                let to = mail.to.clone();
                if let Err(e) = state.mailer.send(mail).await {
                    log::error!("sending mail to {to} failed: {e}");
                    all = false;
                }
            }
            all
        }
    }
}

/// After a write that carried `mails` (queued in its transaction when there
/// is an outbox): wakes the sender, or sends them now when there is none.
pub(crate) async fn written(state: &crate::state::SecurityState, mails: Vec<Email>) {
    match &state.outbox {
        Some(outbox) if !mails.is_empty() => outbox.wake(),
        Some(_) => {}
        None => {
            deliver(state, mails).await;
        }
    }
}
