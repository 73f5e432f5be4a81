//! The HTTP/1.1 Upgrade handshake of RFC 6455 §4, without I/O: the client's request
//! and its check of the answer, the server's check of a request and its answer
//! (101, or an HTTP error status that says what was wrong).

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};

/// The GUID of RFC 6455 §1.3, appended to the key for `Sec-WebSocket-Accept`.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest HTTP head accepted, either way (bytes).
pub(crate) const MAX_HEAD: usize = 16 * 1024;

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    let mut input = Vec::with_capacity(key.len() + GUID.len());
    input.extend_from_slice(key.as_bytes());
    input.extend_from_slice(GUID.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &input);
    BASE64.encode(digest.as_ref())
}

/// A fresh `Sec-WebSocket-Key`: 16 random bytes in base64.
pub(crate) fn new_key() -> Result<String, ring::error::Unspecified> {
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)?;
    Ok(BASE64.encode(nonce))
}

/// Where the HTTP head in `buf` ends (just after the blank line): `Ok(None)` while
/// incomplete, `Err` once it is over [`MAX_HEAD`] without ending.
pub(crate) fn head_len(buf: &[u8]) -> Result<Option<usize>, &'static str> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(at) => Ok(Some(at + 4)),
        None if buf.len() >= MAX_HEAD => Err("HTTP head over 16 KiB"),
        None => Ok(None),
    }
}

/// A parsed HTTP head: the start line's three parts and the header fields.
struct Head<'a> {
    start: [&'a str; 3],
    fields: Vec<(&'a str, &'a str)>,
}

impl<'a> Head<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut lines = text.split("\r\n");
        let mut parts = lines.next()?.splitn(3, ' ');
        let start = [parts.next()?, parts.next()?, parts.next().unwrap_or("")];
        let mut fields = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':')?;
            if name.is_empty() || name.contains(char::is_whitespace) {
                return None;
            }
            fields.push((name, value.trim()));
        }
        Some(Self { start, fields })
    }

    /// Every value of a field (case-insensitive name), joined with ", ".
    fn field(&self, name: &str) -> Option<String> {
        let values: Vec<&str> = self
            .fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    /// Whether a comma-separated field holds `token` (case-insensitive).
    fn has_token(&self, name: &str, token: &str) -> bool {
        self.field(name).is_some_and(|v| list(&v).any(|t| t.eq_ignore_ascii_case(token)))
    }
}

/// The items of a comma-separated list, trimmed, empty ones left out.
pub(crate) fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// What a client asks for.
#[derive(Debug, Clone)]
pub(crate) struct ClientRequest {
    /// The `Host` header.
    pub(crate) host: String,
    /// The request target ("/chat?room=1").
    pub(crate) path: String,
    /// The `Origin` header, if any.
    pub(crate) origin: Option<String>,
    /// Subprotocols offered, in order.
    pub(crate) protocols: Vec<String>,
    /// The `Sec-WebSocket-Key`.
    pub(crate) key: String,
}

impl ClientRequest {
    /// The request as bytes.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.path, self.host, self.key
        );
        if let Some(origin) = &self.origin {
            out += &format!("Origin: {origin}\r\n");
        }
        if !self.protocols.is_empty() {
            out += &format!("Sec-WebSocket-Protocol: {}\r\n", self.protocols.join(", "));
        }
        out += "User-Agent: xsocket\r\n\r\n";
        out.into_bytes()
    }

    /// Checks the server's answer (the head only); the subprotocol it chose, if any.
    pub(crate) fn check_response(&self, head: &[u8]) -> Result<Option<String>, String> {
        let head = Head::parse(head).ok_or("the server's answer is not HTTP")?;
        let [version, status, reason] = head.start;
        if !version.starts_with("HTTP/1.") {
            return Err("the server's answer is not HTTP/1.x".into());
        }
        if status != "101" {
            return Err(format!("the server answered HTTP {status} {reason}").trim().into());
        }
        if !head.has_token("Upgrade", "websocket") || !head.has_token("Connection", "upgrade") {
            return Err("the server's 101 lacks Upgrade: websocket / Connection: Upgrade".into());
        }
        if head.field("Sec-WebSocket-Accept").as_deref() != Some(&accept_key(&self.key)) {
            return Err("wrong Sec-WebSocket-Accept from the server".into());
        }
        if head.field("Sec-WebSocket-Extensions").is_some() {
            return Err("the server chose an extension that was not offered".into());
        }
        match head.field("Sec-WebSocket-Protocol") {
            None => Ok(None),
            Some(chosen) if self.protocols.contains(&chosen) => Ok(Some(chosen)),
            Some(chosen) => Err(format!("the server chose subprotocol '{chosen}', not offered")),
        }
    }
}

/// What a server accepts.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServerPolicy {
    /// The only request path accepted (its part before '?'); `None`: any.
    pub(crate) path: Option<String>,
    /// Origins allowed; empty: any.
    pub(crate) origins: Vec<String>,
    /// Subprotocols spoken, in preference order.
    pub(crate) protocols: Vec<String>,
}

/// A request the server took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The request target.
    pub(crate) path: String,
    /// The `Origin` header ("" when none).
    pub(crate) origin: String,
    /// The subprotocol chosen.
    pub(crate) protocol: Option<String>,
}

/// A request the server refused: the HTTP answer to send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    /// The HTTP status sent (400, 403, 404, 405 or 426).
    pub(crate) status: u16,
    /// What was wrong.
    pub(crate) why: &'static str,
}

impl Refused {
    fn new(status: u16, why: &'static str) -> Self {
        Self { status, why }
    }

    /// The HTTP answer: the status, and the reason as a text body.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            426 => "Upgrade Required",
            431 => "Request Header Fields Too Large",
            _ => "Bad Request",
        };
        let extra = match self.status {
            426 => "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
            405 => "Allow: GET\r\n",
            _ => "",
        };
        let body = format!("{}\n", self.why);
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n{extra}\r\n{body}",
            self.status,
            body.len()
        )
        .into_bytes()
    }
}

impl ServerPolicy {
    /// Checks a client's request head: the 101 answer and what was agreed, or a refusal.
    pub(crate) fn answer(&self, head: &[u8]) -> Result<(Vec<u8>, Accepted), Refused> {
        let head = Head::parse(head).ok_or(Refused::new(400, "malformed HTTP request"))?;
        let [method, target, version] = head.start;
        if !matches!(version, "HTTP/1.1" | "HTTP/2.0") || !target.starts_with('/') {
            return Err(Refused::new(400, "not an HTTP/1.1 request"));
        }
        if method != "GET" {
            return Err(Refused::new(405, "a WebSocket handshake is a GET"));
        }
        if head.field("Host").is_none() {
            return Err(Refused::new(400, "no Host header"));
        }
        if !head.has_token("Upgrade", "websocket") || !head.has_token("Connection", "upgrade") {
            return Err(Refused::new(426, "this is a WebSocket endpoint: ask for an upgrade"));
        }
        if head.field("Sec-WebSocket-Version").as_deref() != Some("13") {
            return Err(Refused::new(426, "only WebSocket version 13 is spoken"));
        }
        let key = head.field("Sec-WebSocket-Key").unwrap_or_default();
        if BASE64.decode(&key).map(|k| k.len()) != Ok(16) {
            return Err(Refused::new(400, "Sec-WebSocket-Key must be 16 bytes in base64"));
        }
        let path_only = target.split('?').next().unwrap_or(target);
        if self.path.as_deref().is_some_and(|p| p != path_only) {
            return Err(Refused::new(404, "no WebSocket endpoint at this path"));
        }
        let origin = head.field("Origin").unwrap_or_default();
        if !origin.is_empty() && !self.origins.is_empty() && !self.origins.contains(&origin) {
            return Err(Refused::new(403, "origin not allowed"));
        }
        let offered: Vec<String> = head
            .field("Sec-WebSocket-Protocol")
            .map_or_else(Vec::new, |v| list(&v).map(str::to_string).collect());
        let protocol = self.protocols.iter().find(|p| offered.contains(p)).cloned();
        let mut answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n",
            accept_key(&key)
        );
        if let Some(protocol) = &protocol {
            answer += &format!("Sec-WebSocket-Protocol: {protocol}\r\n");
        }
        answer += "\r\n";
        Ok((answer.into_bytes(), Accepted { path: target.to_string(), origin, protocol }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(extra: &str) -> Vec<u8> {
        format!(
            "GET /chat?x=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
             Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn head_ends_at_the_blank_line() {
        assert_eq!(head_len(b"GET / HTTP/1.1\r\nHost: x\r\n"), Ok(None));
        assert_eq!(head_len(b"GET / HTTP/1.1\r\n\r\nframes"), Ok(Some(18)));
        assert!(head_len(&vec![b'a'; MAX_HEAD]).is_err());
    }

    #[test]
    fn a_good_request_gets_101_with_the_accept_key() {
        let policy = ServerPolicy::default();
        let (answer, accepted) = policy.answer(&request("")).expect("accepted");
        let text = String::from_utf8(answer).expect("text");
        assert!(text.starts_with("HTTP/1.1 101 "));
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert_eq!(accepted.path, "/chat?x=1");
        assert_eq!(accepted.protocol, None);
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let policy = ServerPolicy {
            path: Some("/chat".into()),
            origins: vec!["http://ok.example".into()],
            protocols: vec![],
        };
        let status = |req: &[u8]| policy.answer(req).expect_err("refused").status;
        assert_eq!(status(b"GET /chat HTTP/1.1\r\nHost: x\r\n\r\n"), 426);
        let post = String::from_utf8(request("")).expect("text").replacen("GET", "POST", 1);
        assert_eq!(status(post.as_bytes()), 405);
        let v8 = String::from_utf8(request("")).expect("text").replace("Version: 13", "Version: 8");
        assert_eq!(status(v8.as_bytes()), 426);
        let nokey = String::from_utf8(request("")).expect("text").replace("dGhl", "");
        assert_eq!(status(nokey.as_bytes()), 400);
        let other = String::from_utf8(request("")).expect("text").replace("/chat", "/other");
        assert_eq!(status(other.as_bytes()), 404);
        assert_eq!(status(&request("Origin: http://evil.example\r\n")), 403);
        assert!(policy.answer(&request("Origin: http://ok.example\r\n")).is_ok());
        assert_eq!(status(b"\x16\x03\x01 garbage\r\n\r\n"), 400);
        let refused = Refused::new(426, "why").to_bytes();
        assert!(String::from_utf8(refused).expect("text").contains("Sec-WebSocket-Version: 13"));
    }

    #[test]
    fn subprotocol_is_the_servers_first_choice_the_client_offered() {
        let policy = ServerPolicy {
            protocols: vec!["superchat".into(), "chat".into()],
            ..Default::default()
        };
        let (answer, accepted) =
            policy.answer(&request("Sec-WebSocket-Protocol: chat, superchat\r\n")).expect("ok");
        assert_eq!(accepted.protocol.as_deref(), Some("superchat"));
        assert!(String::from_utf8(answer).expect("text").contains("Protocol: superchat\r\n"));
        let (_, none) = policy.answer(&request("Sec-WebSocket-Protocol: other\r\n")).expect("ok");
        assert_eq!(none.protocol, None);
    }

    #[test]
    fn client_checks_the_answer() {
        let client = ClientRequest {
            host: "h".into(),
            path: "/chat?x=1".into(),
            origin: Some("http://o".into()),
            protocols: vec!["chat".into()],
            key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        };
        let request = client.to_bytes();
        let policy = ServerPolicy { protocols: vec!["chat".into()], ..Default::default() };
        let (answer, accepted) = policy.answer(&request).expect("server takes it");
        assert_eq!(accepted.origin, "http://o");
        let len = head_len(&answer).expect("ok").expect("complete");
        assert_eq!(client.check_response(&answer[..len]), Ok(Some("chat".into())));
        let wrong = String::from_utf8(answer).expect("text").replace("s3pP", "AAAA");
        assert!(client.check_response(wrong.as_bytes()).is_err());
        let refused = Refused::new(404, "nope").to_bytes();
        let len = head_len(&refused).expect("ok").expect("complete");
        let err = client.check_response(&refused[..len]).expect_err("not 101");
        assert!(err.contains("404"), "{err}");
    }
}
