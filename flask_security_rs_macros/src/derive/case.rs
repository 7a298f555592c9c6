//! SeaORM's naming of `Column` variants: the field name (without `r#`) in
//! UpperCamelCase, using heck's word boundaries, then keyword-escaped.

/// UpperCamelCase with heck 0.5's rules: words are split on every
/// non-alphanumeric character, before an uppercase letter that follows a
/// lowercase one, and before the last capital of an acronym that is followed
/// by a lowercase letter (`HTTPServer` → `Http` `Server`). Each word is then
/// capitalised and the rest of it lowercased.
pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.split(|c: char| !c.is_alphanumeric()) {
        for word in words(chunk) {
            capitalize_into(word, &mut out);
        }
    }
    out
}

/// The words of an alphanumeric chunk.
fn words(chunk: &str) -> Vec<&str> {
    #[derive(Clone, Copy, PartialEq)]
    enum Case {
        None,
        Lower,
        Upper,
    }

    let mut words = Vec::new();
    let mut start = 0;
    let mut case = Case::None;
    let chars: Vec<(usize, char)> = chunk.char_indices().collect();
    for (position, &(index, current)) in chars.iter().enumerate() {
        let Some(&(next_index, next)) = chars.get(position + 1) else {
            break;
        };
        let case_with_current = if current.is_lowercase() {
            Case::Lower
        } else if current.is_uppercase() {
            Case::Upper
        } else {
            case
        };
        if case_with_current == Case::Lower && next.is_uppercase() {
            words.push(&chunk[start..next_index]);
            start = next_index;
            case = Case::None;
        } else if case == Case::Upper && current.is_uppercase() && next.is_lowercase() {
            words.push(&chunk[start..index]);
            start = index;
            case = Case::None;
        } else {
            case = case_with_current;
        }
    }
    if start < chunk.len() {
        words.push(&chunk[start..]);
    }
    words
}

fn capitalize_into(word: &str, out: &mut String) {
    let mut chars = word.chars();
    let Some(first) = chars.next() else {
        return;
    };
    out.extend(first.to_uppercase());
    let rest = chars.as_str();
    let mut rest_chars = rest.chars().peekable();
    while let Some(c) = rest_chars.next() {
        // Final-position capital sigma lowercases to the final form, as heck does.
        if c == 'Σ' && rest_chars.peek().is_none() {
            out.push('ς');
        } else {
            out.extend(c.to_lowercase());
        }
    }
}

/// Words SeaORM turns into raw identifiers (`r#type`).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "dyn", "else", "enum", "extern", "false",
    "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref",
    "return", "static", "struct", "super", "trait", "true", "type", "union", "unsafe", "use",
    "where", "while", "abstract", "become", "box", "do", "final", "macro", "override", "priv",
    "try", "typeof", "unsized", "virtual", "yield",
];

/// Words that cannot be raw identifiers; SeaORM appends `_` to them.
const SPECIAL_KEYWORDS: &[&str] = &["crate", "Self", "self"];

/// The variant name as SeaORM spells it in source.
pub(crate) fn escape_keyword(name: String) -> String {
    if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else if SPECIAL_KEYWORDS.contains(&name.as_str()) {
        format!("{name}_")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::{escape_keyword, upper_camel};

    #[test]
    fn matches_heck() {
        let cases = [
            ("email", "Email"),
            ("fs_uniquifier", "FsUniquifier"),
            ("fs_webauthn_user_handle", "FsWebauthnUserHandle"),
            ("_leading", "Leading"),
            ("trailing_", "Trailing"),
            ("double__under", "DoubleUnder"),
            ("camelCase", "CamelCase"),
            ("XMLHttpRequest", "XmlHttpRequest"),
            ("HTTPServer", "HttpServer"),
            ("field2", "Field2"),
            ("a1_b2", "A1B2"),
            ("ABC", "Abc"),
            ("self_", "Self"),
        ];
        for (input, expected) in cases {
            assert_eq!(upper_camel(input), expected, "input {input:?}");
        }
    }

    #[test]
    fn escapes_like_sea_orm() {
        assert_eq!(escape_keyword("Self".to_owned()), "Self_");
        assert_eq!(escape_keyword("type".to_owned()), "r#type");
        assert_eq!(escape_keyword("Email".to_owned()), "Email");
    }
}
