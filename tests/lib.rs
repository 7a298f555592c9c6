//! Test support for the `flask_security_rs` integration tests (`tests/it`).
//!
//! * [`SmtpSink`]: a real (plain, no TLS, no AUTH) SMTP server on
//!   `127.0.0.1:<random port>` that records every message, for tests that
//!   point the app's mailer (lettre's
//!   `AsyncSmtpTransport::builder_dangerous("127.0.0.1").port(sink.port())`)
//!   at it and then read the mails back ([`SmtpSink::wait_for`]).

pub use smtp::{SentMail, SmtpSink};

pub mod smtp {
    //! A minimal ESMTP sink (RFC 5321 subset) with a MIME reader for the
    //! messages lettre builds.

    use std::collections::HashMap;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Mutex, watch};
    use tokio::task::{JoinHandle, JoinSet};

    /// Largest accepted message (DATA), in bytes.
    const MAX_MESSAGE: usize = 32 * 1024 * 1024;
    /// Longest accepted command line, in bytes.
    const MAX_LINE: usize = 64 * 1024;
    const SERVER_NAME: &str = "fs-tests-smtp-sink";

    /// One message received by the sink.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub struct SentMail {
        /// Address of the `From` header (the envelope sender, `MAIL FROM`, when
        /// the message has no `From` header).
        pub from: String,
        /// Envelope recipients (`RCPT TO`, in order): the `To`, `Cc` and `Bcc`
        /// addresses for lettre.
        pub to: Vec<String>,
        /// `Subject` header, unfolded and RFC 2047 decoded.
        pub subject: String,
        /// First `text/plain` part (or the body of a non-MIME message),
        /// transfer-decoded, line endings `\n`.
        pub text: String,
        /// First `text/html` part, transfer-decoded, line endings `\n`
        /// (empty when there is none).
        pub html: String,
        /// The message as received (after dot-unstuffing), `CRLF` line endings.
        pub raw: String,
    }

    impl SentMail {
        /// Whether `addr` is one of the envelope recipients (case-insensitive).
        pub fn is_to(&self, addr: &str) -> bool {
            self.to.iter().any(|t| t.eq_ignore_ascii_case(addr.trim()))
        }

        /// Parse a message (RFC 5322 + MIME) received for the given envelope.
        pub fn parse(envelope_from: &str, envelope_to: Vec<String>, raw: &[u8]) -> SentMail {
            let raw = String::from_utf8_lossy(raw).into_owned();
            let (headers, body) = split_entity(&raw);
            let from = header(&headers, "from")
                .map(|v| first_address(&decode_words(v)))
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| envelope_from.to_owned());
            let subject = header(&headers, "subject")
                .map(decode_words)
                .unwrap_or_default();
            let mut found = Found::default();
            let is_multipart = content_type(&headers).0.starts_with("multipart/");
            // lettre's SMTP client always ends DATA with "\r\n.\r\n" (one CRLF
            // more than the message has), and a SinglePart message body gets
            // one more CRLF (like the CRLF before a MIME boundary, neither is
            // content). Multipart bodies are cut at their boundaries anyway.
            let mut body = body.as_str();
            if !is_multipart {
                let extra = if header(&headers, "mime-version").is_some() {
                    2
                } else {
                    1
                };
                for _ in 0..extra {
                    body = body.strip_suffix("\r\n").unwrap_or(body);
                }
            }
            walk(&headers, body, &mut found, 0);
            SentMail {
                from,
                to: envelope_to,
                subject,
                text: found.text.unwrap_or_default(),
                html: found.html.unwrap_or_default(),
                raw,
            }
        }
    }

    struct Shared {
        mails: Mutex<Vec<SentMail>>,
        /// Bumped after each stored message (wakes [`SmtpSink::wait_for`]).
        received: watch::Sender<u64>,
    }

    /// A plain SMTP server on `127.0.0.1:<random port>`, running on the
    /// current tokio runtime; it stops when dropped.
    ///
    /// Speaks: greeting `220`, `EHLO` (multi-line `250`: `8BITMIME`,
    /// `SMTPUTF8`, `PIPELINING`, `SIZE`), `HELO`, `MAIL FROM`, `RCPT TO`,
    /// `DATA` (dot-unstuffing), `RSET`, `NOOP`, `VRFY`, `QUIT`; any number of
    /// sequential or concurrent connections and messages per connection.
    pub struct SmtpSink {
        addr: SocketAddr,
        shared: Arc<Shared>,
        accept: JoinHandle<()>,
    }

    impl std::fmt::Debug for SmtpSink {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("SmtpSink")
                .field("addr", &self.addr)
                .finish_non_exhaustive()
        }
    }

    impl SmtpSink {
        /// Start a sink on `127.0.0.1:0`.
        ///
        /// # Panics
        /// When no loopback port can be bound (see [`SmtpSink::try_start`]).
        #[allow(clippy::expect_used)]
        pub async fn start() -> SmtpSink {
            SmtpSink::try_start()
                .await
                .expect("SmtpSink: cannot bind a port on 127.0.0.1")
        }

        /// Start a sink on `127.0.0.1:0`.
        pub async fn try_start() -> io::Result<SmtpSink> {
            let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
            let addr = listener.local_addr()?;
            let (received, _) = watch::channel(0u64);
            let shared = Arc::new(Shared {
                mails: Mutex::new(Vec::new()),
                received,
            });
            let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
            Ok(SmtpSink {
                addr,
                shared,
                accept,
            })
        }

        /// The port the sink listens on (host `127.0.0.1`).
        pub fn port(&self) -> u16 {
            self.addr.port()
        }

        /// The host the sink listens on: `"127.0.0.1"`.
        pub fn host(&self) -> String {
            self.addr.ip().to_string()
        }

        /// All messages received so far, oldest first.
        pub async fn messages(&self) -> Vec<SentMail> {
            self.shared.mails.lock().await.clone()
        }

        /// Forget all messages received so far.
        pub async fn clear(&self) {
            self.shared.mails.lock().await.clear();
        }

        /// Wait (up to `timeout`) for a message with `to` among its envelope
        /// recipients (case-insensitive) whose subject contains `subject`
        /// (`""` matches any subject). Messages received before the call count
        /// too; the newest match is returned.
        pub async fn wait_for(
            &self,
            to: &str,
            subject: &str,
            timeout: Duration,
        ) -> Option<SentMail> {
            let deadline = tokio::time::Instant::now() + timeout;
            // Subscribe before looking, so a message stored in between wakes us.
            let mut rx = self.shared.received.subscribe();
            loop {
                if let Some(mail) = self.find(to, subject).await {
                    return Some(mail);
                }
                match tokio::time::timeout_at(deadline, rx.changed()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => return self.find(to, subject).await,
                }
            }
        }

        async fn find(&self, to: &str, subject: &str) -> Option<SentMail> {
            let mails = self.shared.mails.lock().await;
            mails
                .iter()
                .rev()
                .find(|m| m.is_to(to) && m.subject.contains(subject))
                .cloned()
        }
    }

    impl Drop for SmtpSink {
        fn drop(&mut self) {
            // Dropping the accept loop drops its JoinSet: open connections end too.
            self.accept.abort();
        }
    }

    async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
        let mut connections = JoinSet::new();
        loop {
            // Reap finished connection tasks.
            while connections.try_join_next().is_some() {}
            match listener.accept().await {
                Ok((stream, _)) => {
                    connections.spawn(handle_connection(stream, Arc::clone(&shared)));
                }
                Err(_) => {
                    // e.g. too many open files: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }

    /// The SMTP transaction state of one connection.
    #[derive(Default)]
    struct Transaction {
        from: Option<String>,
        to: Vec<String>,
    }

    async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) {
        // I/O errors just end the connection.
        let _ = serve(stream, &shared).await;
    }

    async fn serve(stream: TcpStream, shared: &Shared) -> io::Result<()> {
        let (reader, mut writer) = stream.into_split();
        let mut reader = BufReader::new(reader);
        writer
            .write_all(format!("220 {SERVER_NAME} ESMTP ready\r\n").as_bytes())
            .await?;
        let mut tx = Transaction::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64)
                .read_until(b'\n', &mut line)
                .await?;
            if n == 0 {
                return Ok(());
            }
            if !line.ends_with(b"\n") && n >= MAX_LINE {
                writer.write_all(b"500 5.5.6 Line too long\r\n").await?;
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line);
            let command = text.trim_end_matches(['\r', '\n']);
            let (verb, arg) = match command.split_once(' ') {
                Some((v, a)) => (v.to_ascii_uppercase(), a.trim()),
                None => (command.to_ascii_uppercase(), ""),
            };
            let reply: String = match verb.as_str() {
                "EHLO" => {
                    tx = Transaction::default();
                    format!(
                        "250-{SERVER_NAME} greets {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                         250-PIPELINING\r\n250 SIZE {MAX_MESSAGE}\r\n",
                        if arg.is_empty() { "you" } else { arg }
                    )
                }
                "HELO" => {
                    tx = Transaction::default();
                    format!("250 {SERVER_NAME}\r\n")
                }
                "MAIL" => match path_after(arg, "FROM:") {
                    Some(addr) => {
                        tx = Transaction {
                            from: Some(addr),
                            to: Vec::new(),
                        };
                        "250 2.1.0 OK\r\n".into()
                    }
                    None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".into(),
                },
                "RCPT" => {
                    if tx.from.is_none() {
                        "503 5.5.1 Need MAIL before RCPT\r\n".into()
                    } else {
                        match path_after(arg, "TO:") {
                            Some(addr) if !addr.is_empty() => {
                                tx.to.push(addr);
                                "250 2.1.5 OK\r\n".into()
                            }
                            _ => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".into(),
                        }
                    }
                }
                "DATA" => {
                    if tx.from.is_none() || tx.to.is_empty() {
                        "503 5.5.1 Need MAIL and RCPT before DATA\r\n".into()
                    } else {
                        writer
                            .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                            .await?;
                        let reply = match read_data(&mut reader).await? {
                            Some(raw) => {
                                let from = tx.from.take().unwrap_or_default();
                                let to = std::mem::take(&mut tx.to);
                                let mail = SentMail::parse(&from, to, &raw);
                                shared.mails.lock().await.push(mail);
                                shared.received.send_modify(|n| *n += 1);
                                "250 2.0.0 OK: queued\r\n"
                            }
                            None => "552 5.3.4 Message too big\r\n",
                        };
                        tx = Transaction::default();
                        reply.into()
                    }
                }
                "RSET" => {
                    tx = Transaction::default();
                    "250 2.0.0 OK\r\n".into()
                }
                "NOOP" => "250 2.0.0 OK\r\n".into(),
                "VRFY" => "252 2.5.0 Cannot VRFY user\r\n".into(),
                "QUIT" => {
                    writer.write_all(b"221 2.0.0 Bye\r\n").await?;
                    writer.shutdown().await?;
                    return Ok(());
                }
                "" => "500 5.5.2 Empty command\r\n".into(),
                _ => "502 5.5.2 Command not implemented\r\n".into(),
            };
            writer.write_all(reply.as_bytes()).await?;
        }
    }

    /// Read DATA lines up to the `.` line, undoing dot-stuffing. `None`: the
    /// message was larger than [`MAX_MESSAGE`] (read and dropped).
    async fn read_data<R>(reader: &mut R) -> io::Result<Option<Vec<u8>>>
    where
        R: tokio::io::AsyncBufRead + Unpin,
    {
        let mut data = Vec::new();
        let mut too_big = false;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).await?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF in DATA"));
            }
            if line == b".\r\n" || line == b".\n" {
                break;
            }
            let content = line.strip_prefix(b".").unwrap_or(&line);
            if data.len() + content.len() > MAX_MESSAGE {
                too_big = true;
                data.clear();
            }
            if !too_big {
                data.extend_from_slice(content);
            }
        }
        Ok(if too_big { None } else { Some(data) })
    }

    /// `FROM:<a@b> PARAMS` -> `a@b` (`<>` -> empty string).
    fn path_after(arg: &str, keyword: &str) -> Option<String> {
        let head = arg.get(..keyword.len())?;
        if !head.eq_ignore_ascii_case(keyword) {
            return None;
        }
        let rest = arg.get(keyword.len()..)?.trim_start();
        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner.find('>')?;
            Some(inner.get(..end)?.trim().to_owned())
        } else {
            let addr = rest.split_whitespace().next()?;
            Some(addr.to_owned())
        }
    }

    // ---- MIME ---------------------------------------------------------------

    type Headers = Vec<(String, String)>;

    #[derive(Default)]
    struct Found {
        text: Option<String>,
        html: Option<String>,
    }

    /// Split an entity (message or MIME part) into unfolded headers
    /// (lower-case names) and its body (lines joined with `CRLF`).
    fn split_entity(raw: &str) -> (Headers, String) {
        let mut headers: Headers = Vec::new();
        let mut lines = raw.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        for line in lines.by_ref() {
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
                continue;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
            }
        }
        let body = lines.collect::<Vec<_>>().join("\r\n");
        let headers = headers
            .into_iter()
            .map(|(n, v)| (n, v.trim().to_owned()))
            .collect();
        (headers, body)
    }

    fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `type/subtype` (lower-case, default `text/plain`) and parameters
    /// (lower-case names, unquoted values).
    fn content_type(headers: &Headers) -> (String, HashMap<String, String>) {
        match header(headers, "content-type") {
            Some(v) => {
                let (mime, params) = split_params(v);
                let mime = if mime.is_empty() {
                    "text/plain".to_owned()
                } else {
                    mime
                };
                (mime, params)
            }
            None => ("text/plain".to_owned(), HashMap::new()),
        }
    }

    /// `value; a=b; c="d;e"` -> (`value` lower-cased, {a: b, c: d;e}).
    fn split_params(v: &str) -> (String, HashMap<String, String>) {
        let mut parts: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut escaped = false;
        for c in v.chars() {
            if escaped {
                cur.push(c);
                escaped = false;
            } else if quoted && c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = !quoted;
            } else if c == ';' && !quoted {
                parts.push(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
        }
        parts.push(cur);
        let mut iter = parts.into_iter();
        let value = iter.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = iter
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            })
            .collect();
        (value, params)
    }

    fn walk(headers: &Headers, body: &str, found: &mut Found, depth: usize) {
        if depth > 16 || (found.text.is_some() && found.html.is_some()) {
            return;
        }
        let (mime, params) = content_type(headers);
        if mime.starts_with("multipart/") {
            let Some(boundary) = params.get("boundary") else {
                return;
            };
            for part in split_multipart(body, boundary) {
                let (h, b) = split_entity(&part);
                walk(&h, &b, found, depth + 1);
            }
            return;
        }
        let attachment = header(headers, "content-disposition")
            .map(|d| split_params(d).0 == "attachment")
            .unwrap_or(false);
        if attachment {
            return;
        }
        let slot = match mime.as_str() {
            "text/plain" => &mut found.text,
            "text/html" => &mut found.html,
            _ => return,
        };
        if slot.is_none() {
            let charset = params.get("charset").map(|c| c.to_ascii_lowercase());
            *slot = Some(decode_body(headers, body, charset.as_deref()));
        }
    }

    /// The parts of a multipart body (the CRLF before each delimiter line
    /// belongs to the delimiter).
    fn split_multipart(body: &str, boundary: &str) -> Vec<String> {
        let delimiter = format!("--{boundary}");
        let close = format!("--{boundary}--");
        let mut parts = Vec::new();
        let mut current: Option<Vec<&str>> = None;
        for line in body.split("\r\n") {
            let l = line.trim_end();
            if l == close {
                break;
            }
            if l == delimiter {
                if let Some(lines) = current.take() {
                    parts.push(lines.join("\r\n"));
                }
                current = Some(Vec::new());
            } else if let Some(lines) = current.as_mut() {
                lines.push(line);
            }
        }
        if let Some(lines) = current {
            parts.push(lines.join("\r\n"));
        }
        parts
    }

    const B64: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );

    fn decode_body(headers: &Headers, body: &str, charset: Option<&str>) -> String {
        let cte = header(headers, "content-transfer-encoding")
            .map(|v| v.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let bytes = match cte.as_str() {
            "quoted-printable" => {
                quoted_printable::decode(body.as_bytes(), quoted_printable::ParseMode::Robust)
                    .unwrap_or_else(|_| body.as_bytes().to_vec())
            }
            "base64" => {
                let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                B64.decode(compact.as_bytes())
                    .unwrap_or_else(|_| body.as_bytes().to_vec())
            }
            _ => body.as_bytes().to_vec(), // 7bit, 8bit, binary
        };
        charset_decode(&bytes, charset).replace("\r\n", "\n")
    }

    fn charset_decode(bytes: &[u8], charset: Option<&str>) -> String {
        match charset {
            Some("iso-8859-1" | "latin1" | "latin-1") => {
                bytes.iter().map(|&b| char::from(b)).collect()
            }
            _ => String::from_utf8_lossy(bytes).into_owned(),
        }
    }

    /// Decode RFC 2047 encoded-words (`=?utf-8?b?...?=`, `=?utf-8?q?...?=`);
    /// whitespace between adjacent encoded-words is dropped and their bytes
    /// are joined before charset decoding (a character may be split).
    pub(crate) fn decode_words(value: &str) -> String {
        let mut out = String::new();
        let mut pending: Vec<u8> = Vec::new();
        let mut pending_charset: Option<String> = None;
        let mut rest = value;
        loop {
            let Some(start) = rest.find("=?") else {
                flush(&mut out, &mut pending, &mut pending_charset);
                out.push_str(rest);
                return out;
            };
            let (before, from) = rest.split_at(start);
            match parse_encoded_word(from) {
                Some((charset, bytes, after)) => {
                    let adjacent = pending_charset.is_some() && before.trim().is_empty();
                    if !adjacent || pending_charset.as_deref() != Some(charset.as_str()) {
                        flush(&mut out, &mut pending, &mut pending_charset);
                    }
                    if !adjacent {
                        out.push_str(before);
                    }
                    pending.extend_from_slice(&bytes);
                    pending_charset = Some(charset);
                    rest = after;
                }
                None => {
                    flush(&mut out, &mut pending, &mut pending_charset);
                    out.push_str(before);
                    out.push_str("=?");
                    rest = from.get(2..).unwrap_or("");
                }
            }
        }
    }

    fn flush(out: &mut String, pending: &mut Vec<u8>, charset: &mut Option<String>) {
        if let Some(cs) = charset.take() {
            out.push_str(&charset_decode(pending, Some(cs.as_str())));
        }
        pending.clear();
    }

    /// `=?charset?E?text?=...` -> (charset lower-case, decoded bytes, rest).
    fn parse_encoded_word(s: &str) -> Option<(String, Vec<u8>, &str)> {
        let inner = s.strip_prefix("=?")?;
        let (charset, inner) = inner.split_once('?')?;
        let (encoding, inner) = inner.split_once('?')?;
        let end = inner.find("?=")?;
        let text = inner.get(..end)?;
        let after = inner.get(end + 2..)?;
        if charset.is_empty() || text.contains(char::is_whitespace) {
            return None;
        }
        // RFC 2231 language suffix: utf-8*en
        let charset = charset
            .split('*')
            .next()
            .unwrap_or(charset)
            .to_ascii_lowercase();
        let bytes = match encoding {
            "B" | "b" => B64.decode(text.as_bytes()).ok()?,
            "Q" | "q" => decode_q(text),
            _ => return None,
        };
        Some((charset, bytes, after))
    }

    fn decode_q(text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len());
        let mut bytes = text.bytes();
        while let Some(b) = bytes.next() {
            match b {
                b'_' => out.push(b' '),
                b'=' => {
                    let mut probe = bytes.clone();
                    match (probe.next(), probe.next()) {
                        (Some(hi), Some(lo)) if hex_pair(hi, lo).is_some() => {
                            out.extend(hex_pair(hi, lo));
                            bytes = probe;
                        }
                        _ => out.push(b'='),
                    }
                }
                b => out.push(b),
            }
        }
        out
    }

    fn hex_pair(hi: u8, lo: u8) -> Option<u8> {
        let hi = char::from(hi).to_digit(16)?;
        let lo = char::from(lo).to_digit(16)?;
        u8::try_from(hi * 16 + lo).ok()
    }

    /// The first address of an address-list header value: `Name <a@b>` -> `a@b`.
    fn first_address(value: &str) -> String {
        if let Some(open) = value.find('<')
            && let Some(len) = value.get(open + 1..).and_then(|r| r.find('>'))
            && let Some(addr) = value.get(open + 1..open + 1 + len)
        {
            return addr.trim().to_owned();
        }
        value.split(',').next().unwrap_or("").trim().to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::time::Duration;

    use lettre::message::header::{ContentTransferEncoding, ContentType};
    use lettre::message::{Body, MultiPart, SinglePart};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::TcpStream;

    use super::SmtpSink;
    use super::smtp::decode_words;

    const WAIT: Duration = Duration::from_secs(5);

    /// A raw SMTP client dialogue: one line out, expected reply code in.
    struct Client {
        reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
        writer: tokio::net::tcp::OwnedWriteHalf,
    }

    impl Client {
        async fn connect(port: u16) -> Client {
            let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (r, w) = stream.into_split();
            let mut c = Client {
                reader: BufReader::new(r),
                writer: w,
            };
            c.expect(220).await;
            c
        }

        /// Read one (possibly multi-line) reply, check its code, return its lines.
        async fn expect(&mut self, code: u16) -> Vec<String> {
            let mut lines = Vec::new();
            loop {
                let mut line = String::new();
                let n = self.reader.read_line(&mut line).await.unwrap();
                assert!(n > 0, "connection closed, expected {code}");
                let line = line.trim_end().to_owned();
                assert!(
                    line.starts_with(&code.to_string()),
                    "expected {code}, got {line:?}"
                );
                let last = line.as_bytes().get(3) != Some(&b'-');
                lines.push(line);
                if last {
                    return lines;
                }
            }
        }

        async fn cmd(&mut self, line: &str, code: u16) -> Vec<String> {
            self.writer
                .write_all(format!("{line}\r\n").as_bytes())
                .await
                .unwrap();
            self.expect(code).await
        }
    }

    #[tokio::test]
    async fn raw_dialogue_two_mails_one_connection() {
        let sink = SmtpSink::start().await;
        let mut c = Client::connect(sink.port()).await;
        let ehlo = c.cmd("EHLO client.example", 250).await;
        assert!(
            ehlo.len() > 1 && ehlo.iter().any(|l| l.contains("8BITMIME")),
            "{ehlo:?}"
        );
        c.cmd("NOOP", 250).await;
        c.cmd("RCPT TO:<early@example.com>", 503).await;
        c.cmd("DATA", 503).await;
        c.cmd("FOO", 502).await;

        // Mail 1: multipart/alternative, quoted-printable text (soft line break,
        // =3D, dot-stuffed line), base64 html, folded Q-encoded subject.
        c.cmd("MAIL FROM:<bounce@example.com> BODY=8BITMIME", 250)
            .await;
        c.cmd("RCPT TO:<Alice@Example.com>", 250).await;
        c.cmd("rcpt to: <bob@example.com>", 250).await;
        c.cmd("DATA", 354).await;
        let html_b64 = "PHA+SGVsbG8gPGI+V8O2cmxkPC9iPjwvcD4="; // <p>Hello <b>Wörld</b></p>
        let mail1 = [
            "From: \"No Reply\" <no-reply@example.com>",
            "To: alice@example.com, bob@example.com",
            "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_und?=",
            " =?utf-8?q?_Willkommen?=",
            "MIME-Version: 1.0",
            "Content-Type: multipart/alternative;",
            " boundary=\"XyZ-123\"",
            "",
            "preamble",
            "--XyZ-123",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: quoted-printable",
            "",
            "Line one with a very long link http://127.0.0.1:8000/confirm/abc?x=3Dy&z=",
            "=3D1 end",
            "..leading dot",
            "Caf=C3=A9",
            "--XyZ-123",
            "Content-Type: text/html; charset=\"utf-8\"",
            "Content-Transfer-Encoding: base64",
            "",
            html_b64,
            "--XyZ-123--",
            "epilogue",
            ".",
        ]
        .join("\r\n");
        c.writer
            .write_all(format!("{mail1}\r\n").as_bytes())
            .await
            .unwrap();
        c.expect(250).await;

        // Mail 2 on the same connection after RSET: plain 7bit, non-MIME.
        c.cmd("MAIL FROM:<x@example.com>", 250).await;
        c.cmd("RSET", 250).await;
        c.cmd("HELO again", 250).await;
        c.cmd("MAIL FROM:<>", 250).await;
        c.cmd("RCPT TO:<carol@example.com>", 250).await;
        c.cmd("DATA", 354).await;
        c.writer
            .write_all(b"Subject: Plain one\r\n\r\nHello Carol\r\n..\r\n...two dots\r\n.\r\n")
            .await
            .unwrap();
        c.expect(250).await;
        c.cmd("QUIT", 221).await;

        let mails = sink.messages().await;
        assert_eq!(mails.len(), 2);
        let m = &mails[0];
        assert_eq!(m.from, "no-reply@example.com");
        assert_eq!(
            m.to,
            vec!["Alice@Example.com".to_owned(), "bob@example.com".to_owned()]
        );
        assert_eq!(m.subject, "Grüße und Willkommen");
        assert_eq!(
            m.text,
            "Line one with a very long link http://127.0.0.1:8000/confirm/abc?x=y&z=1 end\n\
             .leading dot\nCafé"
        );
        assert_eq!(m.html, "<p>Hello <b>Wörld</b></p>");
        assert!(
            m.raw.contains("\r\n.leading dot\r\n"),
            "dot-unstuffed raw: {:?}",
            m.raw
        );
        assert!(m.raw.ends_with("epilogue\r\n"));

        let m = &mails[1];
        assert_eq!(m.from, "", "no From header, null envelope sender");
        assert_eq!(m.to, vec!["carol@example.com".to_owned()]);
        assert_eq!(m.subject, "Plain one");
        assert_eq!(m.text, "Hello Carol\n.\n..two dots");
        assert_eq!(m.html, "");

        let found = sink
            .wait_for("ALICE@example.com", "Willkommen", WAIT)
            .await
            .unwrap();
        assert_eq!(found.subject, "Grüße und Willkommen");
        assert!(
            sink.wait_for("nobody@example.com", "", Duration::from_millis(50))
                .await
                .is_none()
        );
    }

    fn mailer(sink: &SmtpSink) -> AsyncSmtpTransport<Tokio1Executor> {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(sink.host())
            .port(sink.port())
            .timeout(Some(Duration::from_secs(5)))
            .build()
    }

    #[tokio::test]
    async fn lettre_two_mails_concurrently() {
        let sink = SmtpSink::start().await;

        // 1: ASCII, alternative plain/html as Flask-Security sends them.
        let text1 = "Please confirm your email through the link below:\n\n\
                     http://127.0.0.1:8000/confirm/InRva2VuIg.abc-def_ghi?next=%2F&x=1\n\
                     .a line starting with a dot\n";
        let html1 = "<p>Please confirm your email through the link below:</p>\n\
                     <p><a href=\"http://127.0.0.1:8000/confirm/InRva2VuIg.abc-def_ghi\">Confirm my account</a></p>";
        let m1 = Message::builder()
            .from("no-reply@example.com".parse().unwrap())
            .to("new.user@example.com".parse().unwrap())
            .subject("Please confirm your email")
            .multipart(MultiPart::alternative_plain_html(
                text1.to_owned(),
                html1.to_owned(),
            ))
            .unwrap();

        // 2: non-ASCII long subject (several encoded-words), a long-line
        // quoted-printable text part, a forced base64 html part, To + Cc + Bcc.
        let subject2 = "Bestätigung ✓ – Ihr Konto bei „FS Conformance“ ist fast fertig, \
                        bitte bestätigen Sie Ihre E-Mail-Adresse äöü ÄÖÜ ß";
        let text2 = format!("Grüße, {}\nEnde=Ende\n", "x".repeat(200));
        let html2 = "<p>Grüße <b>für</b> Sie</p>".to_owned();
        let m2 = Message::builder()
            .from("FS Conformance <no-reply@example.com>".parse().unwrap())
            .to("Joerg Example <joerg@example.com>".parse().unwrap())
            .cc("cc@example.com".parse().unwrap())
            .bcc("hidden@example.com".parse().unwrap())
            .subject(subject2)
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(text2.clone()))
                    .singlepart(
                        SinglePart::builder().header(ContentType::TEXT_HTML).body(
                            Body::new_with_encoding(html2.clone(), ContentTransferEncoding::Base64)
                                .unwrap(),
                        ),
                    ),
            )
            .unwrap();

        let (a, b) = (mailer(&sink), mailer(&sink));
        let (r1, r2) = tokio::join!(a.send(m1), b.send(m2));
        r1.unwrap();
        r2.unwrap();

        let got1 = sink
            .wait_for("new.user@example.com", "Please confirm your email", WAIT)
            .await
            .unwrap();
        assert_eq!(got1.from, "no-reply@example.com");
        assert_eq!(got1.to, vec!["new.user@example.com".to_owned()]);
        assert_eq!(got1.subject, "Please confirm your email");
        assert_eq!(got1.text, text1);
        assert_eq!(got1.html, html1);
        assert!(got1.raw.contains("multipart/alternative"));

        let got2 = sink
            .wait_for("hidden@example.com", "Bestätigung", WAIT)
            .await
            .unwrap();
        assert_eq!(got2.from, "no-reply@example.com");
        let mut to = got2.to.clone();
        to.sort();
        assert_eq!(
            to,
            vec!["cc@example.com", "hidden@example.com", "joerg@example.com"]
        );
        assert_eq!(got2.subject, subject2);
        assert_eq!(got2.text, text2);
        assert_eq!(got2.html, html2);
        assert!(
            got2.raw.contains("Content-Transfer-Encoding: base64"),
            "{}",
            got2.raw
        );
        assert!(
            !got2.raw.contains("hidden@example.com"),
            "Bcc must not be in the message"
        );

        // More mails, sequential connections, after the wait started.
        let waiter = {
            let port = sink.port();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                    .port(port)
                    .build();
                for i in 0..3 {
                    let builder = Message::builder()
                        .from("no-reply@example.com".parse().unwrap())
                        .to("late@example.com".parse().unwrap())
                        .subject(format!("Late {i}"));
                    // a raw (non-MIME) body and a MIME single part
                    let m = if i == 1 {
                        builder.singlepart(SinglePart::plain(format!("body {i}\n")))
                    } else {
                        builder.body(format!("body {i}\n"))
                    };
                    mailer.send(m.unwrap()).await.unwrap();
                }
            })
        };
        let late = sink
            .wait_for("late@example.com", "Late 2", WAIT)
            .await
            .unwrap();
        assert_eq!(late.text, "body 2\n");
        assert_eq!(late.html, "");
        waiter.await.unwrap();
        let late1 = sink
            .wait_for("late@example.com", "Late 1", WAIT)
            .await
            .unwrap();
        assert_eq!(late1.text, "body 1\n", "raw: {:?}", late1.raw);
        assert_eq!(sink.messages().await.len(), 5);
    }

    #[test]
    fn encoded_words() {
        assert_eq!(decode_words("plain"), "plain");
        assert_eq!(decode_words("=?UTF-8?B?w6TDtsO8?= x"), "äöü x");
        // adjacent words: whitespace dropped, a character split across words
        assert_eq!(decode_words("=?utf-8?b?ww==?=\t =?utf-8?b?pA==?="), "ä");
        assert_eq!(decode_words("a =?utf-8?q?b_c?= d"), "a b c d");
        assert_eq!(decode_words("=?bogus"), "=?bogus");
        assert_eq!(decode_words("=?iso-8859-1?q?caf=E9?="), "café");
    }
}
