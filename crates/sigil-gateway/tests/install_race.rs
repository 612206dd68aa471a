//! Install through the HTTP API reads the source directory by handle: a file its author swaps
//! for a link mid-install is refused, never followed, so nothing outside the directory lands
//! in the installed plugin; a manifest that is a link is refused without being read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::{Server, assert_error, echo_plugin, send};
use serde_json::json;

const FAIR: &str = "fair data";
const SECRET: &str = "TOP SECRET";

/// Installs made in the race: enough of each outcome to show both sides of the swap were met.
const RACE_INSTALLS: usize = 100;
const RACE_OUTCOMES: usize = 10;
/// Past this many installs the swap never raced them at all, which the test reports.
const RACE_GIVE_UP: usize = 5_000;

/// Swaps two names with `renameat2(RENAME_EXCHANGE)` until dropped.
struct Swapper {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Swapper {
    fn start(a: PathBuf, b: PathBuf) -> Swapper {
        let stop = Arc::new(AtomicBool::new(false));
        let swaps = Arc::new(AtomicU64::new(0));
        let thread = std::thread::spawn({
            let (stop, swaps) = (stop.clone(), swaps.clone());
            move || {
                while !stop.load(Ordering::Relaxed) {
                    rustix::fs::renameat_with(
                        rustix::fs::CWD,
                        &a,
                        rustix::fs::CWD,
                        &b,
                        rustix::fs::RenameFlags::EXCHANGE,
                    )
                    .unwrap();
                    swaps.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        while swaps.load(Ordering::Relaxed) < 2 {
            std::thread::yield_now();
        }
        Swapper {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Swapper {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

/// Every entry under `dir`: no link, and no file holding the secret.
fn assert_clean(dir: &Path, install: usize) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        assert!(
            !kind.is_symlink(),
            "install {install}: {} is a link",
            entry.path().display()
        );
        if kind.is_dir() {
            assert_clean(&entry.path(), install);
        } else {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(SECRET),
                "install {install}: the secret landed in {}",
                entry.path().display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_swapped_for_a_link_mid_install_is_refused_and_never_followed() {
    let config = format!("{}\n[audit]\ndurability = \"process\"\n", common::CONFIG);
    let server = Server::start_with(&config).await;
    let source = tempfile::tempdir().unwrap();
    let root = source.path().canonicalize().unwrap();
    let plugin = root.join("echo");
    echo_plugin(&plugin, "1.0.0", b"echo");
    std::fs::create_dir_all(plugin.join("assets")).unwrap();
    std::fs::write(plugin.join("assets/data.txt"), FAIR).unwrap();
    // Outside the plugin: the secret, and a link to it that trades places with the data file.
    std::fs::create_dir_all(root.join("outside")).unwrap();
    std::fs::write(root.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(root.join("secret.txt"), root.join("outside/data.txt")).unwrap();
    let installed = server.home.path().join("plugins/echo");
    let body = json!({ "path": plugin.display().to_string(), "force": true });

    let swapper = Swapper::start(
        plugin.join("assets/data.txt"),
        root.join("outside/data.txt"),
    );
    let (mut landed, mut refused, mut installs) = (0, 0, 0);
    while installs < RACE_INSTALLS || landed < RACE_OUTCOMES || refused < RACE_OUTCOMES {
        assert!(
            installs < RACE_GIVE_UP,
            "the swap never raced the installs: {landed} installed, {refused} refused"
        );
        installs += 1;
        let result = send(server.post("/v1/plugins", "admin", body.clone())).await;
        if result.0 == 201 {
            assert_clean(&installed, installs);
            assert_eq!(
                std::fs::read_to_string(installed.join("assets/data.txt")).unwrap(),
                FAIR
            );
            landed += 1;
        } else {
            assert_error(&result, 422, "install_refused");
            let message = result.1["error"]["message"].as_str().unwrap();
            assert!(
                message
                    .contains("assets/data.txt is a symbolic link; plugins may not contain links"),
                "install {installs}: {message}"
            );
            // What was installed before stays as it was.
            if landed > 0 {
                assert_clean(&installed, installs);
            }
            refused += 1;
        }
    }
    drop(swapper);
    // No staging directory is left behind by the refusals.
    let leftovers: Vec<_> = std::fs::read_dir(server.home.path().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "echo")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_is_a_link_is_refused_without_being_read() {
    let server = Server::start().await;
    let source = tempfile::tempdir().unwrap();
    let root = source.path().canonicalize().unwrap();
    let plugin = root.join("echo");
    echo_plugin(&plugin, "1.0.0", b"echo");
    // Text whose parse error would quote it.
    std::fs::write(root.join("secret.toml"), format!("{SECRET} = = =\n")).unwrap();
    std::fs::remove_file(plugin.join("plugin.toml")).unwrap();
    std::os::unix::fs::symlink(root.join("secret.toml"), plugin.join("plugin.toml")).unwrap();

    let result = send(server.post(
        "/v1/plugins",
        "admin",
        json!({ "path": plugin.display().to_string() }),
    ))
    .await;
    assert_error(&result, 422, "invalid_plugin");
    let message = result.1["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the manifest is a symbolic link; plugins may not contain links")
            && !message.contains(SECRET),
        "{message}"
    );
    assert!(!server.home.path().join("plugins/echo").exists());
}
