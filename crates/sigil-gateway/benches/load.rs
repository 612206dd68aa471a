//! Load on the HTTP API: concurrent `text/sha256` calls over loopback through the whole stack
//! (HTTP, token lookup, enforcer, audit log with group commit, the builtin plugin), reporting
//! throughput and p50/p95/p99 latency, for each audit durability.
//!
//! `cargo bench -p sigil-gateway --bench load` measures; without `--bench` (as under
//! `cargo test --benches`) it runs a few calls to prove the bench works.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sigil_gateway::{Gateway, TokenStore};
use sigil_runtime::{Home, Runtime};

struct Figures {
    calls: usize,
    concurrency: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn percentile(&self, p: f64) -> Duration {
        let index = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[index]
    }

    fn print(&self, label: &str) {
        println!(
            "{label:<32} {:>6} calls, {:>4} concurrent: {:>8.0} calls/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms",
            self.calls,
            self.concurrency,
            self.calls as f64 / self.elapsed.as_secs_f64(),
            ms(self.percentile(0.50)),
            ms(self.percentile(0.95)),
            ms(self.percentile(0.99)),
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `calls` calls split over `concurrency` clients, each sending its next call when its last
/// one is answered.
async fn run(url: &str, token: &str, calls: usize, concurrency: usize) -> Figures {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = client.clone();
            let url = url.to_string();
            let token = token.to_string();
            let share = calls / concurrency + usize::from(worker < calls % concurrency);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(share);
                for i in 0..share {
                    let body = format!(r#"{{"text":"load {worker} {i}"}}"#);
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status().as_u16(), 200);
                    response.bytes().await.unwrap();
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Figures {
        calls,
        concurrency,
        elapsed,
        latencies,
    }
}

fn main() {
    let measure = std::env::args().any(|a| a == "--bench");
    let threads = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for durability in ["disk", "process"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("sigil.toml"),
            format!(
                "[defaults]\nuser = \"local\"\nworkspace = \"default\"\n\n[workspaces.default]\nallow = [\"*\"]\n\n\
                 [users.local]\npermissions = [\"tool.text.*\"]\n\n[audit]\ndurability = \"{durability}\"\n"
            ),
        )
        .unwrap();
        let home = Home::resolve(Some(dir.path())).unwrap();
        let tokens = TokenStore::open(&home.database_path()).unwrap();
        let token = tokens.create("local", Some("bench")).unwrap().secret;
        let runtime = Arc::new(Runtime::open(home, sigil_builtins::all()).unwrap());
        let gateway = Gateway::builder(runtime.clone(), tokens).build();
        let listener = threads
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!(
            "http://{}/v1/tools/text/sha256/invoke",
            listener.local_addr().unwrap()
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = threads.spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));

        if measure {
            threads.block_on(run(&url, &token, 2_000, 16)); // warm-up
            for (calls, concurrency) in [(2_000, 1), (20_000, 16), (20_000, 64), (1_000, 1_000)] {
                let figures = threads.block_on(run(&url, &token, calls, concurrency));
                figures.print(&format!("durability={durability}"));
            }
        } else {
            let figures = threads.block_on(run(&url, &token, 20, 4));
            assert_eq!(figures.latencies.len(), 20);
        }

        let _ = stop.send(());
        threads.block_on(server).unwrap().unwrap();
        let mut shared = runtime;
        let runtime = loop {
            match Arc::try_unwrap(shared) {
                Ok(runtime) => break runtime,
                Err(still_shared) => {
                    shared = still_shared;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        };
        runtime.close().unwrap();
    }
}
