//! A fault-injecting TCP proxy, named as such: it stands between orgport and a real storage
//! server (SeaweedFS's S3, fake-gcs-server), passing every byte through until the test calls
//! [`RefusingProxy::refuse`]. From then on it cuts the connections it carries and answers every
//! new request with 403 Access Denied, in the service's own error format, as a store does whose
//! credentials were revoked mid-copy. Nothing else about the servers is simulated.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct RefusingProxy {
    /// `127.0.0.1:PORT`, in place of the server's address.
    pub address: String,
    state: Arc<Mutex<Connections>>,
    /// Requests answered with 403.
    pub refused: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Connections {
    refusing: bool,
    /// Both ends of every connection passed through, to be cut at once.
    open: Vec<TcpStream>,
}

impl RefusingProxy {
    /// Listens on a free loopback port, forwarding to `upstream` (`HOST:PORT`); `refusal` is the
    /// whole HTTP response a refused request gets.
    pub fn start(upstream: &str, refusal: String) -> RefusingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let address = listener.local_addr().expect("an address").to_string();
        let state = Arc::new(Mutex::new(Connections::default()));
        let refused = Arc::new(AtomicUsize::new(0));
        let (upstream, shared, count) = (upstream.to_string(), state.clone(), refused.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let mut connections = shared.lock().expect("not poisoned");
                if connections.refusing {
                    drop(connections);
                    let (refusal, count) = (refusal.clone(), count.clone());
                    std::thread::spawn(move || refuse_requests(client, &refusal, &count));
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                for stream in [&client, &server] {
                    if let Ok(clone) = stream.try_clone() {
                        connections.open.push(clone);
                    }
                }
                drop(connections);
                pump(&client, &server);
                pump(&server, &client);
            }
        });
        RefusingProxy { address, state, refused }
    }

    /// From now on: the connections carried are cut, and every request is refused.
    pub fn refuse(&self) {
        let mut connections = self.state.lock().expect("not poisoned");
        connections.refusing = true;
        for stream in connections.open.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread of its own until either end closes.
fn pump(from: &TcpStream, to: &TcpStream) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { return };
    std::thread::spawn(move || {
        let _ = io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// Answers each request on `client` with `refusal` once its body has been read (so the client
/// reads the answer rather than a reset), then closes.
fn refuse_requests(client: TcpStream, refusal: &str, count: &AtomicUsize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let Ok(mut writer) = client.try_clone() else { return };
    let mut reader = BufReader::new(client);
    let mut length = 0u64;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
            }
        }
    }
    let _ = io::copy(&mut (&mut reader).take(length), &mut io::sink());
    count.fetch_add(1, Ordering::SeqCst);
    let _ = writer.write_all(refusal.as_bytes());
    let _ = writer.shutdown(Shutdown::Both);
}

/// A 403 response with `body` of `content_type`.
pub fn forbidden(content_type: &str, body: &str) -> String {
    format!("HTTP/1.1 403 Forbidden\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
}
