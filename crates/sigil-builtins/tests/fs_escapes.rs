//! The `fs` builtin opens what it checked: a path swapped under it mid-call is refused and
//! audited, never read; FIFOs, sockets and devices are refused without being opened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::{Value, json};
use sigil_audit::{Filter, RecordKind, Verdict};
use sigil_runtime::{Home, InvokeError, Runtime, Step};

const FAIR: &str = "fair note";
const SECRET: &str = "TOP SECRET";

/// A data directory in `root` whose user `reader` may read `<root>/shared/**` and `extra`.
fn open(root: &Path, extra: &[&str]) -> Runtime {
    let shared = root.join("shared");
    let mut grants = vec![
        "tool.fs.*".to_string(),
        format!("fs.read:{}/**", shared.display()),
    ];
    grants.extend(extra.iter().map(|g| g.to_string()));
    let grants: Vec<String> = grants.iter().map(|g| format!("{g:?}")).collect();
    let config = format!(
        "[defaults]\nuser = \"reader\"\nworkspace = \"w\"\n\n[audit]\ndurability = \"process\"\n\n\
         [workspaces.w]\nallow = [\"*\"]\n\n[users.reader]\npermissions = [{}]\n",
        grants.join(", ")
    );
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("sigil.toml"), config).unwrap();
    Runtime::open(Home::resolve(Some(&home)).unwrap(), sigil_builtins::all()).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn call(
    rt: &tokio::runtime::Runtime,
    sigil: &Runtime,
    tool: &str,
    path: &Path,
) -> Result<Value, InvokeError> {
    let actor = sigil.local_actor(None, None);
    rt.block_on(sigil.invoke(&actor, &format!("fs/{tool}"), json!({ "path": path })))
        .map(|i| i.output)
}

fn denied(sigil: &Runtime) -> Vec<String> {
    sigil
        .audit()
        .query(&Filter {
            decision: Some(Verdict::Deny),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.record.capability.unwrap())
        .collect()
}

fn outcomes(sigil: &Runtime) -> Vec<String> {
    sigil
        .audit()
        .query(&Filter {
            kind: Some(RecordKind::Outcome),
            ..Filter::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| r.record.outcome.unwrap())
        .collect()
}

/// Swaps two names with `renameat2(RENAME_EXCHANGE)` until stopped.
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
        // The race starts only once the names are moving.
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

/// Calls made in the race: enough of each outcome to show both sides of the swap were met.
const RACE_CALLS: usize = 2_000;
const RACE_OUTCOMES: usize = 100;
/// Past this many calls the swap never raced the reads at all, which the test reports.
const RACE_GIVE_UP: usize = 200_000;

#[test]
fn a_directory_swapped_with_a_link_mid_read_never_leaks_and_each_refusal_is_an_audited_deny() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let shared = root.join("shared");
    let private = root.join("private");
    std::fs::create_dir_all(shared.join("d")).unwrap();
    std::fs::create_dir_all(&private).unwrap();
    std::fs::write(shared.join("d/note.txt"), FAIR).unwrap();
    std::fs::write(shared.join("d/only-shared.txt"), "").unwrap();
    std::fs::write(private.join("note.txt"), SECRET).unwrap();
    std::fs::write(private.join("only-private.txt"), "").unwrap();
    // `shared/d` is, at any instant, either the granted directory or a link out to `private`.
    std::os::unix::fs::symlink(&private, shared.join("swap")).unwrap();
    let sigil = open(&root, &[]);
    let rt = rt();
    let note = shared.join("d/note.txt");
    let listed = shared.join("d");
    let secret_capability = format!("fs.read:{}", private.join("note.txt").display());
    let private_capability = format!("fs.read:{}", private.display());

    let swapper = Swapper::start(shared.join("d"), shared.join("swap"));
    let (mut served, mut refused, mut calls) = (0, 0, 0);
    while calls < RACE_CALLS || served < RACE_OUTCOMES || refused < RACE_OUTCOMES {
        assert!(
            calls < RACE_GIVE_UP,
            "the swap never raced the reads: {served} served, {refused} refused"
        );
        calls += 1;
        let listing = calls % 2 == 0;
        let result = if listing {
            call(&rt, &sigil, "list_dir", &listed)
        } else {
            call(&rt, &sigil, "read_text", &note)
        };
        match result {
            Ok(output) => {
                let text = output.to_string();
                assert!(
                    !text.contains(SECRET) && !text.contains("only-private"),
                    "call {calls} read outside the grant: {text}"
                );
                if listing {
                    assert!(text.contains("only-shared"), "{text}");
                } else {
                    assert_eq!(output["text"], FAIR);
                }
                served += 1;
            }
            Err(InvokeError::Failed {
                step: Step::Invoke,
                error,
                ..
            }) => {
                let expected = if listing {
                    &private_capability
                } else {
                    &secret_capability
                };
                assert!(
                    error.starts_with(&format!("denied `{expected}`")),
                    "call {calls}: {error}"
                );
                refused += 1;
            }
            Err(other) => panic!("call {calls}: {other}"),
        }
    }
    drop(swapper);

    // Every refusal is a deny record naming where the link led, and nothing else was denied.
    let denies = denied(&sigil);
    assert_eq!(denies.len(), refused, "{denies:?}");
    assert!(
        denies
            .iter()
            .all(|d| *d == secret_capability || *d == private_capability),
        "{denies:?}"
    );
}

/// Opens `fifo` for writing whenever a reader holds it open, and says whether one ever did.
struct FifoWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<bool>>,
}

impl FifoWatch {
    fn start(fifo: PathBuf) -> FifoWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut opened = false;
                while !stop.load(Ordering::Relaxed) {
                    // Without a reader, a non-blocking open for writing fails (ENXIO).
                    if let Ok(writer) = rustix::fs::open(
                        &fifo,
                        rustix::fs::OFlags::WRONLY | rustix::fs::OFlags::NONBLOCK,
                        rustix::fs::Mode::empty(),
                    ) {
                        opened = true;
                        let _ = rustix::io::write(&writer, SECRET.as_bytes());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                opened
            }
        });
        FifoWatch {
            stop,
            thread: Some(thread),
        }
    }

    fn reader_ever_opened(mut self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for FifoWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn fifos_sockets_and_devices_are_refused_unopened_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let shared = root.join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    let fifo = shared.join("pipe");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let socket = shared.join("sock");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    // A device reached directly, and through a link inside the grant.
    std::os::unix::fs::symlink("/dev/zero", shared.join("zero")).unwrap();
    let sigil = open(&root, &["fs.read:/dev/zero"]);
    let rt = rt();
    // On a reader that waited for a writer, this would answer it; it must never get the chance.
    let watch = FifoWatch::start(fifo.clone());

    // (tool, path, what the refusal says)
    let table = [
        ("read_text", fifo.clone(), "is a named pipe (FIFO)"),
        ("list_dir", fifo.clone(), "is a named pipe (FIFO)"),
        ("read_text", socket.clone(), "is a socket"),
        ("list_dir", socket.clone(), "is a socket"),
        (
            "read_text",
            PathBuf::from("/dev/zero"),
            "is a character device",
        ),
        ("read_text", shared.join("zero"), "is a character device"),
        ("list_dir", shared.join("zero"), "is a character device"),
    ];
    for (index, (tool, path, says)) in table.iter().enumerate() {
        let err = call(&rt, &sigil, tool, path).unwrap_err();
        let InvokeError::Failed {
            step: Step::Invoke,
            error,
            ..
        } = &err
        else {
            panic!("{tool} {}: {err}", path.display());
        };
        assert!(
            error.contains(says)
                && error.contains("the fs tools open only regular files and directories"),
            "{tool} {}: {error}",
            path.display()
        );
        let recorded = outcomes(&sigil);
        assert_eq!(recorded.len(), index + 1, "{recorded:?}");
        let last = recorded.last().unwrap();
        assert!(
            last.starts_with("error: invoke failed:") && last.contains(says),
            "{tool} {}: audited as {last}",
            path.display()
        );
    }
    assert!(
        !watch.reader_ever_opened(),
        "the FIFO was opened for reading"
    );

    // Listing the directory names them for what they are, without opening any.
    let listing = call(&rt, &sigil, "list_dir", &shared).unwrap();
    let kinds: Vec<(String, String)> = listing["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected = [("pipe", "fifo"), ("sock", "socket"), ("zero", "symlink")];
    assert_eq!(kinds, expected.map(|(n, k)| (n.to_string(), k.to_string())),);
}
