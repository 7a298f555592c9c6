//! Test support for the `flask_security_rs` integration tests (`tests/it`).
//!
//! * [`SmtpSink`]: a real (plain, no TLS, no AUTH) SMTP server on
//!   `127.0.0.1:<random port>` that records every message, for tests that
//!   point the app's mailer (lettre's
//!   `AsyncSmtpTransport::builder_dangerous("127.0.0.1").port(sink.port())`)
//!   at it and then read the mails back ([`SmtpSink::wait_for`]).
//!   [`SmtpSink::start_refusing`] and [`SmtpSink::start_hanging`] give
//!   servers that fail a send, for tests of the app's error handling.
//!
//! Crates: [`mail_parser`] (Stalwart Labs) does all MIME work: headers,
//! RFC 2047 words, multipart, quoted-printable/base64, charsets.
//! [`smtp_proto`] (Stalwart Labs, the parser of their SMTP server) parses the
//! SMTP commands and undoes DATA dot-stuffing. Only the command loop below is
//! ours: the embeddable SMTP servers on crates.io were not a fit
//! (`mailin-embedded`: blocking threads, last release 2024; `samotop`:
//! async-std, 2022; `mailcrab`: a dev-server application that binds no
//! random port and pulls TLS in; none can refuse or hang on purpose).

pub mod app;
pub use smtp::{SentMail, SmtpSink};

pub mod smtp {
    //! [`SmtpSink`] and the messages it records.

    use std::borrow::Cow;
    use std::io;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};
    use smtp_proto::request::receiver::{DataReceiver, RequestReceiver};
    use smtp_proto::{EhloResponse, Error as ProtoError, Request};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{Mutex, watch};
    use tokio::task::{JoinHandle, JoinSet};

    /// Largest accepted message (DATA), in bytes.
    const MAX_MESSAGE: usize = 32 * 1024 * 1024;
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
            // lettre's client ends DATA with "\r\n.\r\n" after the message
            // (one CRLF more than the message has), and lettre ends a
            // single-part MIME body with one more CRLF: neither is content.
            let parser = MessageParser::default();
            let mut body = raw.strip_suffix(b"\r\n").unwrap_or(raw);
            let single_mime = parser.parse_headers(body).is_some_and(|h| {
                h.header("MIME-Version").is_some()
                    && h.content_type()
                        .is_none_or(|ct| !ct.ctype().eq_ignore_ascii_case("multipart"))
            });
            if single_mime {
                body = body.strip_suffix(b"\r\n").unwrap_or(body);
            }
            let message = parser.parse(body);
            let message = message.as_ref();
            SentMail {
                from: message
                    .and_then(|m| m.from()?.first()?.address())
                    .filter(|a| !a.is_empty())
                    .unwrap_or(envelope_from)
                    .to_owned(),
                to: envelope_to,
                subject: message
                    .and_then(|m| m.subject())
                    .unwrap_or_default()
                    .to_owned(),
                text: message
                    .map(|m| first_body(m.text_bodies(), false))
                    .unwrap_or_default(),
                html: message
                    .map(|m| first_body(m.html_bodies(), true))
                    .unwrap_or_default(),
                raw: String::from_utf8_lossy(raw).into_owned(),
            }
        }
    }

    /// The first `text/plain` (`html`: `text/html`) part of `parts`, `\n` line endings.
    fn first_body<'a>(mut parts: impl Iterator<Item = &'a MessagePart<'a>>, html: bool) -> String {
        let plain = |p: &MessagePart<'_>| {
            p.content_type()
                .and_then(|ct| ct.subtype())
                .is_none_or(|st| st.eq_ignore_ascii_case("plain"))
        };
        parts
            .find_map(|p| match &p.body {
                PartType::Html(s) if html => Some(s),
                PartType::Text(s) if !html && plain(p) => Some(s),
                _ => None,
            })
            .map(|s| s.replace("\r\n", "\n"))
            .unwrap_or_default()
    }

    /// How a sink answers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Mode {
        Deliver,
        Refuse,
        Hang,
    }

    struct Shared {
        mails: Mutex<Vec<SentMail>>,
        /// Bumped after each stored message (wakes [`SmtpSink::wait_for`]).
        received: watch::Sender<u64>,
    }

    /// A plain SMTP server on `127.0.0.1:<random port>`, running on the
    /// current tokio runtime; it stops when dropped.
    ///
    /// Speaks: greeting `220`, `EHLO` (`8BITMIME`, `SMTPUTF8`, `PIPELINING`,
    /// `SIZE`), `HELO`, `MAIL FROM`, `RCPT TO`, `DATA`, `RSET`, `NOOP`,
    /// `VRFY`, `QUIT`; any number of sequential or concurrent connections and
    /// messages per connection.
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
            SmtpSink::spawn(Mode::Deliver).await
        }

        /// Start a server that greets and answers `EHLO`, but refuses every
        /// `MAIL`, `RCPT` and `DATA` with `550 5.7.1` (permanent), so every
        /// send fails; it records nothing.
        ///
        /// # Panics
        /// When no loopback port can be bound.
        #[allow(clippy::expect_used)]
        pub async fn start_refusing() -> SmtpSink {
            SmtpSink::spawn(Mode::Refuse)
                .await
                .expect("SmtpSink: cannot bind a port on 127.0.0.1")
        }

        /// Start a server that accepts TCP connections and never answers (no
        /// `220` greeting): a client without a timeout waits forever.
        ///
        /// # Panics
        /// When no loopback port can be bound.
        #[allow(clippy::expect_used)]
        pub async fn start_hanging() -> SmtpSink {
            SmtpSink::spawn(Mode::Hang)
                .await
                .expect("SmtpSink: cannot bind a port on 127.0.0.1")
        }

        /// Start a sink on `127.0.0.1:port` (a mail server coming back on
        /// the port the app was configured with).
        pub async fn start_on(port: u16) -> io::Result<SmtpSink> {
            SmtpSink::spawn_on(Mode::Deliver, port).await
        }

        async fn spawn(mode: Mode) -> io::Result<SmtpSink> {
            SmtpSink::spawn_on(mode, 0).await
        }

        async fn spawn_on(mode: Mode, port: u16) -> io::Result<SmtpSink> {
            let listener = TcpListener::bind(("127.0.0.1", port)).await?;
            let addr = listener.local_addr()?;
            let shared = Arc::new(Shared {
                mails: Mutex::new(Vec::new()),
                received: watch::channel(0u64).0,
            });
            let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared), mode));
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

    async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mode: Mode) {
        let mut connections = JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
            match listener.accept().await {
                Ok((stream, _)) => {
                    let shared = Arc::clone(&shared);
                    // I/O errors just end the connection.
                    connections.spawn(async move { serve(stream, &shared, mode).await });
                }
                // e.g. too many open files: back off instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// The current transaction of a connection.
    #[derive(Default)]
    struct Envelope {
        from: Option<String>,
        to: Vec<String>,
    }

    /// A DATA section being read.
    struct Data {
        receiver: DataReceiver,
        message: Vec<u8>,
        too_big: bool,
    }

    async fn serve(mut stream: TcpStream, shared: &Shared, mode: Mode) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        if mode == Mode::Hang {
            // No greeting; read and drop whatever comes until the client closes.
            while stream.read(&mut buf).await? > 0 {}
            return Ok(());
        }
        stream
            .write_all(format!("220 {SERVER_NAME} ESMTP ready\r\n").as_bytes())
            .await?;
        let mut requests = RequestReceiver::default();
        let mut envelope = Envelope::default();
        let mut data: Option<Data> = None;
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            let mut bytes = buf.get(..n).unwrap_or_default().iter();
            let mut out = Vec::new();
            // Every command (pipelined ones too) and the DATA section in `bytes`.
            loop {
                if let Some(d) = data.as_mut() {
                    let done = d.receiver.ingest(&mut bytes, &mut d.message);
                    if d.message.len() > MAX_MESSAGE {
                        d.message.clear();
                        d.too_big = true;
                    }
                    if !done {
                        break;
                    }
                    let Envelope { from, to } = std::mem::take(&mut envelope);
                    if d.too_big {
                        out.extend_from_slice(b"552 5.3.4 Message too big\r\n");
                    } else {
                        let mail = SentMail::parse(&from.unwrap_or_default(), to, &d.message);
                        shared.mails.lock().await.push(mail);
                        shared.received.send_modify(|n| *n += 1);
                        out.extend_from_slice(b"250 2.0.0 OK: queued\r\n");
                    }
                    data = None;
                }
                let reply = match requests.ingest(&mut bytes) {
                    Ok(request) => reply(request, &mut envelope, mode, &mut out)?,
                    Err(ProtoError::NeedsMoreData { .. }) => break,
                    Err(ProtoError::UnknownCommand) => Reply::Text("502 5.5.2 Unknown command"),
                    Err(ProtoError::ResponseTooLong) => Reply::Text("500 5.5.6 Line too long"),
                    Err(_) => Reply::Text("501 5.5.4 Syntax error"),
                };
                match reply {
                    Reply::Written => {}
                    Reply::Text(text) => {
                        out.extend_from_slice(text.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    Reply::Data => {
                        out.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                        data = Some(Data {
                            receiver: DataReceiver::new(),
                            message: Vec::new(),
                            too_big: false,
                        });
                    }
                    Reply::Quit => {
                        out.extend_from_slice(b"221 2.0.0 Bye\r\n");
                        stream.write_all(&out).await?;
                        return stream.shutdown().await;
                    }
                }
            }
            stream.write_all(&out).await?;
        }
    }

    enum Reply {
        /// A one-line reply (without CRLF).
        Text(&'static str),
        /// The reply is already in `out`.
        Written,
        /// `354`, then read a DATA section.
        Data,
        /// `221`, then close.
        Quit,
    }

    fn reply(
        request: Request<Cow<'_, str>>,
        envelope: &mut Envelope,
        mode: Mode,
        out: &mut Vec<u8>,
    ) -> io::Result<Reply> {
        const REFUSED: &str = "550 5.7.1 Refused (SmtpSink::start_refusing)";
        Ok(Reply::Text(match request {
            Request::Ehlo { .. } => {
                *envelope = Envelope::default();
                let mut ehlo = EhloResponse::new(SERVER_NAME);
                ehlo.capabilities = smtp_proto::EXT_8BIT_MIME
                    | smtp_proto::EXT_SMTP_UTF8
                    | smtp_proto::EXT_PIPELINING
                    | smtp_proto::EXT_SIZE;
                ehlo.size = MAX_MESSAGE;
                ehlo.write(out)?;
                return Ok(Reply::Written);
            }
            Request::Helo { .. } | Request::Rset => {
                *envelope = Envelope::default();
                "250 2.0.0 OK"
            }
            Request::Mail { .. } | Request::Rcpt { .. } | Request::Data if mode == Mode::Refuse => {
                REFUSED
            }
            Request::Mail { from } => {
                *envelope = Envelope {
                    from: Some(from.address.into_owned()),
                    to: Vec::new(),
                };
                "250 2.1.0 OK"
            }
            Request::Rcpt { .. } if envelope.from.is_none() => "503 5.5.1 Need MAIL before RCPT",
            Request::Rcpt { to } => {
                envelope.to.push(to.address.into_owned());
                "250 2.1.5 OK"
            }
            Request::Data if envelope.to.is_empty() => "503 5.5.1 Need MAIL and RCPT before DATA",
            Request::Data => return Ok(Reply::Data),
            Request::Noop { .. } => "250 2.0.0 OK",
            Request::Vrfy { .. } => "252 2.5.0 Cannot VRFY user",
            Request::Quit => return Ok(Reply::Quit),
            _ => "502 5.5.2 Command not implemented",
        }))
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

    #[tokio::test]
    async fn refusing_sink_fails_the_send() {
        let sink = SmtpSink::start_refusing().await;
        let m = Message::builder()
            .from("no-reply@example.com".parse().unwrap())
            .to("user@example.com".parse().unwrap())
            .subject("Refused")
            .body("never stored\n".to_owned())
            .unwrap();
        let err = mailer(&sink).send(m).await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(sink.messages().await.is_empty());
    }

    #[tokio::test]
    async fn hanging_sink_times_the_send_out() {
        let sink = SmtpSink::start_hanging().await;
        let m = Message::builder()
            .from("no-reply@example.com".parse().unwrap())
            .to("user@example.com".parse().unwrap())
            .subject("Hangs")
            .body("never sent\n".to_owned())
            .unwrap();
        // lettre's async transport applies its own timeout to the TCP connect
        // only, so the greeting is awaited until the caller's timeout.
        let mailer = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(sink.host())
            .port(sink.port())
            .timeout(Some(Duration::from_millis(100)))
            .build();
        let sent = tokio::time::timeout(Duration::from_millis(500), mailer.send(m)).await;
        assert!(sent.is_err(), "no greeting, yet the send ended: {sent:?}");
        assert!(sink.messages().await.is_empty());
    }
}
