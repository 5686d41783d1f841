//! A local OpenAI-compatible chat-completions server for tests and benchmarks (std::net only).
//!
//! Bound to 127.0.0.1 on a free port; bounded in requests and in time, it stops by itself (and
//! when dropped). A script decides each reply: an answer, any HTTP status (with `Retry-After`),
//! a slow reply, malformed JSON or empty choices. It counts requests, in-flight requests and
//! their peak, and keeps every request body and arrival time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 1 for the first request the server received.
    pub n: u64,
    pub body: Value,
    pub authorization: Option<String>,
}

impl Request {
    /// The last message's content (the query).
    pub fn user(&self) -> &str {
        self.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// HTTP 200 with this message content.
    Answer(String),
    /// Any status with a body, and a `Retry-After` header when given.
    Status {
        status: u16,
        body: String,
        retry_after: Option<String>,
    },
    /// Wait, then reply.
    Slow(Duration, Box<Reply>),
    /// HTTP 200 whose body is not JSON.
    Malformed,
    /// HTTP 200 with `"choices": []`.
    EmptyChoices,
}

pub type Script = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// An answer with one question/answer pair about the query.
pub fn default_answer(req: &Request) -> Reply {
    let words: String = req.user().chars().take(40).collect();
    Reply::Answer(format!(
        "Question: What is in \"{}\"?\nAnswer: It is what the text says.",
        words.replace('\n', " ")
    ))
}

pub struct Options {
    /// Added to every reply.
    pub latency: Duration,
    /// Requests served at most; later ones get their connection closed.
    pub max_requests: u64,
    /// The server stops after this long.
    pub max_time: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            latency: Duration::ZERO,
            max_requests: 10_000,
            max_time: Duration::from_secs(120),
        }
    }
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    peak: AtomicU64,
    arrivals: Mutex<Vec<Instant>>,
    bodies: Mutex<Vec<Value>>,
    authorizations: Mutex<Vec<String>>,
}

pub struct TestServer {
    /// `http://127.0.0.1:PORT/v1`.
    pub endpoint: String,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(options: Options, script: Script) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("address").port();
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (counters, stop) = (counters.clone(), stop.clone());
            std::thread::spawn(move || serve(listener, options, script, counters, stop))
        };
        TestServer {
            endpoint: format!("http://127.0.0.1:{port}/v1"),
            counters,
            stop,
            thread: Some(thread),
        }
    }

    /// Requests received.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::SeqCst)
    }

    /// The most requests in flight at once.
    pub fn peak_in_flight(&self) -> u64 {
        self.counters.peak.load(Ordering::SeqCst)
    }

    /// Every request body, in arrival order.
    pub fn bodies(&self) -> Vec<Value> {
        self.counters.bodies.lock().expect("lock").clone()
    }

    /// Every `Authorization` header, in arrival order.
    pub fn authorizations(&self) -> Vec<String> {
        self.counters.authorizations.lock().expect("lock").clone()
    }

    /// The most requests that arrived within any span of `window`.
    pub fn max_in_window(&self, window: Duration) -> usize {
        let mut t = self.counters.arrivals.lock().expect("lock").clone();
        t.sort();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..t.len() {
            while t[hi].duration_since(t[lo]) >= window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    listener: TcpListener,
    options: Options,
    script: Script,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) {
    let deadline = Instant::now() + options.max_time;
    let options = Arc::new(options);
    let mut conns = Vec::new();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => {
                if conns.len() >= 4096 {
                    continue; // bounded: refuse (drop) connections past this many
                }
                let (o, s, c, st) = (
                    options.clone(),
                    script.clone(),
                    counters.clone(),
                    stop.clone(),
                );
                conns.push(std::thread::spawn(move || {
                    let _ = connection(stream, &o, &s, &c, &st, deadline);
                }));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
        conns.retain(|h| !h.is_finished());
    }
    stop.store(true, Ordering::SeqCst);
    for h in conns {
        let _ = h.join();
    }
}

fn connection(
    stream: TcpStream,
    options: &Options,
    script: &Script,
    counters: &Counters,
    stop: &AtomicBool,
    deadline: Instant,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        // Request line and headers.
        let mut head = Vec::new();
        let mut line = String::new();
        loop {
            if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                return Ok(());
            }
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    if line == "\r\n" || line == "\n" {
                        if head.is_empty() {
                            continue;
                        }
                        break;
                    }
                    head.push(line.trim_end().to_string());
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
        let header = |name: &str| {
            head.iter().skip(1).find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; len.min(64 << 20)];
        let mut got = 0;
        while got < body.len() {
            match reader.read(&mut body[got..]) {
                Ok(0) => return Ok(()),
                Ok(n) => got += n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    if stop.load(Ordering::SeqCst) || Instant::now() >= deadline {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let n = counters.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if n > options.max_requests {
            return Ok(());
        }
        let in_flight = counters.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        counters.peak.fetch_max(in_flight, Ordering::SeqCst);
        counters.arrivals.lock().expect("lock").push(Instant::now());
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        counters.bodies.lock().expect("lock").push(value.clone());
        let authorization = header("authorization");
        if let Some(a) = &authorization {
            counters
                .authorizations
                .lock()
                .expect("lock")
                .push(a.clone());
        }
        let req = Request {
            n,
            body: value,
            authorization,
        };
        let mut reply = script(&req);
        let mut wait = options.latency;
        while let Reply::Slow(d, inner) = reply {
            wait += d;
            reply = *inner;
        }
        sleep_unless_stopped(wait, stop, deadline);
        let result = write_reply(&mut writer, &req, reply);
        counters.in_flight.fetch_sub(1, Ordering::SeqCst);
        result?;
    }
}

fn sleep_unless_stopped(d: Duration, stop: &AtomicBool, deadline: Instant) {
    let end = Instant::now() + d;
    while Instant::now() < end && !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep((end - Instant::now()).min(Duration::from_millis(20)));
    }
}

fn write_reply(w: &mut TcpStream, req: &Request, reply: Reply) -> std::io::Result<()> {
    let (status, body, retry_after) = match reply {
        Reply::Answer(content) => {
            let prompt_tokens = req.body.to_string().len() as u64 / 4;
            let completion_tokens = content.len() as u64 / 4;
            let v = serde_json::json!({
                "id": format!("chatcmpl-{}", req.n),
                "object": "chat.completion",
                "model": req.body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens},
            });
            (200, v.to_string(), None)
        }
        Reply::Status {
            status,
            body,
            retry_after,
        } => (status, body, retry_after),
        Reply::Malformed => (200, "{\"choices\": [{\"message\": ".to_string(), None),
        Reply::EmptyChoices => (200, "{\"choices\": []}".to_string(), None),
        Reply::Slow(..) => unreachable!("unwrapped by the caller"),
    };
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: keep-alive\r\n",
        body.len()
    );
    if let Some(ra) = retry_after {
        head.push_str(&format!("Retry-After: {ra}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    w.flush()
}
