//! [`Ctx`]: the request and the library state, as every feature handler
//! gets them, with the few helpers every handler needs.

use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket_dyn_templates::tera::Context;
use serde_json::{Map, Value};

use super::reply::{Page, Param};
use super::{BadBody, FormErrors, FormInput, Reply, want_json};
use crate::datastore::User;
use crate::guards;
use crate::messages::{Message, Msg};
use crate::state::SecurityState;
use crate::{SecurityConfig, authn};

/// What every handler needs: the request and the library state.
pub(crate) struct Ctx<'r> {
    pub req: &'r Request<'r>,
    pub state: &'r SecurityState,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Ctx<'r> {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match SecurityState::of(req) {
            // An untrusted `Host` gets nothing, above all no mail with links to it.
            Some(state) if !host_ok(req, state) => Outcome::Error((Status::BadRequest, ())),
            Some(state) => Outcome::Success(Ctx { req, state }),
            None => Outcome::Error((Status::InternalServerError, ())),
        }
    }
}

/// Whether the request's `Host` is one `trusted_hosts` allows (a request
/// without one is refused when the list is set).
fn host_ok(req: &Request<'_>, state: &SecurityState) -> bool {
    if state.config.trusted_hosts.is_none() {
        return true;
    }
    match req.host() {
        // The header as sent (what Rocket parsed it from) spares formatting
        // the parsed form; HTTP/2 has only the authority.
        Some(h) => match req.headers().get_one("Host") {
            Some(raw) => state.config.host_trusted(raw),
            None => state.config.host_trusted(&h.to_string()),
        },
        None => false,
    }
}

impl<'r> Ctx<'r> {
    /// Whether the caller wants JSON.
    pub fn json(&self) -> bool {
        want_json(self.req)
    }

    /// The kernel configuration.
    pub fn config(&self) -> &'r SecurityConfig {
        &self.state.config
    }

    /// `{csrf_token}` plus `user` (`get_security_payload()`).
    pub fn payload(&self, user: Option<&User>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "csrf_token".into(),
            Value::String(authn::csrf::generate(self.req, self.state)),
        );
        if let Some(u) = user {
            m.insert("user".into(), Value::Object(u.security_payload().clone()));
        }
        m
    }

    /// A page rendered (when the reply is written) from `template`.
    pub fn page(&self, template: &'static str, context: Context, errors: &FormErrors) -> Reply {
        Reply::page(Page {
            status: Status::Ok,
            template,
            context,
            errors: errors.clone(),
            messages: None,
        })
    }

    /// The context of a form page posting back to this URL, with the
    /// submitted values of `fields` (empty when there was no form).
    pub fn form_context(&self, form: Option<&FormInput>, fields: &[&str]) -> Context {
        let mut c = Context::new();
        c.insert("action", &self.req.uri().to_string());
        for name in fields {
            let value = form.and_then(|f| f.text(name).ok().flatten());
            c.insert(*name, &value.unwrap_or_default());
        }
        c
    }

    /// The body of an endpoint that authenticates first: its parse error
    /// (400, 413) is answered only once the caller is known.
    pub fn body(&self, form: Result<FormInput, BadBody>) -> Result<FormInput, Reply> {
        form.map_err(|BadBody(status)| {
            if self.json() {
                Reply::error(status, Msg::ApiError)
            } else {
                let text = self.state.messages.text(Msg::ApiError);
                Reply::html(
                    status,
                    format!("<h1>{}</h1><p>{text}</p>", status.reason_lossy()),
                )
            }
        })
    }

    /// A SPA redirect to `view` with the outcome in the query string.
    pub fn spa(&self, view: &str, params: Vec<(&'static str, Param)>) -> Reply {
        Reply::spa(view.to_string(), params)
    }

    /// Queues a flash message for the next HTML page.
    pub fn flash(&self, msg: impl Into<Message>) {
        authn::session::flash(self.req, self.state, msg.into());
    }

    /// The form's errors as JSON, or the page showing them.
    pub fn invalid(
        &self,
        errors: &FormErrors,
        page: impl FnOnce(&Self, &FormErrors) -> Reply,
    ) -> Reply {
        if self.json() || errors.is_unavailable() {
            Reply::form(errors.clone())
        } else {
            page(self, errors)
        }
    }

    /// 429 with `Retry-After` for a throttled attempt: the JSON error, or
    /// the form re-rendered with `message` as its error.
    pub fn throttled(
        &self,
        retry_after: std::time::Duration,
        message: Message,
        page: impl FnOnce(&Self, &FormErrors) -> Reply,
    ) -> Reply {
        let form = (!self.json()).then(|| page(self, &FormErrors::one("", message.clone())));
        Reply::throttled(retry_after, message, form)
    }

    /// GET of a form usable anonymously: `{csrf_token}` as JSON, else the page.
    pub fn form_get(&self, page: impl FnOnce(&Self, &FormErrors) -> Reply) -> Reply {
        if self.json() {
            Reply::ok(self.payload(None))
        } else {
            page(self, &FormErrors::new())
        }
    }

    /// CSRF for endpoints usable anonymously (`unauth_csrf`): the reply to
    /// send when it fails.
    pub async fn unauth_csrf(&self, form: &FormInput) -> Result<(), Reply> {
        if !authn::csrf::is_unsafe(self.req.method()) {
            return Ok(());
        }
        let user = authn::current_user(self.req).await;
        if user.is_none() && self.config().csrf_ignore_unauth_endpoints {
            return Ok(());
        }
        let token = form.text("csrf_token").ok().flatten();
        authn::csrf::validate(self.req, self.state, token.as_deref())
            .map_err(|e| self.csrf_failed(e.message()))
    }

    /// The answer to a failed CSRF check.
    pub fn csrf_failed(&self, msg: Msg) -> Reply {
        if self.json() {
            Reply::error(Status::BadRequest, msg)
        } else {
            let text = self.state.messages.text(msg);
            Reply::html(
                Status::BadRequest,
                format!("<h1>Bad Request</h1><p>{text}</p>"),
            )
        }
    }

    /// Refuses an authenticated caller of an anonymous-only endpoint.
    pub async fn anonymous_only(&self) -> Result<(), Reply> {
        if authn::current_user(self.req).await.is_none() {
            return Ok(());
        }
        Err(if self.json() {
            Reply::error(Status::BadRequest, Msg::AnonymousUserRequired)
        } else {
            Reply::redirect(self.config().post_login_view.clone())
        })
    }

    /// Absolute URL of a library path, for links in mails.
    /// The host is `server_name` when set, else the request's (trusted)
    /// `Host`.
    pub fn external_url(&self, path: &str) -> String {
        let cfg = self.config();
        let host = match &cfg.server_name {
            Some(name) => name.clone(),
            None => self
                .req
                .host()
                .map(|h| h.to_string())
                .unwrap_or_else(|| "localhost".into()),
        };
        let scheme = match cfg.preferred_url_scheme.as_deref() {
            Some(s) => s,
            None if self.req.rocket().config().tls_enabled() => "https",
            None => "http",
        };
        format!("{scheme}://{host}{}", cfg.url(path))
    }

    /// Authenticates by `api_enabled_methods` and, when `fresh`, checks
    /// freshness (`freshness` / `freshness_grace_period`). On failure the
    /// reason is recorded for the catcher and its status returned.
    pub async fn require_user(&self, fresh: bool) -> Result<std::sync::Arc<User>, Status> {
        let (within, grace) = if fresh {
            (
                self.config().freshness,
                self.config().freshness_grace_period,
            )
        } else {
            (-1, -1)
        };
        match guards::authenticate(self.req, 0, within, grace).await {
            Ok((user, _)) => Ok(user),
            Err(refusal) => {
                let status = refusal.status();
                guards::record(self.req, refusal);
                Err(status)
            }
        }
    }
}
