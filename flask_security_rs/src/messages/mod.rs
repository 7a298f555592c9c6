//! Message keys, rendered only at the reply edge.
//!
//! Every text a user can see is a [`Msg`] key (Flask-Security's
//! `SECURITY_MSG_*` names) plus its arguments, carried as a [`Message`] until a
//! reply is written. Only then is it looked up in the [`Catalogue`] (the
//! defaults, overridden by `msg_<key>` configuration keys, as
//! `SECURITY_MSG_<KEY>` overrides them in Flask-Security), so a locale can
//! later be chosen per request.
//!
//! Override a message in `Rocket.toml`, either with a text or, like Flask's
//! `(text, category)` tuple, with a text and a flash category:
//!
//! ```toml
//! [default.security]
//! msg_invalid_password = "Wrong password"
//! msg_disabled_account = ["This account is closed.", "error"]
//! ```

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The flash category of a message (`error`, `info` or `success`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// Something went wrong.
    Error,
    /// For information.
    Info,
    /// Something succeeded.
    Success,
}

impl Category {
    /// The category's name, as templates see it.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Error => "error",
            Category::Info => "info",
            Category::Success => "success",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Category::Error),
            "info" => Some(Category::Info),
            "success" => Some(Category::Success),
            _ => None,
        }
    }
}

macro_rules! define_messages {
    ($($variant:ident => ($key:literal, $category:ident, $text:literal),)*) => {
        /// A message key: Flask-Security's `SECURITY_MSG_<KEY>` names.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Msg {
            $(
                #[doc = concat!("`", $key, "`: \"", $text, "\"")]
                $variant,
            )*
        }

        impl Msg {
            /// Every key, in catalogue order.
            pub const ALL: &'static [Msg] = &[$(Msg::$variant),*];

            /// The key's name (`"INVALID_PASSWORD"`).
            pub fn key(self) -> &'static str {
                match self { $(Msg::$variant => $key,)* }
            }

            /// The built-in flash category.
            pub fn category(self) -> Category {
                match self { $(Msg::$variant => Category::$category,)* }
            }

            /// The built-in English text, with `%(name)s` placeholders.
            pub fn default_text(self) -> &'static str {
                match self { $(Msg::$variant => $text,)* }
            }
        }
    };
}

include!("catalogue.rs");

impl Msg {
    /// The key named `key` (`"INVALID_PASSWORD"`), if there is one.
    pub fn from_key(key: &str) -> Option<Msg> {
        Msg::ALL.iter().copied().find(|m| m.key() == key)
    }

    /// The configuration key that overrides this message (`msg_invalid_password`).
    pub fn config_key(self) -> String {
        format!("msg_{}", self.key().to_ascii_lowercase())
    }
}

/// A message to show: a key and its arguments, or a text from elsewhere (a
/// password checker's warning). Rendered by the reply, not before.
///
/// ```
/// use flask_security_rs::{Catalogue, Message, Msg};
///
/// let m = Message::new(Msg::EmailAlreadyAssociated).arg("email", "a@example.com");
/// let mut catalogue = Catalogue::default();
/// assert_eq!(m.render(&catalogue), "a@example.com is already associated with an account.");
/// catalogue.set(Msg::EmailAlreadyAssociated, "%(email)s is taken", None);
/// assert_eq!(m.render(&catalogue), "a@example.com is taken");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    #[serde(flatten)]
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Kind {
    Key {
        key: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<(String, String)>,
    },
    Text {
        text: String,
        category: Category,
    },
}

impl Message {
    /// The message `msg` without arguments.
    pub fn new(msg: Msg) -> Self {
        Message {
            kind: Kind::Key {
                key: msg.key().to_string(),
                args: Vec::new(),
            },
        }
    }

    /// Adds the value of a `%(name)s` placeholder.
    #[must_use]
    pub fn arg(mut self, name: &str, value: impl fmt::Display) -> Self {
        if let Kind::Key { args, .. } = &mut self.kind {
            args.push((name.to_string(), value.to_string()));
        }
        self
    }

    /// A text that is not in the catalogue (e.g. zxcvbn's warnings).
    pub fn text(text: impl Into<String>, category: Category) -> Self {
        Message {
            kind: Kind::Text {
                text: text.into(),
                category,
            },
        }
    }

    /// The key, when the message is one of the catalogue's.
    pub fn msg(&self) -> Option<Msg> {
        match &self.kind {
            Kind::Key { key, .. } => Msg::from_key(key),
            Kind::Text { .. } => None,
        }
    }

    /// The text in `catalogue`.
    pub fn render(&self, catalogue: &Catalogue) -> String {
        match &self.kind {
            Kind::Text { text, .. } => text.clone(),
            Kind::Key { key, args } => match Msg::from_key(key) {
                Some(m) => interpolate(catalogue.text(m), args),
                None => key.clone(),
            },
        }
    }

    /// The flash category in `catalogue`.
    pub fn category(&self, catalogue: &Catalogue) -> Category {
        match &self.kind {
            Kind::Text { category, .. } => *category,
            Kind::Key { key, .. } => Msg::from_key(key)
                .map(|m| catalogue.category(m))
                .unwrap_or(Category::Error),
        }
    }
}

impl From<Msg> for Message {
    fn from(msg: Msg) -> Self {
        Message::new(msg)
    }
}

/// Replaces `%(name)s` and `%(name)d` with the argument's value.
fn interpolate(template: &str, args: &[(String, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in args {
        for conv in ["s", "d"] {
            out = out.replace(&format!("%({name}){conv}"), value);
        }
    }
    out
}

/// The texts in force: the built-in catalogue with configured overrides.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    overrides: HashMap<Msg, (String, Category)>,
}

/// What a `msg_<key>` configuration value may be.
#[derive(Deserialize)]
#[serde(untagged)]
enum Override {
    Text(String),
    Pair(String, String),
}

impl Catalogue {
    /// The text of `msg`.
    pub fn text(&self, msg: Msg) -> &str {
        self.overrides
            .get(&msg)
            .map(|(t, _)| t.as_str())
            .unwrap_or_else(|| msg.default_text())
    }

    /// The flash category of `msg`.
    pub fn category(&self, msg: Msg) -> Category {
        self.overrides
            .get(&msg)
            .map(|(_, c)| *c)
            .unwrap_or_else(|| msg.category())
    }

    /// Sets the text (and category) of `msg`.
    pub fn set(&mut self, msg: Msg, text: impl Into<String>, category: Option<Category>) {
        let category = category.unwrap_or_else(|| msg.category());
        self.overrides.insert(msg, (text.into(), category));
    }

    /// Reads the `msg_*` keys of the `security` configuration.
    pub(crate) fn from_figment(
        figment: &rocket::figment::Figment,
    ) -> Result<Self, crate::config::ConfigError> {
        let mut catalogue = Catalogue::default();
        for msg in Msg::ALL {
            let key = msg.config_key();
            let path = format!("{}.{key}", crate::config::SECTION);
            if !figment.contains(&path) {
                continue;
            }
            let value: Override = figment
                .extract_inner(&path)
                .map_err(|e| crate::config::ConfigError::new(&key, e.to_string()))?;
            match value {
                Override::Text(t) => catalogue.set(*msg, t, None),
                Override::Pair(t, c) => {
                    let category = Category::parse(&c).ok_or_else(|| {
                        crate::config::ConfigError::new(
                            &key,
                            format!(
                                "unknown category {c:?} (use \"error\", \"info\" or \"success\")"
                            ),
                        )
                    })?;
                    catalogue.set(*msg, t, Some(category));
                }
            }
        }
        Ok(catalogue)
    }
}

/// Flask-Security's wording of a `*_WITHIN` duration (`"2 days"`, `"1 hour"`).
pub(crate) fn within_text(secs: i64) -> String {
    let plural = |n: i64, unit: &str| {
        if n == 1 {
            format!("1 {unit}")
        } else {
            format!("{n} {unit}s")
        }
    };
    if secs % 86400 == 0 && secs >= 86400 {
        plural(secs / 86400, "day")
    } else if secs % 3600 == 0 && secs >= 3600 {
        plural(secs / 3600, "hour")
    } else if secs % 60 == 0 && secs >= 60 {
        plural(secs / 60, "minute")
    } else {
        plural(secs, "second")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_flask_security_keys() {
        assert_eq!(Msg::ALL.len(), 92 + 5 + 1);
        assert_eq!(
            Msg::InvalidPassword.default_text(),
            "Invalid password",
            "wire text"
        );
        assert_eq!(Msg::from_key("API_ERROR"), Some(Msg::ApiError));
        assert_eq!(Msg::ChangeEmailSent.category(), Category::Success);
        assert_eq!(Msg::InvalidPassword.config_key(), "msg_invalid_password");
    }

    #[test]
    fn renders_arguments_and_overrides_late() {
        let m = Message::new(Msg::EmailAlreadyAssociated).arg("email", "a@b.c");
        let mut cat = Catalogue::default();
        assert_eq!(
            m.render(&cat),
            "a@b.c is already associated with an account."
        );
        cat.set(Msg::EmailAlreadyAssociated, "%(email)s is taken", None);
        assert_eq!(m.render(&cat), "a@b.c is taken");
        let n = Message::new(Msg::UsernameInvalidLength)
            .arg("min", 4)
            .arg("max", 32);
        assert_eq!(
            n.render(&Catalogue::default()),
            "Username must be at least 4 characters and less than 32 characters"
        );
    }

    #[test]
    fn overrides_from_configuration() {
        let fig = rocket::figment::Figment::new()
            .merge(("security.msg_invalid_password", "Nope"))
            .merge(("security.msg_disabled_account", ["Closed.", "info"]));
        let cat = Catalogue::from_figment(&fig).expect("catalogue");
        assert_eq!(cat.text(Msg::InvalidPassword), "Nope");
        assert_eq!(cat.category(Msg::DisabledAccount), Category::Info);
        let bad = rocket::figment::Figment::new()
            .merge(("security.msg_disabled_account", ["Closed.", "loud"]));
        let err = Catalogue::from_figment(&bad).expect_err("bad category");
        assert!(err.to_string().contains("msg_disabled_account"), "{err}");
    }

    #[test]
    fn within_wording() {
        assert_eq!(within_text(2 * 86400), "2 days");
        assert_eq!(within_text(3600), "1 hour");
        assert_eq!(within_text(90), "90 seconds");
    }
}
