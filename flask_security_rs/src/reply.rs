//! Request parsing and responses in Flask-Security's wire format.

use std::io::Cursor;

use rocket::data::{Data, FromData, Outcome as DataOutcome, ToByteUnit};
use rocket::http::{ContentType, Header, Status};
use rocket::request::Request;
use rocket::response::{self, Responder, Response};
use serde_json::{Map, Value, json};

use crate::messages;

/// Whether the caller wants JSON back: a JSON body, or an `Accept` header
/// whose highest-quality entry is `application/json` (`*/*` counts as HTML).
pub fn want_json(req: &Request<'_>) -> bool {
    if is_json_body(req) {
        return true;
    }
    let Some(accept) = req.headers().get_one("Accept") else {
        return false;
    };
    let mut best: Option<(f32, String)> = None;
    for part in accept.split(',') {
        let mut bits = part.split(';');
        let media = bits.next().unwrap_or("").trim().to_ascii_lowercase();
        if media.is_empty() {
            continue;
        }
        let mut q = 1.0f32;
        for p in bits {
            if let Some(v) = p.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if best.as_ref().is_none_or(|(bq, _)| q > *bq) {
            best = Some((q, media));
        }
    }
    best.is_some_and(|(q, m)| q > 0.0 && m == "application/json")
}

/// Whether the request body is JSON (`application/json` or `*/*+json`).
pub fn is_json_body(req: &Request<'_>) -> bool {
    req.content_type()
        .is_some_and(|ct| ct.is_json() || ct.sub().as_str().ends_with("+json"))
}

/// Whether the query string has `key` (any value, or none).
pub fn query_has(req: &Request<'_>, key: &str) -> bool {
    req.uri()
        .query()
        .is_some_and(|q| q.segments().any(|(k, _)| k == key))
}

/// The first value of `key` in the query string, decoded.
pub fn query_value(req: &Request<'_>, key: &str) -> Option<String> {
    req.uri().query().and_then(|q| {
        q.segments()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.to_string())
    })
}

/// A submitted form: a JSON object or an urlencoded body, as one map.
#[derive(Debug, Default, Clone)]
pub struct FormInput {
    fields: Map<String, Value>,
    /// Whether the body was JSON.
    pub json: bool,
}

/// Body of a form that could not be read.
#[derive(Debug)]
pub struct BadBody;

const BODY_LIMIT: u64 = 64 * 1024;

#[rocket::async_trait]
impl<'r> FromData<'r> for FormInput {
    type Error = BadBody;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let json = is_json_body(req);
        let bytes = match data.open(BODY_LIMIT.bytes()).into_bytes().await {
            Ok(b) if b.is_complete() => b.into_inner(),
            _ => return DataOutcome::Error((Status::PayloadTooLarge, BadBody)),
        };
        let mut fields = Map::new();
        if bytes.iter().any(|b| !b.is_ascii_whitespace()) {
            if json {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => fields = m,
                    _ => return DataOutcome::Error((Status::BadRequest, BadBody)),
                }
            } else {
                let text = String::from_utf8_lossy(&bytes);
                for (k, v) in url::form_urlencoded::parse(text.as_bytes()) {
                    fields
                        .entry(k.into_owned())
                        .or_insert(Value::String(v.into_owned()));
                }
            }
        }
        DataOutcome::Success(FormInput { fields, json })
    }
}

/// A field that is present but not a string: Flask-Security answers `API_ERROR`.
#[derive(Debug, Clone, Copy)]
pub struct NotAString;

impl FormInput {
    /// A form from a map (tests and programmatic use).
    pub fn from_map(fields: Map<String, Value>, json: bool) -> Self {
        FormInput { fields, json }
    }

    /// A text field: `Ok(None)` when absent, null or empty.
    pub fn text(&self, name: &str) -> Result<Option<String>, NotAString> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(NotAString),
        }
    }

    /// A boolean field: JSON booleans, or form values like "y", "on", "true".
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, NotAString> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) => Ok(Some(!matches!(
                s.to_ascii_lowercase().as_str(),
                "" | "false" | "0" | "n" | "no" | "off"
            ))),
            Some(Value::Number(n)) => Ok(Some(n.as_f64().is_some_and(|f| f != 0.0))),
            Some(_) => Err(NotAString),
        }
    }

    /// A string field as sent, blank or not.
    pub fn text_or_blank(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    /// Whether the field was sent as JSON `null`.
    pub fn is_null(&self, name: &str) -> bool {
        matches!(self.fields.get(name), Some(Value::Null))
    }

    /// Whether the field was sent at all.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// Validation errors of a form, in field order, as WTForms reports them.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    fields: Vec<(String, Vec<String>)>,
}

impl FormErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `msg` to `field` ("" = form-level).
    pub fn add(&mut self, field: &str, msg: impl Into<String>) {
        let msg = msg.into();
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some((_, msgs)) => msgs.push(msg),
            None => self.fields.push((field.to_string(), vec![msg])),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|(f, _)| f == field)
    }

    /// Errors per field, for templates.
    pub fn to_map(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(f, m)| (f.clone(), json!(m)))
            .collect()
    }

    /// The `response` of a 400 JSON error.
    pub fn to_response(&self) -> Map<String, Value> {
        let errors: Vec<&String> = self.fields.iter().flat_map(|(_, m)| m.iter()).collect();
        let mut out = Map::new();
        out.insert("errors".into(), json!(errors));
        out.insert("field_errors".into(), Value::Object(self.to_map()));
        out
    }
}

/// What a library endpoint answers.
#[derive(Debug)]
pub enum Reply {
    /// `{"meta": {"code": status}, "response": body}`.
    Json(Status, Map<String, Value>),
    /// 302 to a location.
    Redirect(String),
    /// A rendered page.
    Html(Status, String),
}

impl Reply {
    /// A 200 JSON reply.
    pub fn ok(body: Map<String, Value>) -> Self {
        Reply::Json(Status::Ok, body)
    }

    /// A JSON error with only `errors`.
    pub fn error(status: Status, msg: &str) -> Self {
        let mut m = Map::new();
        m.insert("errors".into(), json!([msg]));
        Reply::Json(status, m)
    }

    /// A 400 JSON form error.
    pub fn form_errors(errors: &FormErrors) -> Self {
        Reply::Json(Status::BadRequest, errors.to_response())
    }

    /// A 400 `API_ERROR` on one field.
    pub fn api_error(field: &str) -> Self {
        let mut e = FormErrors::new();
        e.add(field, messages::API_ERROR);
        Reply::form_errors(&e)
    }
}

/// The JSON envelope around a response body.
pub fn envelope(status: Status, body: Map<String, Value>) -> String {
    json!({"meta": {"code": status.code}, "response": Value::Object(body)}).to_string()
}

impl<'r> Responder<'r, 'static> for Reply {
    fn respond_to(self, req: &'r Request<'_>) -> response::Result<'static> {
        let cache = req
            .rocket()
            .state::<crate::SecurityState>()
            .map(|s| s.config.cache_control.clone())
            .unwrap_or_else(|| "private, no-store".into());
        let mut res = Response::build();
        res.header(Header::new("Cache-Control", cache));
        res.header(Header::new("Vary", "Cookie"));
        match self {
            Reply::Json(status, body) => {
                let text = envelope(status, body);
                res.status(status)
                    .header(ContentType::JSON)
                    .sized_body(text.len(), Cursor::new(text));
            }
            Reply::Redirect(to) => {
                res.status(Status::Found)
                    .header(Header::new("Location", to));
            }
            Reply::Html(status, html) => {
                res.status(status)
                    .header(ContentType::HTML)
                    .sized_body(html.len(), Cursor::new(html));
            }
        }
        Ok(res.finalize())
    }
}
