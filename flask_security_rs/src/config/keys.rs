//! Which keys of the `security` table some section reads, and the check that
//! stops launch on any other.

use rocket::figment::Figment;
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::{ConfigError, SECTION};

/// The field names a `#[derive(Deserialize)]` struct reads (without flatten).
pub(crate) fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    let mut probe = Probe(None);
    let _ = T::deserialize(&mut probe);
    probe.0.unwrap_or(&[])
}

/// A deserializer that only records the fields a struct asks for.
struct Probe(Option<&'static [&'static str]>);

#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field names recorded")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for &mut Probe {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// Fails on the first key of the `security` table that no section knows,
/// suggesting the closest known key.
pub(crate) fn check_unknown_keys(figment: &Figment, known: &[&str]) -> Result<(), ConfigError> {
    let Ok(value) = figment.find_value(SECTION) else {
        return Ok(());
    };
    let Some(dict) = value.as_dict() else {
        return Err(ConfigError::new(SECTION, "must be a table of keys"));
    };
    for key in dict.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        let best = known
            .iter()
            .map(|k| (strsim::jaro_winkler(key, k), *k))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .filter(|(score, _)| *score > 0.8);
        let message = match best {
            Some((_, k)) => format!("unknown key; did you mean `{k}`?"),
            None => "unknown key".to_string(),
        };
        return Err(ConfigError::new(key, message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_a_section() {
        let names = field_names::<crate::config::SecurityConfig>();
        assert!(names.contains(&"token_max_age"), "{names:?}");
        assert!(names.contains(&"secret_key"));
    }

    #[test]
    fn unknown_key_suggests_the_closest() {
        let fig = Figment::new().merge(("security.token_max_agee", 5));
        let err = check_unknown_keys(&fig, &["token_max_age", "secret_key"]).expect_err("typo");
        assert_eq!(err.key(), "token_max_agee");
        assert!(
            err.to_string().contains("did you mean `token_max_age`"),
            "{err}"
        );
        let fig = Figment::new().merge(("security.zzz", 5));
        let err = check_unknown_keys(&fig, &["token_max_age"]).expect_err("unknown");
        assert!(!err.to_string().contains("did you mean"), "{err}");
        let fig = Figment::new().merge(("security.token_max_age", 5));
        assert_eq!(check_unknown_keys(&fig, &["token_max_age"]), Ok(()));
    }
}
