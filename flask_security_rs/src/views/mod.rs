//! The library's endpoints, mounted by the fairing under `url_prefix`.

mod change;
mod change_email;
mod confirm;
mod login;
mod recover;
mod register;
mod username;

use rocket::Route;
use rocket::http::Status;
use rocket::outcome::Outcome;
use rocket::request::{self, FromRequest, Request};
use rocket_dyn_templates::tera::Context;
use serde_json::{Map, Value};

use crate::csrf::{self, CsrfError};
use crate::datastore::User;
use crate::reply::{FormErrors, FormInput, NotAString, Reply, query_has, want_json};
use crate::{SecurityState, auth, messages};

/// Routes of the enabled features.
pub(crate) fn routes(config: &crate::SecurityConfig) -> Vec<Route> {
    let mut r = login::routes();
    if config.registerable {
        r.extend(register::routes());
    }
    if config.confirmable {
        r.extend(confirm::routes());
    }
    if config.recoverable {
        r.extend(recover::routes());
    }
    if config.changeable {
        r.extend(change::routes());
    }
    if config.change_email {
        r.extend(change_email::routes());
    }
    if config.change_username {
        r.extend(username::change_routes());
    }
    if config.username_recovery {
        r.extend(username::recovery_routes());
    }
    let extra = method_routes(&r);
    r.extend(extra);
    r
}

/// For every library path: `OPTIONS` answering with `Allow`, and 405 with
/// `Allow` for the methods the path does not take (Rocket alone says 404).
fn method_routes(routes: &[Route]) -> Vec<Route> {
    use rocket::http::Method;
    let mut by_path: std::collections::BTreeMap<String, Vec<Method>> = Default::default();
    for r in routes {
        by_path
            .entry(r.uri.path().to_string())
            .or_default()
            .push(r.method);
    }
    let mut out = Vec::new();
    for (path, mut methods) in by_path {
        if methods.contains(&Method::Get) {
            methods.push(Method::Head);
        }
        methods.push(Method::Options);
        methods.sort_by_key(|m| m.as_str());
        methods.dedup();
        let allow = methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for m in [
            Method::Get,
            Method::Post,
            Method::Put,
            Method::Delete,
            Method::Patch,
            Method::Options,
        ] {
            if m != Method::Options && methods.contains(&m) {
                continue;
            }
            let handler = MethodAnswer {
                allow: allow.clone(),
                options: m == Method::Options,
            };
            out.push(Route::ranked(100, m, &path, handler));
        }
    }
    out
}

#[derive(Clone)]
struct MethodAnswer {
    allow: String,
    options: bool,
}

#[rocket::async_trait]
impl rocket::route::Handler for MethodAnswer {
    async fn handle<'r>(
        &self,
        _req: &'r Request<'_>,
        _data: rocket::Data<'r>,
    ) -> rocket::route::Outcome<'r> {
        let status = if self.options {
            Status::Ok
        } else {
            Status::MethodNotAllowed
        };
        let res = rocket::Response::build()
            .status(status)
            .header(rocket::http::Header::new("Allow", self.allow.clone()))
            .finalize();
        rocket::outcome::Outcome::Success(res)
    }
}

/// What every handler needs: the request and the library state.
pub(crate) struct Ctx<'r> {
    pub req: &'r Request<'r>,
    pub state: &'r SecurityState,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Ctx<'r> {
    type Error = ();

    async fn from_request(req: &'r Request<'_>) -> request::Outcome<Self, ()> {
        match req.rocket().state::<SecurityState>() {
            Some(state) => Outcome::Success(Ctx { req, state }),
            None => Outcome::Error((Status::InternalServerError, ())),
        }
    }
}

impl<'r> Ctx<'r> {
    pub fn json(&self) -> bool {
        want_json(self.req)
    }

    pub fn config(&self) -> &'r crate::SecurityConfig {
        &self.state.config
    }

    /// A fresh signed CSRF token of this session.
    pub fn csrf_token(&self) -> String {
        csrf::generate(self.req, self.state)
    }

    /// `{csrf_token}` plus `user` (`get_security_payload()`).
    pub fn payload(&self, user: Option<&User>) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("csrf_token".into(), Value::String(self.csrf_token()));
        if let Some(u) = user {
            m.insert("user".into(), Value::Object(u.security_payload().clone()));
        }
        m
    }

    /// The payload of an endpoint that has just authenticated `user`: `user`
    /// also holds a new auth token when the query has `include_auth_token`.
    pub fn authenticated_payload(&self, user: &User) -> Map<String, Value> {
        let mut m = self.payload(Some(user));
        if query_has(self.req, "include_auth_token")
            && let Some(Value::Object(u)) = m.get_mut("user")
        {
            u.insert(
                "authentication_token".into(),
                Value::String(auth::auth_token(self.state, user)),
            );
        }
        m
    }

    /// CSRF for endpoints usable anonymously (`unauth_csrf`).
    pub async fn unauth_csrf(&self, form: &FormInput) -> Result<(), CsrfError> {
        if !csrf::is_unsafe(self.req.method()) {
            return Ok(());
        }
        let user = auth::current_user(self.req).await;
        if user.is_none() && self.config().csrf_ignore_unauth_endpoints {
            return Ok(());
        }
        let token = form.text("csrf_token").ok().flatten();
        csrf::validate(self.req, self.state, token.as_deref())
    }

    /// The answer to a failed CSRF check.
    pub fn csrf_failed(&self, e: CsrfError) -> Reply {
        if self.json() {
            Reply::error(Status::BadRequest, &e.to_string())
        } else {
            Reply::Html(
                Status::BadRequest,
                format!("<h1>Bad Request</h1><p>{e}</p>"),
            )
        }
    }

    /// The answer when an authenticated caller uses an anonymous-only endpoint.
    pub fn anonymous_required(&self) -> Reply {
        if self.json() {
            Reply::error(Status::BadRequest, messages::ANONYMOUS_USER_REQUIRED)
        } else {
            Reply::Redirect(self.config().post_login_view.clone())
        }
    }

    /// `scheme://host` of this request, for links in mails.
    pub fn host_url(&self) -> String {
        let host = self
            .req
            .host()
            .map(|h| h.to_string())
            .unwrap_or_else(|| "localhost".into());
        let scheme = if self.req.rocket().config().tls_enabled() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{host}")
    }

    /// Absolute URL of a library path.
    pub fn external_url(&self, path: &str) -> String {
        format!("{}{}", self.host_url(), self.config().url(path))
    }

    /// Renders a page template with the common context.
    pub fn page(&self, template: &str, mut ctx: Context, errors: &FormErrors) -> Reply {
        ctx.insert("csrf_token", &self.csrf_token());
        let mut map = errors.to_map();
        let form_level = map.remove("").unwrap_or_else(|| Value::Array(Vec::new()));
        ctx.insert("errors", &map);
        if !ctx.contains_key("messages") {
            let flashes: Vec<Value> = crate::session::take_flashes(self.req)
                .into_iter()
                .map(|(category, text)| serde_json::json!({"category": category, "text": text}))
                .collect();
            ctx.insert("messages", &flashes);
        }
        ctx.insert("form_errors", &form_level);
        ctx.insert("login_url", &self.config().url("/login"));
        ctx.insert("username_enable", &self.config().username_enable);
        match self.state.templates.render(template, &ctx) {
            Ok(html) => Reply::Html(Status::Ok, html),
            Err(e) => {
                log::error!("rendering {template} failed: {e}");
                Reply::Html(Status::InternalServerError, "template error".into())
            }
        }
    }

    /// A SPA redirect: `view?k=v&...` form-encoded.
    pub fn redirect_with(&self, view: &str, params: &[(&str, &str)]) -> Reply {
        let mut enc = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in params {
            enc.append_pair(k, v);
        }
        let q = enc.finish();
        let base = match &self.config().redirect_host {
            Some(h) if view.starts_with('/') => format!("//{h}{view}"),
            _ => view.to_string(),
        };
        if q.is_empty() {
            Reply::Redirect(base)
        } else {
            let sep = if base.contains('?') { '&' } else { '?' };
            Reply::Redirect(format!("{base}{sep}{q}"))
        }
    }
}

impl<'r> Ctx<'r> {
    /// Queues a flash message for the next HTML page.
    pub fn flash(&self, category: &str, text: impl Into<String>) {
        crate::session::flash(self.req, category, text);
    }

    /// Authenticates by the configured methods and, when `fresh`, checks
    /// freshness (`freshness` / `freshness_grace_period`). On failure the
    /// reason is recorded for the catcher and its status returned.
    pub async fn require_user(&self, fresh: bool) -> Result<User, Status> {
        let (within, grace) = if fresh {
            (
                self.config().freshness,
                self.config().freshness_grace_period,
            )
        } else {
            (-1, -1)
        };
        match crate::guard::authenticate(self.req, 0, within, grace).await {
            Ok((user, _)) => Ok(user),
            Err(f) => {
                let status = match f {
                    crate::guard::Failure::Unauthorized => Status::Forbidden,
                    crate::guard::Failure::Csrf(_) | crate::guard::Failure::AnonymousRequired => {
                        Status::BadRequest
                    }
                    _ => Status::Unauthorized,
                };
                crate::guard::set_failure(self.req, f);
                Err(status)
            }
        }
    }

    /// Sends a mail, logging failures.
    pub async fn mail(&self, to: &str, subject: &str, template: &str, ctx: &Context) -> bool {
        match self.state.send_mail(to, subject, template, ctx).await {
            Ok(()) => true,
            Err(e) => {
                log::error!("sending {template} mail failed: {e}");
                false
            }
        }
    }

    /// GET of a form usable anonymously: `{csrf_token}` as JSON, else the page.
    pub fn form_get(&self, page: impl FnOnce(&Self, &FormErrors) -> Reply) -> Reply {
        if self.json() {
            Reply::ok(self.payload(None))
        } else {
            page(self, &FormErrors::new())
        }
    }

    /// Form-level result for HTML or JSON, sharing one path.
    pub fn invalid(
        &self,
        errors: &FormErrors,
        page: impl FnOnce(&Self, &FormErrors) -> Reply,
    ) -> Reply {
        if self.json() {
            Reply::form_errors(errors)
        } else {
            page(self, errors)
        }
    }

    /// The password policy's verdict for `password` of a user with `inputs`
    /// (email, username): errors to put on the password field.
    pub async fn password_errors(&self, password: &str, inputs: &[&str]) -> Vec<String> {
        self.state.policy.validate(password, inputs).await
    }
}

/// A new password and its confirmation (Required + EqualTo in WTForms terms).
pub(crate) fn password_pair(
    form: &FormInput,
    field: &str,
    confirm_field: &str,
    errors: &mut FormErrors,
) -> Option<String> {
    let not_string = form.text(field).is_err();
    let password = text(form, field, errors);
    let confirm = text(form, confirm_field, errors);
    if password.is_none() && !errors.has(field) {
        errors.add(field, messages::PASSWORD_NOT_PROVIDED);
    }
    match &confirm {
        None if !errors.has(confirm_field) => {
            errors.add(confirm_field, messages::PASSWORD_NOT_PROVIDED)
        }
        Some(c) if !not_string && password.as_deref() != Some(c.as_str()) => {
            errors.add(confirm_field, messages::RETYPE_PASSWORD_MISMATCH)
        }
        _ => {}
    }
    password
}

/// Stores a new password and a new `fs_uniquifier` (ending every session,
/// token and outstanding link of the user); returns the updated user.
pub(crate) async fn store_new_password(
    ctx: &Ctx<'_>,
    user: User,
    password: &str,
) -> Result<User, Reply> {
    let failed = || Reply::error(Status::InternalServerError, messages::API_ERROR);
    let hash = ctx.state.hash_password(password).await.ok_or_else(failed)?;
    let uniq = crate::datastore::new_uniquifier();
    let changes = vec![
        (
            crate::UserField::Password,
            sea_orm::Value::String(Some(hash)),
        ),
        (
            crate::UserField::FsUniquifier,
            sea_orm::Value::String(Some(uniq.clone())),
        ),
    ];
    if let Err(e) = ctx.state.datastore.update_user(user.id, changes).await {
        log::error!("storing the new password failed: {e}");
        return Err(failed());
    }
    Ok(User {
        fs_uniquifier: uniq,
        ..user
    })
}

/// The context every mail about `user` starts from: `email`, and `user` (the
/// security payload).
pub(crate) fn mail_context(user: &User) -> Context {
    let mut c = Context::new();
    c.insert("email", &user.email);
    c.insert("user", user.security_payload());
    c
}

/// Reads a text field, recording `API_ERROR` when it is not a string.
pub(crate) fn text(form: &FormInput, name: &str, errors: &mut FormErrors) -> Option<String> {
    match form.text(name) {
        Ok(v) => v,
        Err(NotAString) => {
            errors.add(name, messages::API_ERROR);
            None
        }
    }
}

/// Flask-Security's `validate_redirect_url`: relative targets, or absolute
/// ones on this request's host only.
pub(crate) fn redirect_allowed(req: &Request<'_>, target: &str) -> bool {
    if target.trim().is_empty() {
        return false;
    }
    let url = target;
    if url.starts_with("///") || url.replace('\\', "/").starts_with("///") {
        return false;
    }
    // Split like Python's urlsplit: leading C0/space stripped, tabs and newlines removed.
    let cleaned: String = url
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .collect();
    let (scheme, rest) = match cleaned.find(':') {
        Some(i)
            if i > 0
                && cleaned[..i].starts_with(|c: char| c.is_ascii_alphabetic())
                && cleaned[..i]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            (&cleaned[..i], &cleaned[i + 1..])
        }
        _ => ("", cleaned.as_str()),
    };
    let netloc = rest
        .strip_prefix("//")
        .map(|r| r.split(['/', '?', '#']).next().unwrap_or(""))
        .unwrap_or("");
    if scheme.is_empty() && netloc.is_empty() {
        return true;
    }
    match req.host() {
        Some(h) => !netloc.is_empty() && netloc.eq_ignore_ascii_case(&h.to_string()),
        None => false,
    }
}

/// `next` from the form, else the query string; empty means absent.
pub(crate) fn next_param(
    form: &FormInput,
    req: &Request<'_>,
    errors: &mut FormErrors,
) -> Option<String> {
    text(form, "next", errors)
        .or_else(|| crate::reply::query_value(req, "next"))
        .filter(|n| !n.trim().is_empty())
}

/// A validated `next` made safe to put in `Location`: characters a browser
/// would reinterpret (backslashes, spaces, controls, non-ASCII) are
/// percent-encoded, so `\\evil.com` stays a relative path.
pub(crate) fn redirect_target(next: &str) -> String {
    let mut out = String::with_capacity(next.len());
    for b in next.bytes() {
        if b.is_ascii_graphic() && !b"\\\"<>^`{|}".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Validates and normalises an email address (domain lower-cased).
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let s = raw;
    // A bare address only: no surrounding spaces, no display name.
    if s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        || !email_address::EmailAddress::is_valid(s)
    {
        return None;
    }
    let (local, domain) = s.rsplit_once('@')?;
    if !domain.contains('.') {
        return None;
    }
    Some(format!("{local}@{}", domain.to_lowercase()))
}
