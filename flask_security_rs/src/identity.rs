//! Identities: email and username rules, and finding the account a form
//! names. Shared by every feature that takes an identity.

use unicode_normalization::UnicodeNormalization;

use crate::SecurityConfig;
use crate::datastore::{Lookup, User};
use crate::http::{Ctx, FormErrors, FormInput, text};
use crate::login::{self, CheckOrder};
use crate::messages::{Message, Msg};

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
            log::error!("lookup failed: {e}");
            errors.add("", Msg::ApiError);
        }
    }
    None
}

/// In generic-responses mode, errors that would reveal whether an account
/// exists are dropped (a form-level error is still reported).
pub(crate) fn hide_account_errors(ctx: &Ctx<'_>, errors: FormErrors) -> FormErrors {
    if ctx.config().return_generic_responses && !errors.has("") {
        return FormErrors::new();
    }
    errors
}
