//! Strategies both fuzz suites use (the library's unit properties and the
//! HTTP ones in `tests/it/fuzz.rs` include this file with `#[path]`): any
//! text, token-alphabet text, any JSON value, and edits of a real value.

use proptest::prelude::*;
use serde_json::Value;

/// Any string: control characters, non-ASCII and astral planes included.
pub(crate) fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(String::from_iter)
}

/// Strings over the alphabet of tokens and cookies (base64url and standard,
/// `.`, padding, `|`).
pub(crate) fn token_text(max: usize) -> impl Strategy<Value = String> {
    let chars: Vec<char> = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_=.|+/-"
        .chars()
        .collect();
    prop::collection::vec(prop::sample::select(chars), 0..=max).prop_map(String::from_iter)
}

/// Any JSON value: numbers of every kind, unicode strings, nesting up to
/// `depth` levels of at most `width` items (`text` characters a string).
pub(crate) fn json_value(depth: u32, width: usize, text: usize) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        any_text(text).prop_map(Value::String),
    ];
    let size = (width * width * depth as usize) as u32;
    leaf.prop_recursive(depth, size, width as u32, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..width).prop_map(Value::Array),
            prop::collection::vec((any_text(text / 2 + 1), inner), 0..width)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// One edit of a string.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    Replace(At, char),
    Insert(At, char),
    Delete(At),
    Truncate(At),
}

/// Where an edit applies: anywhere, or among the last 32 characters (where
/// signatures and digests are).
#[derive(Debug, Clone, Copy)]
pub(crate) enum At {
    Anywhere(usize),
    NearEnd(usize),
}

impl At {
    /// An index in `0..len` (`len` > 0).
    fn of(self, len: usize) -> usize {
        match self {
            At::Anywhere(i) => i % len,
            At::NearEnd(i) => len - 1 - i % len.min(32),
        }
    }
}

fn at() -> impl Strategy<Value = At> {
    prop_oneof![
        any::<usize>().prop_map(At::Anywhere),
        any::<usize>().prop_map(At::NearEnd),
    ]
}

/// A character an attacker would try in a token: its alphabet, or anything.
fn edit_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => prop::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/$|%"
                .chars()
                .collect::<Vec<_>>()
        ),
        1 => any::<char>(),
    ]
}

/// One to four edits.
pub(crate) fn edits() -> impl Strategy<Value = Vec<Edit>> {
    let edit = prop_oneof![
        4 => (at(), edit_char()).prop_map(|(i, c)| Edit::Replace(i, c)),
        2 => (at(), edit_char()).prop_map(|(i, c)| Edit::Insert(i, c)),
        2 => at().prop_map(Edit::Delete),
        1 => at().prop_map(Edit::Truncate),
    ];
    prop::collection::vec(edit, 1..5)
}

/// `s` with `edits` applied (positions resolved against the current length).
pub(crate) fn mutate(s: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            Edit::Replace(i, c) if n > 0 => chars[i.of(n)] = c,
            Edit::Insert(i, c) => chars.insert(i.of(n + 1), c),
            Edit::Delete(i) if n > 0 => {
                chars.remove(i.of(n));
            }
            Edit::Truncate(i) => chars.truncate(i.of(n + 1)),
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Redirect targets (`next`): schemes, slashes and backslashes, hosts,
/// userinfo, encoded separators, whitespace, look-alike characters, markup.
pub(crate) fn redirect_target() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "/",
        "//",
        "///",
        "\\",
        "\\\\",
        "http:",
        "https:",
        "HTTP:",
        "javascript:",
        "data:",
        "localhost",
        "LOCALHOST",
        "localhost:80",
        "evil.example",
        "@",
        ":",
        "#",
        "?",
        "&",
        "=",
        "%2f",
        "%2F",
        "%5c",
        "%00",
        "%09",
        "%0d%0a",
        "\t",
        "\n",
        "\r",
        " ",
        "\u{0}",
        "\u{1f}",
        ".",
        "..",
        "\u{3000}",
        "\u{ff0f}",
        "\u{2215}",
        "\u{3002}",
        "a",
        "next",
        "<fz>",
        "\"",
        "'",
    ]);
    prop_oneof![
        3 => prop::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
        1 => any_text(30),
    ]
}
