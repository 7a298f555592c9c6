//! Text messages: the [`SmsSender`] trait the code-sending features use
//! (two-factor and unified sign-in codes), a console sender for
//! development, a capturing sender for the tests of applications, and
//! [`normalize_phone`], which turns what a user typed into the E.164 form
//! Flask-Security stores and compares (its `PhoneUtil`).
//!
//! Message bodies carry sign-in codes: they are secrets. No type here puts
//! a body in its `Debug` output, in an error's `Display` or in a log line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::datastore::BoxError;

/// Sends text messages (Flask-Security's `SmsSenderBaseClass`). Implement
/// it for a provider's API.
#[rocket::async_trait]
pub trait SmsSender: Send + Sync + 'static {
    /// Sends `body` to `to`, a number in E.164 form (`+16505551212`).
    async fn send(&self, to: &str, body: &str) -> Result<(), SmsError>;
}

/// Why a text message was not sent. Its `Display` names no recipient and no
/// body; the cause is its [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[error("the text message was not sent")]
pub struct SmsError {
    #[source]
    source: BoxError,
}

impl SmsError {
    /// A failure caused by `source` (a transport or provider error). Keep
    /// the message body out of it.
    pub fn new(source: impl Into<BoxError>) -> Self {
        SmsError {
            source: source.into(),
        }
    }
}

/// Writes text messages to the log instead of sending them (Flask-Security's
/// `DummySmsSender`), for development without a provider.
///
/// [`new`](Self::new) logs the recipient and the length of the message only,
/// since the body holds a sign-in code. [`printing_codes`](Self::printing_codes)
/// also prints each body to standard output, so a developer can read the
/// code: for development only, never in production, where anyone who can
/// read the process's output could sign in as its users.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConsoleSmsSender {
    print_body: bool,
}

impl ConsoleSmsSender {
    /// Logs `SMS to <number>` and the message's length; never the body.
    pub fn new() -> Self {
        ConsoleSmsSender { print_body: false }
    }

    /// Also prints every message body (the codes) to standard output.
    /// Development only.
    pub fn printing_codes() -> Self {
        ConsoleSmsSender { print_body: true }
    }
}

#[rocket::async_trait]
impl SmsSender for ConsoleSmsSender {
    async fn send(&self, to: &str, body: &str) -> Result<(), SmsError> {
        log::info!("SMS to {to} ({} characters)", body.chars().count());
        if self.print_body {
            println!("----- SMS to {to} -----\n{body}\n-----------------------");
        }
        Ok(())
    }
}

/// One message a [`CapturingSmsSender`] took. Its `Debug` leaves the body
/// out.
#[derive(Clone, PartialEq, Eq)]
pub struct SentSms {
    /// The recipient, as passed to [`SmsSender::send`].
    pub to: String,
    /// The text.
    pub body: String,
}

impl std::fmt::Debug for SentSms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentSms")
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// Keeps the messages it is asked to send, for the tests of applications:
/// install a clone as the sender, then read the codes with
/// [`last_to`](Self::last_to) or [`messages`](Self::messages). Clones share
/// one list. [`fail`](Self::fail) makes sending fail, to test how an
/// application answers when its provider is down; a failed send keeps
/// nothing.
#[derive(Clone, Default)]
pub struct CapturingSmsSender {
    inner: Arc<Captured>,
}

#[derive(Default)]
struct Captured {
    sent: Mutex<Vec<SentSms>>,
    failing: AtomicBool,
}

/// The error a failing [`CapturingSmsSender`] returns.
#[derive(Debug, thiserror::Error)]
#[error("sending switched off by CapturingSmsSender::fail")]
struct SwitchedOff;

impl CapturingSmsSender {
    /// An empty, working sender.
    pub fn new() -> Self {
        Self::default()
    }

    fn sent(&self) -> MutexGuard<'_, Vec<SentSms>> {
        // A test that panicked while holding the lock left a usable list.
        self.inner
            .sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Every message kept so far, oldest first.
    pub fn messages(&self) -> Vec<SentSms> {
        self.sent().clone()
    }

    /// Every message kept so far, oldest first, emptying the list.
    pub fn take(&self) -> Vec<SentSms> {
        std::mem::take(&mut *self.sent())
    }

    /// The body of the last message sent to `to`.
    pub fn last_to(&self, to: &str) -> Option<String> {
        self.sent()
            .iter()
            .rev()
            .find(|m| m.to == to)
            .map(|m| m.body.clone())
    }

    /// With `true`, every send fails (with an [`SmsError`]) until `fail(false)`.
    pub fn fail(&self, failing: bool) {
        self.inner.failing.store(failing, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for CapturingSmsSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturingSmsSender")
            .field("messages", &self.sent().len())
            .field("failing", &self.inner.failing.load(Ordering::SeqCst))
            .finish()
    }
}

#[rocket::async_trait]
impl SmsSender for CapturingSmsSender {
    async fn send(&self, to: &str, body: &str) -> Result<(), SmsError> {
        if self.inner.failing.load(Ordering::SeqCst) {
            return Err(SmsError::new(SwitchedOff));
        }
        self.sent().push(SentSms {
            to: to.to_string(),
            body: body.to_string(),
        });
        Ok(())
    }
}

/// Inputs longer than this many characters are not phone numbers; the
/// `phonenumbers` library Flask-Security uses refuses them too (`TOO_LONG`).
const MAX_PHONE_INPUT: usize = 250;

/// `input` in E.164 form (`+16505551212`), or `None` if it is not a valid
/// number. A number without a leading `+` is read as a number of
/// `default_region` (an ISO 3166 code such as `"US"`; Flask-Security's
/// `PHONE_REGION_DEFAULT`). As Flask-Security's `PhoneUtil`: parse with
/// the default region, require a valid number (not just a plausible
/// length), format E.164 (an extension is dropped).
pub fn normalize_phone(input: &str, default_region: &str) -> Option<String> {
    // Bounded before any parsing: four bytes a character at most.
    if input.len() > 4 * MAX_PHONE_INPUT || input.chars().count() > MAX_PHONE_INPUT {
        return None;
    }
    let region = default_region
        .trim()
        .to_ascii_uppercase()
        .parse::<phonenumber::country::Id>()
        .ok();
    let input = ascii_digits(input);
    // The parser has had panics on odd input (since fixed upstream); one
    // left would be a malformed number here, not a failed request.
    std::panic::catch_unwind(|| {
        let number = phonenumber::parse(region, &*input).ok()?;
        if !phonenumber::is_valid(&number) {
            return None;
        }
        Some(number.format().mode(phonenumber::Mode::E164).to_string())
    })
    .ok()
    .flatten()
}

/// `input` with every decimal digit of another script (full-width `６`,
/// Arabic-Indic `٦`, ...) written as its ASCII digit, as `phonenumbers`
/// reads them; the parser here only reads ASCII digits.
fn ascii_digits(input: &str) -> std::borrow::Cow<'_, str> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let is_digit = |c: char| c.general_category() == GeneralCategory::DecimalNumber;
    if input.is_ascii() || !input.chars().any(|c| !c.is_ascii() && is_digit(c)) {
        return std::borrow::Cow::Borrowed(input);
    }
    let mapped = input
        .chars()
        .map(|c| {
            if c.is_ascii() || !is_digit(c) {
                return c;
            }
            // Unicode encodes each script's digits as one run of ten, zero
            // first (runs may follow each other, at most five), so a
            // digit's value is its distance from the start of its run of
            // digits, modulo ten.
            let code = u32::from(c);
            let mut start = code;
            while code - start < 50 && char::from_u32(start.wrapping_sub(1)).is_some_and(is_digit) {
                start -= 1;
            }
            let value = (code - start) % 10;
            char::from_digit(value, 10).unwrap_or(c)
        })
        .collect();
    std::borrow::Cow::Owned(mapped)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    /// `(input, default region, E.164)`, each answer Python's
    /// `phonenumbers` 9.0.43 gave (parse, is_valid_number, format E164).
    const AS_PYTHON: &[(&str, &str, Option<&str>)] = &[
        ("650-555-1212", "US", Some("+16505551212")),
        ("(650) 555-1212", "US", Some("+16505551212")),
        ("650.555.1212", "US", Some("+16505551212")),
        ("1-650-555-1212", "US", Some("+16505551212")),
        ("650-555-1212 ext 123", "US", Some("+16505551212")),
        ("tel:+1-650-555-1212", "US", Some("+16505551212")),
        (
            "\u{ff16}\u{ff15}\u{ff10}\u{ff15}\u{ff15}\u{ff15}\u{ff11}\u{ff12}\u{ff11}\u{ff12}",
            "US",
            Some("+16505551212"),
        ),
        ("abc 650 555 1212", "US", Some("+16505551212")),
        (
            "\u{666}\u{665}\u{660}\u{665}\u{665}\u{665}\u{661}\u{662}\u{661}\u{662}",
            "US",
            Some("+16505551212"),
        ),
        ("1-800-FLOWERS", "US", Some("+18003569377")),
        ("  +1 650 555 1212  ", "US", Some("+16505551212")),
        ("650-555-1212\n", "US", Some("+16505551212")),
        ("+1 650 555 1212 x 12", "US", Some("+16505551212")),
        ("0800 123 4567", "DE", Some("+498001234567")),
        ("+0 650 555 1212", "US", None),
        ("+999 650 555 1212", "US", None),
        ("++1 650 555 1212", "US", Some("+16505551212")),
        ("+44 20 7946 0958", "US", Some("+442079460958")),
        ("020 7946 0958", "GB", Some("+442079460958")),
        ("011 44 20 7946 0958", "US", Some("+442079460958")),
        ("0016505551212", "GB", Some("+16505551212")),
        ("+1 650 555 1212", "GB", Some("+16505551212")),
        ("+1 650 555 1212", "XX", Some("+16505551212")),
        ("+1 650 555 1212", "", Some("+16505551212")),
        ("+33 6 12 34 56 78", "US", Some("+33612345678")),
        ("06 12 34 56 78", "FR", Some("+33612345678")),
        ("", "US", None),
        ("123", "US", None),
        ("garbage", "US", None),
        ("not a number at all", "US", None),
        ("+", "US", None),
        ("555-1212", "US", None),
        ("+1 123 456 7890", "US", None),
        ("650 555 1212 abc", "US", None),
        ("650-555-1212", "XX", None),
        // Once panicked this parser (rust-phonenumber #43, #32).
        ("  2 22#:", "US", None),
        ("003-836-4618x3001", "US", None),
        ("003-836-4618x3001", "CH", None),
    ];

    #[test]
    fn normalizes_as_flask_security_does() {
        let differ: Vec<_> = AS_PYTHON
            .iter()
            .filter(|(input, region, e164)| normalize_phone(input, region).as_deref() != *e164)
            .collect();
        assert!(differ.is_empty(), "{differ:?}");
        // One known difference: an RFC 3966 extension without `tel:`.
        // (Python: +16505551212.)
        assert_eq!(normalize_phone("+16505551212;ext=1", "US"), None);
        // Digits of every script (the math runs follow each other).
        assert_eq!(ascii_digits("\u{1d7ce}\u{1d7d7}\u{1d7d8}\u{1d7ff}"), "0909");
        assert_eq!(ascii_digits("\u{ff19}-\u{9e6}"), "9-0");
        assert_eq!(ascii_digits("650 ½ Ⅻ"), "650 ½ Ⅻ");
        // The region is read in either case.
        assert_eq!(
            normalize_phone("650-555-1212", "us").as_deref(),
            Some("+16505551212")
        );
    }

    #[test]
    fn long_input_is_refused_before_parsing() {
        let long = "1".repeat(10 * 1024);
        assert_eq!(normalize_phone(&long, "US"), None);
        // A valid number padded past the bound is refused (not trimmed).
        let padded = format!("650-555-1212{}", " ".repeat(MAX_PHONE_INPUT));
        assert_eq!(normalize_phone(&padded, "US"), None);
        // Up to the bound, input is parsed.
        let digits = "9".repeat(MAX_PHONE_INPUT);
        assert_eq!(normalize_phone(&digits, "US"), None);
    }

    #[rocket::async_test]
    async fn capturing_sender_keeps_messages() {
        let sms = CapturingSmsSender::new();
        let shared = sms.clone();
        sms.send("+16505551212", "code 123456").await.unwrap();
        sms.send("+442079460958", "code 654321").await.unwrap();
        sms.send("+16505551212", "code 111111").await.unwrap();
        assert_eq!(shared.messages().len(), 3);
        assert_eq!(
            shared.last_to("+16505551212").as_deref(),
            Some("code 111111")
        );
        assert_eq!(
            shared.last_to("+442079460958").as_deref(),
            Some("code 654321")
        );
        assert_eq!(shared.last_to("+15555555555"), None);
        let taken = shared.take();
        assert_eq!(
            taken[0],
            SentSms {
                to: "+16505551212".into(),
                body: "code 123456".into()
            }
        );
        assert!(sms.messages().is_empty());
        assert_eq!(sms.last_to("+16505551212"), None);
    }

    #[rocket::async_test]
    async fn failing_switch() {
        let sms = CapturingSmsSender::new();
        sms.fail(true);
        let err = sms.send("+16505551212", "code 123456").await.unwrap_err();
        assert!(std::error::Error::source(&err).is_some());
        assert!(!err.to_string().contains("123456"));
        assert!(!format!("{err:?}").contains("123456"));
        assert!(sms.messages().is_empty());
        sms.fail(false);
        sms.send("+16505551212", "code 222222").await.unwrap();
        assert_eq!(sms.last_to("+16505551212").as_deref(), Some("code 222222"));
    }

    #[rocket::async_test]
    async fn debug_output_has_no_bodies() {
        let sms = CapturingSmsSender::new();
        sms.send("+16505551212", "code 123456").await.unwrap();
        let debug = format!("{sms:?} {:?}", sms.messages());
        assert!(debug.contains("+16505551212"), "{debug}");
        assert!(!debug.contains("123456"), "{debug}");
        // As a trait object, like the features hold it.
        let boxed: Box<dyn SmsSender> = Box::new(ConsoleSmsSender::new());
        boxed.send("+16505551212", "code 123456").await.unwrap();
        let printing: Box<dyn SmsSender> = Box::new(ConsoleSmsSender::printing_codes());
        printing.send("+16505551212", "code 123456").await.unwrap();
    }
}
