//! What a library endpoint (or a custom handler) answers. Messages inside a
//! reply are rendered here, when the response is written, from the
//! request's catalogue.

use std::io::Cursor;

use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use rocket_dyn_templates::tera::Context;
use serde_json::{Map, Value, json};

use super::form::FormErrors;
use super::want_json;
use crate::messages::{Catalogue, Message};
use crate::state::SecurityState;

/// A reply in Flask-Security's wire format, or the application's own.
///
/// ```
/// use flask_security_rs::Reply;
/// use rocket::http::Status;
///
/// // A custom unauthorized handler answering with its own, unwrapped body:
/// let reply = Reply::custom(Status::Forbidden, serde_json::json!({"status": 403, "msgs": ["Not permitted"]}));
/// # let _ = reply;
/// ```
#[derive(Debug)]
pub struct Reply(Box<Kind>);

#[derive(Debug)]
pub(crate) enum Kind {
    /// `{"meta": {"code": status}, "response": body}`.
    Json(Status, Map<String, Value>),
    /// The envelope with `errors: [message]` plus `extra` fields.
    Error(Status, Message, Map<String, Value>),
    /// 400 with `errors` and `field_errors`.
    Form(FormErrors),
    /// 302 to a location.
    Redirect(String),
    /// 302 to a SPA view with the outcome in the query string.
    SpaRedirect(String, Vec<(&'static str, Param)>),
    /// A page rendered from a template.
    Page(Page),
    /// Static HTML.
    Html(Status, String),
    /// The application's own JSON, not wrapped in the envelope.
    Custom(Status, Value),
    /// 503: a bounded resource (password hashing) is saturated; retry after
    /// this many seconds.
    Busy(u64),
    /// 429: failed authentications are throttled; retry after this many
    /// seconds. JSON: the envelope with `errors: [message]` and
    /// `retry_after`; HTML: the page, when given, else a short one.
    Throttled(u64, Message, Option<Reply>),
}

/// A query parameter of a SPA redirect.
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Plain(String),
    Msg(Message),
}

/// A page to render: template, its context, the form's errors and, when
/// given, the messages to show instead of the queued flashes.
#[derive(Debug)]
pub(crate) struct Page {
    pub status: Status,
    pub template: &'static str,
    pub context: Context,
    pub errors: FormErrors,
    pub messages: Option<Vec<Message>>,
}

impl Reply {
    fn of(kind: Kind) -> Self {
        Reply(Box::new(kind))
    }

    /// A 200 reply in Flask-Security's envelope.
    pub fn ok(body: Map<String, Value>) -> Self {
        Reply::of(Kind::Json(Status::Ok, body))
    }

    /// A JSON reply in the envelope.
    pub fn json(status: Status, body: Map<String, Value>) -> Self {
        Reply::of(Kind::Json(status, body))
    }

    /// An error in the envelope: `{"errors": [message]}`.
    pub fn error(status: Status, message: impl Into<Message>) -> Self {
        Reply::of(Kind::Error(status, message.into(), Map::new()))
    }

    /// The application's own JSON body and status, sent as they are.
    pub fn custom(status: Status, body: Value) -> Self {
        Reply::of(Kind::Custom(status, body))
    }

    /// A 302 redirect.
    pub fn redirect(to: impl Into<String>) -> Self {
        Reply::of(Kind::Redirect(to.into()))
    }

    /// Static HTML.
    pub fn html(status: Status, html: impl Into<String>) -> Self {
        Reply::of(Kind::Html(status, html.into()))
    }

    /// 503 with `Retry-After`: the server is saturated, not the caller wrong.
    pub(crate) fn busy(retry_after: std::time::Duration) -> Self {
        Reply::of(Kind::Busy(whole_secs(retry_after)))
    }

    /// 429 with `Retry-After`: too many failed authentications. `page` is
    /// what an HTML caller sees (the form re-rendered with `message`).
    pub(crate) fn throttled(
        retry_after: std::time::Duration,
        message: Message,
        page: Option<Reply>,
    ) -> Self {
        Reply::of(Kind::Throttled(whole_secs(retry_after), message, page))
    }

    pub(crate) fn error_with(status: Status, message: Message, extra: Map<String, Value>) -> Self {
        Reply::of(Kind::Error(status, message, extra))
    }

    pub(crate) fn form(errors: FormErrors) -> Self {
        if errors.is_unavailable() {
            return Reply::unavailable();
        }
        Reply::of(Kind::Form(errors))
    }

    /// A generic 503 for a failure on our side (database, ...), already
    /// logged: never a 4xx that blames the caller.
    pub(crate) fn unavailable() -> Self {
        Reply::of(Kind::Busy(1))
    }

    /// Logs `err` (while doing `what`) and answers [`Reply::unavailable`].
    pub(crate) fn failed(what: &str, err: &dyn std::fmt::Display) -> Self {
        log::error!("{what} failed: {err}");
        Reply::unavailable()
    }

    pub(crate) fn page(page: Page) -> Self {
        Reply::of(Kind::Page(page))
    }

    pub(crate) fn spa(view: String, params: Vec<(&'static str, Param)>) -> Self {
        Reply::of(Kind::SpaRedirect(view, params))
    }

    /// The status this reply will have.
    pub fn status(&self) -> Status {
        match self.0.as_ref() {
            Kind::Json(s, _) | Kind::Error(s, _, _) | Kind::Html(s, _) | Kind::Custom(s, _) => *s,
            Kind::Form(_) => Status::BadRequest,
            Kind::Busy(_) => Status::ServiceUnavailable,
            Kind::Throttled(..) => Status::TooManyRequests,
            Kind::Redirect(_) | Kind::SpaRedirect(..) => Status::Found,
            Kind::Page(p) => p.status,
        }
    }
}

/// The text of a 503: generic, the caller did nothing wrong.
const BUSY: &str = "The service is temporarily unavailable; please try again shortly.";

/// A `Retry-After` value: whole seconds, at least 1.
fn whole_secs(d: std::time::Duration) -> u64 {
    d.as_secs_f64().ceil().max(1.0) as u64
}

/// The JSON envelope around a response body.
fn envelope(status: Status, body: Map<String, Value>) -> String {
    #[derive(serde::Serialize)]
    struct Meta {
        code: u16,
    }
    #[derive(serde::Serialize)]
    struct Envelope {
        meta: Meta,
        response: Map<String, Value>,
    }
    let env = Envelope {
        meta: Meta { code: status.code },
        response: body,
    };
    let mut out = Vec::with_capacity(256);
    match serde_json::to_writer(&mut out, &env) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn spa_location(view: &str, redirect_host: Option<&str>, params: Vec<(&str, String)>) -> String {
    let mut enc = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &params {
        enc.append_pair(k, v);
    }
    let q = enc.finish();
    let base = match redirect_host {
        Some(h) if view.starts_with('/') => format!("//{h}{view}"),
        _ => view.to_string(),
    };
    if q.is_empty() {
        base
    } else {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}{q}")
    }
}

fn render_page(req: &Request<'_>, state: &SecurityState, page: Page) -> (Status, String) {
    let cat = &state.messages;
    let Page {
        status,
        template,
        mut context,
        errors,
        messages,
    } = page;
    context.insert("csrf_token", &crate::authn::csrf::generate(req, state));
    let mut map = errors.to_map(cat);
    let form_level = map.remove("").unwrap_or_else(|| Value::Array(Vec::new()));
    context.insert("errors", &map);
    let shown = messages.unwrap_or_else(|| crate::authn::session::take_flashes(req));
    let shown: Vec<Value> = shown
        .iter()
        .map(|m| json!({"category": m.category(cat).as_str(), "text": m.render(cat)}))
        .collect();
    context.insert("messages", &shown);
    context.insert("form_errors", &form_level);
    context.insert("login_url", &state.config.url("/login"));
    context.insert("username_enable", &state.config.username_enable);
    for (name, url) in &state.urls {
        context.insert(format!("{name}_url"), url);
    }
    match state.templates.render(template, &context) {
        Ok(html) => (status, html),
        Err(e) => {
            log::error!("rendering {template} failed: {e}");
            (Status::InternalServerError, "template error".into())
        }
    }
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let state = SecurityState::of(req);
        let default = Catalogue::default();
        let cat = state.map(|s| &s.messages).unwrap_or(&default);
        let cache = state
            .map(|s| s.config.cache_control.as_str())
            .unwrap_or("private, no-store")
            .to_string();
        let mut res = Response::build();
        res.header(Header::new("Cache-Control", cache));
        res.header(Header::new("Vary", "Cookie"));
        let json = |res: &mut rocket::response::Builder<'static>, status: Status, text: String| {
            res.status(status)
                .header(ContentType::JSON)
                .sized_body(text.len(), Cursor::new(text));
        };
        match *self.0 {
            Kind::Json(status, body) => json(&mut res, status, envelope(status, body)),
            Kind::Error(status, message, mut extra) => {
                let mut body = Map::new();
                body.insert("errors".into(), json!([message.render(cat)]));
                body.append(&mut extra);
                json(&mut res, status, envelope(status, body))
            }
            Kind::Form(errors) => {
                let status = Status::BadRequest;
                json(&mut res, status, envelope(status, errors.to_response(cat)))
            }
            Kind::Custom(status, body) => json(&mut res, status, body.to_string()),
            Kind::Busy(secs) => {
                let status = Status::ServiceUnavailable;
                res.header(Header::new("Retry-After", secs.to_string()));
                if want_json(req) {
                    let body = json!({"errors": [BUSY]});
                    let body = body.as_object().cloned().unwrap_or_default();
                    json(&mut res, status, envelope(status, body));
                } else {
                    let html = format!("<h1>Service Unavailable</h1><p>{BUSY}</p>");
                    res.status(status)
                        .header(ContentType::HTML)
                        .sized_body(html.len(), Cursor::new(html));
                }
            }
            Kind::Throttled(secs, message, page) => {
                let status = Status::TooManyRequests;
                let retry = Header::new("Retry-After", secs.to_string());
                match page {
                    Some(page) if !want_json(req) => {
                        let mut inner = page.respond_to(req)?;
                        inner.set_status(status);
                        inner.set_header(retry);
                        return Ok(inner);
                    }
                    _ => {}
                }
                res.header(retry);
                let text = message.render(cat);
                if want_json(req) {
                    let body = json!({"errors": [text], "retry_after": secs});
                    let body = body.as_object().cloned().unwrap_or_default();
                    json(&mut res, status, envelope(status, body));
                } else {
                    let html = format!("<h1>Too Many Requests</h1><p>{text}</p>");
                    res.status(status)
                        .header(ContentType::HTML)
                        .sized_body(html.len(), Cursor::new(html));
                }
            }
            Kind::Redirect(to) => {
                res.status(Status::Found)
                    .header(Header::new("Location", to));
            }
            Kind::SpaRedirect(view, params) => {
                let params = params
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Param::Plain(s) => s,
                            Param::Msg(m) => m.render(cat),
                        };
                        (k, v)
                    })
                    .collect();
                let host = state.and_then(|s| s.config.redirect_host.as_deref());
                res.status(Status::Found)
                    .header(Header::new("Location", spa_location(&view, host, params)));
            }
            Kind::Page(page) => {
                let (status, html) = match state {
                    Some(state) => render_page(req, state, page),
                    None => (Status::InternalServerError, "template error".into()),
                };
                res.status(status)
                    .header(ContentType::HTML)
                    .sized_body(html.len(), Cursor::new(html));
            }
            Kind::Html(status, html) => {
                res.status(status)
                    .header(ContentType::HTML)
                    .sized_body(html.len(), Cursor::new(html));
            }
        }
        Ok(res.finalize())
    }
}
