//! Identities: email and username rules, and finding the account a form
//! names. Shared by every feature that takes an identity.
//!
//! One normalisation serves storing, looking up and uniqueness: addresses
//! and usernames are stored normalised (emails: NFC local part, lower-case
//! domain; usernames: NFKD)
//! and are unique by their keys ([`email_key`], [`username_key`]), which the
//! SeaORM datastore keeps in a table with a primary key on them.

use unicode_normalization::UnicodeNormalization;

use crate::SecurityConfig;
use crate::datastore::{Lookup, User};
use crate::http::{Ctx, FormErrors, FormInput, text};
use crate::login::{self, CheckOrder};
use crate::messages::{Message, Msg};

/// Validates and normalises an email address for storing: the local part in
/// NFC, the domain lower-cased, as email_validator normalises. Addresses with
/// invisible or unsafe characters (controls, format characters such as
/// U+200B, separators, a leading combining mark) are refused.
pub(crate) fn normalize_email(raw: &str) -> Option<String> {
    let s = raw;
    // A bare address only: no surrounding spaces, no display name.
    if s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>')
        || has_unsafe_chars(s)
        || !email_address::EmailAddress::is_valid(s)
    {
        return None;
    }
    let (local, domain) = s.rsplit_once('@')?;
    if !domain.contains('.') {
        return None;
    }
    let local: String = local.nfc().collect();
    Some(format!("{local}@{}", domain.to_lowercase()))
}

/// email_validator's unsafe characters: anything but letters, marks (not
/// first), numbers, punctuation and symbols.
fn has_unsafe_chars(s: &str) -> bool {
    use unicode_properties::{GeneralCategoryGroup as G, UnicodeGeneralCategory};
    s.chars()
        .enumerate()
        .any(|(i, c)| match c.general_category_group() {
            G::Letter | G::Number | G::Punctuation | G::Symbol => false,
            G::Mark => i == 0,
            G::Separator | G::Other => true,
        })
}

/// The key an email address is unique and found by: Unicode default case
/// folding of its canonical decomposition, recomposed (so `Ölaf@x.org`,
/// `ölaf@x.org` and the NFD spelling are one identity).
///
/// ```
/// use flask_security_rs::identity::email_key;
///
/// assert_eq!(email_key("Ölaf@Example.com"), email_key("\u{f6}laf@example.com"));
/// assert_eq!(email_key("jos\u{e9}@x.org"), email_key("jose\u{301}@x.org"));
/// ```
pub fn email_key(email: &str) -> String {
    let decomposed: String = email.nfd().collect();
    caseless::default_case_fold_str(&decomposed).nfc().collect()
}

/// The key a username is unique and found by: NFKD (as Flask-Security
/// normalises usernames), case folded, NFKD again.
///
/// ```
/// use flask_security_rs::identity::username_key;
///
/// assert_eq!(username_key("Иван"), username_key("иван"));
/// ```
pub fn username_key(username: &str) -> String {
    let decomposed: String = username.nfkd().collect();
    caseless::default_case_fold_str(&decomposed)
        .nfkd()
        .collect()
}

/// Flask-Security's username rules: no markup, letters and digits, length,
/// NFKD.
pub(crate) fn check_username(cfg: &SecurityConfig, raw: &str) -> Result<String, Message> {
    let trimmed = raw.trim();
    if trimmed.contains(['<', '>', '&']) {
        return Err(Msg::InvalidInput.into());
    }
    if !trimmed.chars().all(char::is_alphanumeric) {
        return Err(Msg::UsernameDisallowedCharacters.into());
    }
    // The length is the normalised form's, as Flask-Security counts it.
    let normalized: String = trimmed.nfkd().collect();
    let len = normalized.chars().count();
    if len < cfg.username_min_length || len > cfg.username_max_length {
        return Err(Message::new(Msg::UsernameInvalidLength)
            .arg("min", cfg.username_min_length)
            .arg("max", cfg.username_max_length));
    }
    Ok(normalized)
}

/// Finds the account a "send me a mail" form names (`email`), with
/// Flask-Security's checks: exists, active, then the features' account checks
/// (confirmed, when confirmation is required). Problems go on `email`.
pub(crate) async fn mail_target(
    ctx: &Ctx<'_>,
    form: &FormInput,
    errors: &mut FormErrors,
) -> Option<User> {
    let raw = match text(form, "email", errors) {
        None if !errors.has("email") => {
            errors.add("email", Msg::EmailNotProvided);
            return None;
        }
        None => return None,
        Some(raw) => raw,
    };
    let Some(email) = normalize_email(&raw) else {
        errors.add("email", Msg::InvalidEmailAddress);
        return None;
    };
    match ctx.state.datastore.find_user(Lookup::Email(&email)).await {
        Ok(Some(u)) => match login::account_problem(ctx.state, &u, CheckOrder::ActiveFirst) {
            Some(problem) => errors.add("email", problem),
            None => return Some(u),
        },
        Ok(None) => errors.add("email", Msg::UserDoesNotExist),
        Err(e) => {
            errors.backend_failed("lookup", &e);
        }
    }
    None
}

/// In generic-responses mode, errors that would reveal whether an account
/// exists are dropped (a form-level error is still reported).
pub(crate) fn hide_account_errors(ctx: &Ctx<'_>, errors: FormErrors) -> FormErrors {
    if ctx.config().return_generic_responses && !errors.has("") && !errors.is_unavailable() {
        return FormErrors::new();
    }
    errors
}
