//! Submitted forms (a JSON object or an urlencoded body, as one map) and
//! their validation errors, kept as [`Message`]s until the reply renders them.

use rocket::data::{Data, FromData, Outcome as DataOutcome, ToByteUnit};
use rocket::http::Status;
use rocket::request::Request;
use serde_json::{Map, Value};

use crate::messages::{Catalogue, Message, Msg};

/// A submitted form: a JSON object or an urlencoded body, as one map.
#[derive(Debug, Default, Clone)]
pub struct FormInput {
    fields: Map<String, Value>,
}

/// Body of a form that could not be read.
#[derive(Debug)]
pub struct BadBody(pub Status);

/// The largest body the library reads.
const BODY_LIMIT: u64 = 64 * 1024;

#[rocket::async_trait]
impl<'r> FromData<'r> for FormInput {
    type Error = BadBody;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> DataOutcome<'r, Self> {
        let json = super::is_json_body(req);
        let bytes = match data.open(BODY_LIMIT.bytes()).into_bytes().await {
            Ok(b) if b.is_complete() => b.into_inner(),
            _ => {
                return DataOutcome::Error((
                    Status::PayloadTooLarge,
                    BadBody(Status::PayloadTooLarge),
                ));
            }
        };
        let mut fields = Map::new();
        if bytes.iter().any(|b| !b.is_ascii_whitespace()) {
            if json {
                match serde_json::from_slice::<Value>(&bytes) {
                    Ok(Value::Object(m)) => {
                        crate::authn::note_body_token(req, &m);
                        fields = m;
                    }
                    _ => {
                        return DataOutcome::Error((
                            Status::BadRequest,
                            BadBody(Status::BadRequest),
                        ));
                    }
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
        DataOutcome::Success(FormInput { fields })
    }
}

/// A field that is present but not a string: Flask-Security answers `API_ERROR`.
#[derive(Debug, Clone, Copy)]
pub struct NotAString;

impl FormInput {
    /// A text field: `Ok(None)` when absent, null or empty.
    pub fn text(&self, name: &str) -> Result<Option<String>, NotAString> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(NotAString),
        }
    }

    /// A text field that may also be a JSON integer (a one-time code, as
    /// Flask-Security's `IsStringOrInt` accepts): the integer as text.
    pub fn text_or_int(&self, name: &str) -> Result<Option<String>, NotAString> {
        match self.fields.get(name) {
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
            _ => self.text(name),
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

    /// A list of strings: a JSON array of strings, or one string (an
    /// urlencoded form, or JSON); `Ok(empty)` when absent or null.
    pub fn list(&self, name: &str) -> Result<Vec<String>, NotAString> {
        match self.fields.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or(NotAString))
                .collect(),
            Some(_) => Err(NotAString),
        }
    }

    /// Whether the field was sent as JSON `null`.
    pub fn is_null(&self, name: &str) -> bool {
        matches!(self.fields.get(name), Some(Value::Null))
    }
}

/// Validation errors of a form, in field order, as WTForms reports them.
#[derive(Debug, Default, Clone)]
pub struct FormErrors {
    fields: Vec<(String, Vec<Message>)>,
    /// A backend (database, ...) failed while checking the form: the reply
    /// is a generic 503, not a 400 that blames the caller.
    unavailable: bool,
}

impl FormErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Errors with just `msg` on `field` ("" = form-level).
    pub fn one(field: &str, msg: impl Into<Message>) -> Self {
        let mut e = Self::new();
        e.add(field, msg);
        e
    }

    /// Adds `msg` to `field` ("" = form-level).
    pub fn add(&mut self, field: &str, msg: impl Into<Message>) {
        let msg = msg.into();
        match self.fields.iter_mut().find(|(f, _)| f == field) {
            Some((_, msgs)) => msgs.push(msg),
            None => self.fields.push((field.to_string(), vec![msg])),
        }
    }

    /// Records that a backend failed while checking the form (logged; the
    /// caller gets a generic 503).
    pub(crate) fn backend_failed(&mut self, what: &str, err: &dyn std::fmt::Display) {
        log::error!("{what} failed: {err}");
        self.unavailable = true;
    }

    /// Whether a backend failed while checking the form.
    pub(crate) fn is_unavailable(&self) -> bool {
        self.unavailable
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && !self.unavailable
    }

    /// Generic-responses mode (Flask-Security's `form_errors_munge`): the
    /// errors of each listed field are dropped and, when it names one, a
    /// form-level message takes their place.
    pub(crate) fn munge(mut self, fields: &[(&str, Option<Msg>)]) -> FormErrors {
        for (name, replace) in fields {
            let had = self.has(name);
            self.fields.retain(|(f, _)| f != name);
            if had && let Some(m) = replace {
                self.add("", *m);
            }
        }
        self
    }

    /// Whether `field` has an error.
    pub fn has(&self, field: &str) -> bool {
        self.fields.iter().any(|(f, _)| f == field)
    }

    /// Errors per field, rendered, for templates.
    pub(crate) fn to_map(&self, catalogue: &Catalogue) -> Map<String, Value> {
        self.fields
            .iter()
            .map(|(f, m)| {
                let texts = m.iter().map(|m| Value::String(m.render(catalogue)));
                (f.clone(), Value::Array(texts.collect()))
            })
            .collect()
    }

    /// The `response` of a 400 JSON error: `errors` and `field_errors`.
    pub(crate) fn to_response(&self, catalogue: &Catalogue) -> Map<String, Value> {
        let errors: Vec<Value> = self
            .fields
            .iter()
            .flat_map(|(_, m)| m.iter().map(|m| Value::String(m.render(catalogue))))
            .collect();
        let mut out = Map::new();
        out.insert("errors".into(), Value::Array(errors));
        out.insert("field_errors".into(), Value::Object(self.to_map(catalogue)));
        out
    }
}

/// Reads a text field, recording `API_ERROR` when it is not a string.
pub(crate) fn text(form: &FormInput, name: &str, errors: &mut FormErrors) -> Option<String> {
    match form.text(name) {
        Ok(v) => v,
        Err(NotAString) => {
            errors.add(name, Msg::ApiError);
            None
        }
    }
}

/// Reads a text-or-integer field ([`FormInput::text_or_int`]), recording
/// `API_ERROR` when it is neither.
pub(crate) fn code_text(form: &FormInput, name: &str, errors: &mut FormErrors) -> Option<String> {
    match form.text_or_int(name) {
        Ok(v) => v,
        Err(NotAString) => {
            errors.add(name, Msg::ApiError);
            None
        }
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
        errors.add(field, Msg::PasswordNotProvided);
    }
    match &confirm {
        None if !errors.has(confirm_field) => errors.add(confirm_field, Msg::PasswordNotProvided),
        Some(c) if !not_string && password.as_deref() != Some(c.as_str()) => {
            errors.add(confirm_field, Msg::RetypePasswordMismatch)
        }
        _ => {}
    }
    password
}
