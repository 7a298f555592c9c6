//! Password policy for new passwords (register, reset, change): Flask-Security's
//! `PasswordUtil.validate`.
//!
//! The password is NFKD-normalised, then checked in Flask-Security's order,
//! stopping at the first stage that fails:
//!
//! 1. length: `password_length_min..=password_length_max` characters
//!    (`PASSWORD_INVALID_LENGTH`);
//! 2. breached list (`password_check_breached`): the k-anonymity range API
//!    is asked for the first five hex digits of the password's SHA-1; a count
//!    at or above `password_breached_count` rejects it (`PASSWORD_BREACHED`).
//!    If the service cannot be asked, `"strict"` rejects the password
//!    (`PASSWORD_BREACHED_SITE_ERROR`) and `true` lets it through;
//! 3. complexity (`password_complexity_checker = "zxcvbn"`): a zxcvbn score
//!    below `zxcvbn_minimum_score` rejects the password with zxcvbn's warning
//!    (English, as in Flask-Security) or, when zxcvbn has none,
//!    `PASSWORD_TOO_SIMPLE`.

use std::time::Duration;

use sha1::{Digest, Sha1};
use unicode_normalization::UnicodeNormalization;

use crate::config::{BreachedCheck, ComplexityChecker, SecurityConfig};
use crate::messages::{Category, Message, Msg};

/// How long a breached-password lookup may take, connection included.
pub const DEFAULT_BREACHED_TIMEOUT: Duration = Duration::from_secs(5);

/// The `User-Agent` sent to the range API (which requires one).
const BREACHED_USER_AGENT: &str =
    concat!("flask_security_rs/", env!("CARGO_PKG_VERSION"), " (Rust)");

/// A range answer is ~40 kB with padding; anything far larger is not one.
const MAX_RANGE_BODY: usize = 1 << 20;

/// Validates new passwords against the configured policy.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    length_min: usize,
    length_max: usize,
    /// Minimum zxcvbn score, when the zxcvbn checker is on.
    zxcvbn_minimum_score: Option<u8>,
    breached: BreachedCheck,
    breached_count: u64,
    breached_url: String,
    timeout: Duration,
    /// HTTP client of the range API (rustls, webpki roots), when checking.
    client: Option<reqwest::Client>,
}

impl PasswordPolicy {
    /// The policy `config` describes.
    pub fn new(config: &SecurityConfig) -> Self {
        let zxcvbn_minimum_score = config
            .password_complexity_checker
            .map(|ComplexityChecker::Zxcvbn| config.zxcvbn_minimum_score);
        let client = if config.password_check_breached == BreachedCheck::Off {
            None
        } else {
            match reqwest::Client::builder()
                .user_agent(BREACHED_USER_AGENT)
                .build()
            {
                Ok(c) => Some(c),
                Err(e) => {
                    log::error!("HTTP client for the breached password check failed: {e}");
                    None
                }
            }
        };
        PasswordPolicy {
            length_min: config.password_length_min,
            length_max: config.password_length_max,
            zxcvbn_minimum_score,
            breached: config.password_check_breached,
            breached_count: config.password_breached_count,
            breached_url: config.password_breached_url.clone(),
            timeout: DEFAULT_BREACHED_TIMEOUT,
            client,
        }
    }

    /// Sets the time limit of a breached-password lookup
    /// (default [`DEFAULT_BREACHED_TIMEOUT`]).
    #[cfg(test)]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The errors (wire messages) for `password`; empty when it is acceptable.
    ///
    /// `user_inputs` are the user's own strings (email, username, names…) that
    /// zxcvbn penalises; the local part of any email among them is added too.
    /// Like Flask-Security this stops at the first failing stage: length,
    /// then breached list, then complexity.
    pub async fn validate(&self, password: &str, user_inputs: &[&str]) -> Vec<Message> {
        let pnorm: String = password.nfkd().collect();

        let len = pnorm.chars().count();
        if len < self.length_min || len > self.length_max {
            return vec![Message::new(Msg::PasswordInvalidLength).arg("length", self.length_min)];
        }

        if self.breached != BreachedCheck::Off {
            match self.breached_count_of(&pnorm).await {
                Ok(count) if count >= self.breached_count => {
                    return vec![Msg::PasswordBreached.into()];
                }
                Ok(_) => {}
                Err(e) => {
                    log::warn!("breached password check failed: {e}");
                    if self.breached == BreachedCheck::Strict {
                        return vec![Msg::PasswordBreachedSiteError.into()];
                    }
                }
            }
        }

        if let Some(minimum) = self.zxcvbn_minimum_score {
            let inputs = expand_user_inputs(user_inputs);
            let verdict =
                tokio::task::spawn_blocking(move || complexity(&pnorm, &inputs, minimum)).await;
            match verdict {
                Ok(None) => {}
                Ok(Some(error)) => return vec![error],
                Err(e) => {
                    log::error!("password complexity task failed: {e}");
                    return vec![Msg::PasswordTooSimple.into()];
                }
            }
        }

        Vec::new()
    }

    /// How often the range API has seen `password` (0 when not listed).
    async fn breached_count_of(&self, password: &str) -> Result<u64, String> {
        let digest = hex::encode_upper(Sha1::digest(password.as_bytes()));
        let (prefix, suffix) = digest.split_at(5);
        let url = format!("{}{}", self.breached_url, prefix);
        let body = match tokio::time::timeout(self.timeout, self.fetch(&url)).await {
            Ok(r) => r?,
            Err(_) => return Err(format!("no answer from {url} within {:?}", self.timeout)),
        };
        parse_range(&body, suffix)
    }

    /// GETs `url` (`http://` or `https://`) with `Add-Padding: true`.
    async fn fetch(&self, url: &str) -> Result<String, String> {
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let mut response = client
            .get(url)
            .header("Add-Padding", "true")
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| format!("asking {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP status {status}"));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading response: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_RANGE_BODY {
                return Err("response too large for a range answer".into());
            }
        }
        String::from_utf8(body).map_err(|_| "response is not UTF-8".to_string())
    }
}

/// The count of `suffix` (uppercase hex) in a range answer: `SUFFIX:COUNT`
/// lines (CRLF or LF; padding entries have count 0). A line of another shape
/// means the answer is not a range answer.
fn parse_range(body: &str, suffix: &str) -> Result<u64, String> {
    let body = body.strip_prefix('\u{feff}').unwrap_or(body);
    let mut found = 0;
    for line in body.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (hash, count) = line
            .split_once(':')
            .ok_or_else(|| format!("unexpected range line {line:?}"))?;
        let count: u64 = count
            .trim()
            .parse()
            .map_err(|_| format!("unexpected range count in {line:?}"))?;
        if count > 0 && hash.trim().eq_ignore_ascii_case(suffix) {
            found = found.max(count);
        }
    }
    Ok(found)
}

/// The user inputs handed to zxcvbn: the given ones plus each email's local part.
fn expand_user_inputs(user_inputs: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(user_inputs.len() * 2);
    for input in user_inputs
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        out.push(input.to_string());
        if let Some((local, _domain)) = input.rsplit_once('@').filter(|(l, _)| !l.is_empty()) {
            out.push(local.to_string());
        }
    }
    out
}

/// `None` when zxcvbn scores `password` at least `minimum`, else the error.
fn complexity(password: &str, user_inputs: &[String], minimum: u8) -> Option<Message> {
    let inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(password, &inputs);
    if u8::from(entropy.score()) >= minimum {
        return None;
    }
    // Flask-Security returns zxcvbn's (unlocalised) warning when there is one.
    Some(match entropy.feedback().and_then(|f| f.warning()) {
        Some(w) => Message::text(w.to_string(), Category::Error),
        None => Msg::PasswordTooSimple.into(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the fake range API saw: (path, Add-Padding header).
    type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

    /// A tiny HTTP/1.1 range API: answers `/range/<PREFIX>` with
    /// `ranges[PREFIX]` (or an empty 200), or with `status` when set.
    async fn range_server(ranges: HashMap<String, String>, status: Option<u16>) -> (String, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let seen: Seen = Arc::default();
        let log = seen.clone();
        let ranges = Arc::new(ranges);
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                let ranges = ranges.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).into_owned();
                    let mut lines = head.split("\r\n");
                    let path = lines
                        .next()
                        .unwrap_or("")
                        .split(' ')
                        .nth(1)
                        .unwrap_or("")
                        .to_string();
                    let padding = lines
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("add-padding"))
                        .map(|(_, v)| v.trim().to_string());
                    log.lock().unwrap().push((path.clone(), padding));
                    let prefix = path.rsplit('/').next().unwrap_or("");
                    let (code, body) = match status {
                        Some(code) => (code, String::from("oops")),
                        None => (200, ranges.get(prefix).cloned().unwrap_or_default()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        (format!("http://{addr}/range/"), seen)
    }

    fn sha1_upper(password: &str) -> String {
        hex::encode_upper(Sha1::digest(password.as_bytes()))
    }

    /// A range answer with `password` listed `count` times among other entries.
    fn range_for(password: &str, count: u64, crlf: bool) -> (String, String) {
        let h = sha1_upper(password);
        let (prefix, suffix) = h.split_at(5);
        let nl = if crlf { "\r\n" } else { "\n" };
        let lines = [
            "0018A45C4D1DEF81644B54AB7F969B88D65:3".to_string(),
            format!("{suffix}:{count}"),
            "00D4F6E8FA6EECAD2A3AA415EEC418D38EC:2".to_string(),
        ];
        (prefix.to_string(), lines.join(nl))
    }

    fn config(check: BreachedCheck, url: &str) -> SecurityConfig {
        SecurityConfig {
            password_check_breached: check,
            password_breached_url: url.to_string(),
            ..Default::default()
        }
    }

    const STRONG: &str = "correct horse battery staple quantum";

    #[tokio::test]
    async fn breached_password_rejected_with_prefix_and_padding_header() {
        let pw = "hunter2hunter2";
        let (prefix, body) = range_for(pw, 42, true);
        let (url, seen) = range_server(HashMap::from([(prefix.clone(), body)]), None).await;
        let policy = PasswordPolicy::new(&config(BreachedCheck::On, &url));
        assert_eq!(
            policy.validate(pw, &[]).await,
            vec![Message::from(Msg::PasswordBreached)]
        );
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, format!("/range/{prefix}"));
        assert_eq!(prefix, sha1_upper(pw)[..5].to_string());
        assert!(
            prefix
                .chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(seen[0].1.as_deref(), Some("true"));
    }

    #[tokio::test]
    async fn count_threshold_and_lf_lines() {
        let pw = "some password 123";
        let (prefix, body) = range_for(pw, 4, false);
        let (url, _) = range_server(HashMap::from([(prefix, body)]), None).await;
        let mut c = config(BreachedCheck::Strict, &url);
        c.password_breached_count = 5;
        assert!(PasswordPolicy::new(&c).validate(pw, &[]).await.is_empty());
        c.password_breached_count = 4;
        assert_eq!(
            PasswordPolicy::new(&c).validate(pw, &[]).await,
            vec![Message::from(Msg::PasswordBreached)]
        );
    }

    #[tokio::test]
    async fn padding_entries_ignored() {
        let pw = "padded password";
        let (prefix, body) = range_for(pw, 0, true);
        let (url, seen) = range_server(
            HashMap::from([(prefix, format!("\u{feff}{body}\r\n"))]),
            None,
        )
        .await;
        let policy = PasswordPolicy::new(&config(BreachedCheck::Strict, &url));
        assert!(policy.validate(pw, &[]).await.is_empty());
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Not listed at all.
        assert!(policy.validate("another password", &[]).await.is_empty());
    }

    #[tokio::test]
    async fn unreachable_site_on_vs_strict() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let url = format!("http://{addr}/range/");
        let on = PasswordPolicy::new(&config(BreachedCheck::On, &url));
        assert!(on.validate("hunter2hunter2", &[]).await.is_empty());
        let strict = PasswordPolicy::new(&config(BreachedCheck::Strict, &url));
        assert_eq!(
            strict.validate("hunter2hunter2", &[]).await,
            vec![Message::from(Msg::PasswordBreachedSiteError)]
        );
    }

    #[tokio::test]
    async fn http_error_status_on_vs_strict() {
        let (url, seen) = range_server(HashMap::new(), Some(503)).await;
        assert!(
            PasswordPolicy::new(&config(BreachedCheck::On, &url))
                .validate("hunter2hunter2", &[])
                .await
                .is_empty()
        );
        assert_eq!(
            PasswordPolicy::new(&config(BreachedCheck::Strict, &url))
                .validate("hunter2hunter2", &[])
                .await,
            vec![Message::from(Msg::PasswordBreachedSiteError)]
        );
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn silent_site_times_out() {
        // Accepts connections but never answers.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut socks = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                socks.push(s);
            }
        });
        let url = format!("http://{addr}/range/");
        let strict = PasswordPolicy::new(&config(BreachedCheck::Strict, &url))
            .with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        assert_eq!(
            strict.validate("hunter2hunter2", &[]).await,
            vec![Message::from(Msg::PasswordBreachedSiteError)]
        );
        assert!(started.elapsed() < Duration::from_secs(3));
        let on = PasswordPolicy::new(&config(BreachedCheck::On, &url))
            .with_timeout(Duration::from_millis(300));
        assert!(on.validate("hunter2hunter2", &[]).await.is_empty());
        hold.abort();
    }

    #[tokio::test]
    async fn off_makes_no_request() {
        let pw = "hunter2hunter2";
        let (prefix, body) = range_for(pw, 42, true);
        let (url, seen) = range_server(HashMap::from([(prefix, body)]), None).await;
        let policy = PasswordPolicy::new(&config(BreachedCheck::Off, &url));
        assert!(policy.validate(pw, &[]).await.is_empty());
        assert!(seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn bad_url_is_a_site_error() {
        for url in ["ftp://example.com/range/", "not a url", "http:///range/"] {
            let strict = PasswordPolicy::new(&config(BreachedCheck::Strict, url));
            assert_eq!(
                strict.validate("hunter2hunter2", &[]).await,
                vec![Message::from(Msg::PasswordBreachedSiteError)],
                "{url}"
            );
            let on = PasswordPolicy::new(&config(BreachedCheck::On, url));
            assert!(on.validate("hunter2hunter2", &[]).await.is_empty(), "{url}");
        }
    }

    #[test]
    fn parse_range_answers() {
        let body = "0018A45C4D1DEF81644B54AB7F969B88D65:3\r\nABCDEF:0\r\nabcdef:7\r\n";
        assert_eq!(parse_range(body, "ABCDEF").unwrap(), 7);
        assert_eq!(parse_range("ABCDEF:0\n", "ABCDEF").unwrap(), 0);
        assert_eq!(parse_range("", "ABCDEF").unwrap(), 0);
        assert!(parse_range("<html>oops</html>", "ABCDEF").is_err());
        assert!(parse_range("ABCDEF:many", "ABCDEF").is_err());
    }

    fn zxcvbn_config() -> SecurityConfig {
        SecurityConfig {
            password_complexity_checker: Some(ComplexityChecker::Zxcvbn),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn zxcvbn_rejects_common_password() {
        let policy = PasswordPolicy::new(&zxcvbn_config());
        // Flask-Security answers with zxcvbn's own warning when it has one.
        assert_eq!(
            policy.validate("password", &[]).await,
            vec![Message::text(
                "This is a top-10 common password.",
                Category::Error
            )]
        );
        assert_eq!(policy.validate("iloveyou", &[]).await.len(), 1);
    }

    #[tokio::test]
    async fn zxcvbn_without_warning_says_too_simple() {
        let policy = PasswordPolicy::new(&zxcvbn_config());
        // Random-looking but short: brute force, for which zxcvbn has no warning.
        assert_eq!(
            policy.validate("kqzpwvbx", &[]).await,
            vec![Message::from(Msg::PasswordTooSimple)]
        );
    }

    #[tokio::test]
    async fn zxcvbn_accepts_passphrase_and_honours_minimum() {
        let policy = PasswordPolicy::new(&zxcvbn_config());
        assert!(policy.validate(STRONG, &[]).await.is_empty());
        assert!(policy.validate("Tr0ub4dour&3-xq!Vv9", &[]).await.is_empty());
        let mut c = zxcvbn_config();
        c.zxcvbn_minimum_score = 0;
        assert!(
            PasswordPolicy::new(&c)
                .validate("password", &[])
                .await
                .is_empty()
        );
        // Off by default.
        assert!(
            PasswordPolicy::new(&SecurityConfig::default())
                .validate("password", &[])
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn zxcvbn_user_inputs_lower_the_score() {
        let policy = PasswordPolicy::new(&zxcvbn_config());
        let pw = "qyxzhorvath1987";
        assert!(policy.validate(pw, &[]).await.is_empty());
        assert!(
            !policy
                .validate(pw, &["qyxzhorvath@example.com"])
                .await
                .is_empty()
        );
        assert!(!policy.validate(pw, &["qyxzhorvath"]).await.is_empty());
        assert!(
            policy
                .validate(pw, &["someone@example.com", "alice"])
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn length_limits_count_nfkd_chars() {
        let policy = PasswordPolicy::new(&SecurityConfig::default());
        let too_short = vec![Message::new(Msg::PasswordInvalidLength).arg("length", 8)];
        assert_eq!(policy.validate("", &[]).await, too_short);
        assert_eq!(policy.validate("1234567", &[]).await, too_short);
        assert!(policy.validate("12345678", &[]).await.is_empty());
        assert!(policy.validate(&"a".repeat(128), &[]).await.is_empty());
        assert_eq!(policy.validate(&"a".repeat(129), &[]).await, too_short);
        // Four characters, eight after NFKD (each decomposes to a base + combining mark).
        assert_eq!("éèêë".chars().count(), 4);
        assert!(policy.validate("éèêë", &[]).await.is_empty());
        // U+FB03 (ffi ligature) is one character, three after NFKD.
        assert!(policy.validate("\u{FB03}\u{FB03}xy", &[]).await.is_empty());
        assert_eq!(policy.validate("\u{FB03}\u{FB03}x", &[]).await, too_short);
        // 64 × U+FB03 is 192 characters after NFKD.
        assert_eq!(
            policy.validate(&"\u{FB03}".repeat(64), &[]).await,
            too_short
        );
        let c = SecurityConfig {
            password_length_min: 12,
            password_length_max: 20,
            ..Default::default()
        };
        let policy = PasswordPolicy::new(&c);
        assert_eq!(
            policy.validate("elevenchars", &[]).await,
            vec![Message::new(Msg::PasswordInvalidLength).arg("length", 12)]
        );
        assert_eq!(
            policy.validate(&"x".repeat(21), &[]).await,
            vec![Message::new(Msg::PasswordInvalidLength).arg("length", 12)]
        );
    }

    #[tokio::test]
    async fn first_failing_stage_only() {
        // Too short and breached: only the length error, and no request.
        let pw = "pass";
        let (prefix, body) = range_for(pw, 9, true);
        let (url, seen) = range_server(HashMap::from([(prefix, body)]), None).await;
        let mut c = config(BreachedCheck::Strict, &url);
        c.password_complexity_checker = Some(ComplexityChecker::Zxcvbn);
        let policy = PasswordPolicy::new(&c);
        assert_eq!(
            policy.validate(pw, &[]).await,
            vec![Message::new(Msg::PasswordInvalidLength).arg("length", 8)]
        );
        assert!(seen.lock().unwrap().is_empty());
        // Breached and too simple: breached is reported (checked before complexity).
        let pw = "password";
        let (prefix, body) = range_for(pw, 9, true);
        let (url, _) = range_server(HashMap::from([(prefix, body)]), None).await;
        let mut c = config(BreachedCheck::Strict, &url);
        c.password_complexity_checker = Some(ComplexityChecker::Zxcvbn);
        assert_eq!(
            PasswordPolicy::new(&c).validate(pw, &[]).await,
            vec![Message::from(Msg::PasswordBreached)]
        );
        // The hash is of the NFKD form.
        let (prefix, body) = range_for("\u{0065}\u{0301}tude12345", 9, true);
        let (url, _) = range_server(HashMap::from([(prefix, body)]), None).await;
        let policy = PasswordPolicy::new(&config(BreachedCheck::Strict, &url));
        assert_eq!(
            policy.validate("\u{00e9}tude12345", &[]).await,
            vec![Message::from(Msg::PasswordBreached)]
        );
    }

    #[test]
    fn https_client_builds_only_when_checking() {
        let on = PasswordPolicy::new(&config(
            BreachedCheck::On,
            "https://api.pwnedpasswords.com/range/",
        ));
        assert!(on.client.is_some());
        let off = PasswordPolicy::new(&config(BreachedCheck::Off, "https://x.invalid/"));
        assert!(off.client.is_none());
    }
}
