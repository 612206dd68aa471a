//! One test per hostile attempt, each against a real bubblewrap sandbox: the attempt fails,
//! and the next sandbox still works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{Dirs, PYTHON, alive, assert_next_sandbox_works, comm, finish, members, run, sandbox};
use sigil_sandbox::Limits;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn runs_as_nobody_without_capabilities_under_seccomp() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let done = run(
        &sandbox,
        &dirs.shell(
            "id -u; id -g; pwd; grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs|Seccomp):' \
             /proc/self/status",
        ),
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.lines(),
        [
            "65534",
            "65534",
            "/plugin",
            "CapPrm:\t0000000000000000",
            "CapEff:\t0000000000000000",
            "CapBnd:\t0000000000000000",
            "CapAmb:\t0000000000000000",
            "NoNewPrivs:\t1",
            "Seccomp:\t2",
        ],
        "{done:?}"
    );
}

#[tokio::test]
async fn cannot_read_etc_shadow() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let done = run(
        &sandbox,
        &dirs.python(
            "import os\n\
             print(sorted(os.listdir('/etc')))\n\
             try:\n    open('/etc/shadow').read(); print('READ')\n\
             except OSError as e: print('denied', e.errno)\n",
        ),
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    // Only the loader cache and the alternatives links exist in /etc.
    let etc = done.lines()[0];
    assert!(!etc.contains("shadow") && !etc.contains("passwd"), "{etc}");
    assert_eq!(done.lines()[1], "denied 2", "ENOENT expected: {done:?}");
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn cannot_read_the_hosts_home() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    assert!(
        std::path::Path::new(&home).exists(),
        "host home {home} should exist"
    );
    let script = format!(
        "import os\n\
         for p in ['/root', {home:?}, '/home', '/var', '/opt']:\n\
         \x20   print(p, os.path.exists(p))\n\
         print([p for p in ['/run/sigil', '/run/sigil-init', '/run/user', '/run/systemd'] if os.path.exists(p)])\n"
    );
    let done = run(&sandbox, &dirs.python(&script)).await;
    assert!(done.status.success(), "{done:?}");
    let lines = done.lines();
    for line in &lines[..5] {
        assert!(
            line.ends_with(" False"),
            "visible inside: {line} ({done:?})"
        );
    }
    assert_eq!(lines[5], "['/run/sigil', '/run/sigil-init']", "{done:?}");
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn writes_only_inside_read_write_grants() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("data.txt"), "read me\n").unwrap();
    let rw = tempfile::tempdir().unwrap();
    let mut spec = dirs.python(&format!(
        "import os\n\
         print(open({data:?}).read().strip())\n\
         targets = [{rw_file:?}, {ro_file:?}, {ro_data:?}, '/plugin/x', '/usr/x', '/x', '/etc/x', \
                    '/proc/x', '/dev/x', '/run/sigil-init', '/tmp/private.txt']\n\
         for t in targets:\n\
         \x20   try:\n\
         \x20       with open(t, 'w') as f: f.write('written')\n\
         \x20       print(t, 'ok')\n\
         \x20   except OSError as e: print(t, 'denied')\n",
        data = ro.path().join("data.txt"),
        rw_file = rw.path().join("out.txt"),
        ro_file = ro.path().join("new.txt"),
        ro_data = ro.path().join("data.txt"),
    ));
    spec.read_only = vec![ro.path().into()];
    spec.read_write = vec![rw.path().into()];
    let done = run(&sandbox, &spec).await;
    assert!(done.status.success(), "{done:?}");
    let lines = done.lines();
    assert_eq!(lines[0], "read me");
    let verdicts: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert_eq!(
        verdicts,
        [
            "ok", "denied", "denied", "denied", "denied", "denied", "denied", "denied", "denied",
            "denied", "ok"
        ],
        "{done:?}"
    );
    assert_eq!(
        std::fs::read_to_string(rw.path().join("out.txt")).unwrap(),
        "written"
    );
    assert!(!ro.path().join("new.txt").exists());
    assert_eq!(
        std::fs::read_to_string(ro.path().join("data.txt")).unwrap(),
        "read me\n"
    );
    assert!(!dirs.plugin.path().join("x").exists());
    // The sandbox's /tmp is its own.
    assert!(!std::path::Path::new("/tmp/private.txt").exists());
    assert_next_sandbox_works(&sandbox).await;
}

/// bubblewrap's /dev is a writable tmpfs; Landlock is what stops a plugin creating files there.
#[tokio::test]
async fn landlock_stops_what_the_mounts_allow() {
    let sandbox = sandbox();
    assert_eq!(sandbox.landlock_status(), "FullyEnforced");
    let dirs = Dirs::new();
    let done = run(
        &sandbox,
        &dirs.python(
            "import os\n\
             for t in ['/dev/planted', '/dev/shm/ok']:\n\
             \x20   try:\n\
             \x20       open(t, 'w').close(); print(t, 'ok')\n\
             \x20   except OSError as e: print(t, 'denied', e.errno)\n\
             with open('/dev/null', 'w') as f: f.write('x')\n\
             print('devnull ok')\n",
        ),
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.lines(),
        ["/dev/planted denied 13", "/dev/shm/ok ok", "devnull ok"],
        "{done:?}"
    );
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn cannot_connect_to_the_hosts_loopback() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "import socket\n\
         try:\n\
         \x20   socket.create_connection(('127.0.0.1', {port}), timeout=5); print('connected')\n\
         except OSError as e: print('failed', e.errno)\n\
         import os; print(sorted(os.listdir('/sys/class/net')) if os.path.exists('/sys') else 'no /sys')\n"
    );
    let done = run(&sandbox, &dirs.python(&script)).await;
    assert!(done.status.success(), "{done:?}");
    // EPERM: without egress, seccomp refuses IP sockets altogether.
    assert_eq!(done.lines(), ["failed 1", "no /sys"], "{done:?}");
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the host listener received a connection"
    );
    assert_next_sandbox_works(&sandbox).await;
}

/// Marker set in the host's environment for `sees_none_of_the_host_environment`.
const MARKER: &str = "SIGIL_SANDBOX_TEST_HOST_SECRET";

/// The host process carries a marker variable (the test re-runs its own binary with it set,
/// since a test cannot safely change its own environment); the sandbox sees exactly its own
/// variables, neither the marker nor anything else of the host.
#[tokio::test]
async fn sees_none_of_the_host_environment() {
    let host: Vec<(String, String)> = std::env::vars().collect();
    if std::env::var_os(MARKER).is_some() {
        let sandbox = sandbox();
        let dirs = Dirs::new();
        let mut spec = dirs.shell("env | sort");
        spec.env = vec![
            ("SIGIL_PLUGIN".into(), "demo".into()),
            ("LANG".into(), "C".into()),
        ];
        let done = run(&sandbox, &spec).await;
        assert!(done.status.success(), "{done:?}");
        for line in done.lines() {
            println!("\nINSIDE:{line}");
        }
        return;
    }
    let helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sees_none_of_the_host_environment",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(MARKER, "marker-value-7f3a")
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert!(helper.status.success(), "helper failed: {helper:?}");
    let stdout = String::from_utf8(helper.stdout).unwrap();
    let inside: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.trim().strip_prefix("INSIDE:"))
        .collect();
    assert_eq!(
        inside,
        [
            "HOME=/tmp",
            "LANG=C",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            // Set by bubblewrap with the working directory.
            "PWD=/plugin",
            "SIGIL_PLUGIN=demo",
            "TMPDIR=/tmp",
        ],
        "{stdout}"
    );
    assert!(!stdout.contains("marker-value-7f3a"), "{stdout}");
    // Every other host variable (CARGO_*, the host's HOME, PATH, ...) is absent or replaced.
    for (name, value) in &host {
        let leaked = format!("{name}={value}");
        assert!(!inside.contains(&leaked.as_str()), "leaked {leaked}");
    }
    assert_next_sandbox_works(&sandbox()).await;
}

#[tokio::test]
async fn fork_bomb_is_bounded_by_the_process_limit() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let limit = 12;
    let mut spec = dirs.python(
        "import os, sys, time\n\
         forked = failed = 0\n\
         for i in range(200):\n\
         \x20   try:\n\
         \x20       pid = os.fork()\n\
         \x20   except OSError:\n\
         \x20       failed += 1\n\
         \x20       continue\n\
         \x20   if pid == 0:\n\
         \x20       while True:\n\
         \x20           try:\n\
         \x20               os.fork()\n\
         \x20           except OSError:\n\
         \x20               time.sleep(0.2)\n\
         \x20   forked += 1\n\
         print('forked', forked, 'failed', failed, flush=True)\n\
         time.sleep(1000)\n",
    );
    spec.limits = Limits {
        processes: Some(limit),
        ..Limits::default()
    };
    let mut sandboxed = sandbox.spawn(&spec).unwrap();
    let stdout = sandboxed.child().stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.len(), 4, "unexpected report {line:?}");
    let forked: u32 = words[1].parse().unwrap();
    let failed: u32 = words[3].parse().unwrap();
    assert!(
        forked < limit,
        "forked {forked} with a limit of {limit} (the limit needs a writable cgroup v1 pids \
         hierarchy at /sys/fs/cgroup/pids)"
    );
    assert!(failed > 0, "no fork failed: {line}");
    // The host sees at most the plugin's processes plus bubblewrap's two.
    let inside = members(&sandboxed);
    assert!(
        inside.len() <= usize::try_from(limit).unwrap() + 3,
        "{} processes in the sandbox: {inside:?}",
        inside.len()
    );
    sandboxed.kill().await;
    for pid in &inside {
        assert!(!alive(*pid), "pid {pid} ({}) survived kill", comm(*pid));
    }
    assert!(!sandboxed.contains_pid(inside[0]));
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_limit() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let limit_mib = 192;
    let mut spec = dirs.python(
        "chunks = []\n\
         try:\n\
         \x20   while True:\n\
         \x20       chunks.append(bytearray(16 << 20))\n\
         \x20       print(len(chunks) * 16, flush=True)\n\
         except MemoryError:\n\
         \x20   print('memory-error', flush=True)\n",
    );
    spec.limits = Limits {
        memory_bytes: Some(limit_mib << 20),
        ..Limits::default()
    };
    let done = run(&sandbox, &spec).await;
    let lines = done.lines();
    let allocated: Vec<u64> = lines.iter().filter_map(|l| l.parse().ok()).collect();
    let most = allocated.iter().copied().max().unwrap_or(0);
    assert!(
        most < limit_mib,
        "allocated {most} MiB under a {limit_mib} MiB limit"
    );
    assert!(
        lines.last() == Some(&"memory-error") || done.status.code() == Some(137),
        "neither MemoryError nor killed: {done:?}"
    );
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn open_files_and_cpu_time_are_limited() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let mut spec = dirs.python(
        "import os\n\
         fds = []\n\
         try:\n\
         \x20   while True: fds.append(os.open('/dev/null', os.O_RDONLY))\n\
         except OSError as e: print('open failed', e.errno, len(fds), flush=True)\n\
         while True: pass\n",
    );
    spec.limits = Limits {
        open_files: Some(32),
        cpu_seconds: Some(1),
        ..Limits::default()
    };
    let done = run(&sandbox, &spec).await;
    let words: Vec<&str> = done.lines()[0].split_whitespace().collect();
    assert_eq!(
        &words[..3],
        ["open", "failed", "24"],
        "EMFILE expected: {done:?}"
    );
    let opened: usize = words[3].parse().unwrap();
    assert!(
        opened < 32,
        "{opened} descriptors opened under a limit of 32"
    );
    // The busy loop is ended by RLIMIT_CPU: SIGXCPU (or SIGKILL at the hard limit), which
    // bubblewrap reports as 128 + the signal.
    assert!(
        matches!(done.status.code(), Some(152 | 137)),
        "not stopped by the CPU limit: {done:?}"
    );
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn seccomp_refuses_ptrace_namespaces_mounts_and_raw_sockets() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let done = run(
        &sandbox,
        &dirs.python(
            "import ctypes, os, platform, socket\n\
             libc = ctypes.CDLL(None, use_errno=True)\n\
             def attempt(name, call):\n\
             \x20   ctypes.set_errno(0)\n\
             \x20   rc = call()\n\
             \x20   print(name, rc, ctypes.get_errno())\n\
             attempt('ptrace', lambda: libc.ptrace(0, 0, None, None))\n\
             attempt('unshare-user', lambda: libc.unshare(0x10000000))\n\
             attempt('unshare-net', lambda: libc.unshare(0x40000000))\n\
             attempt('mount', lambda: libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))\n\
             attempt('chroot', lambda: libc.chroot(b'/tmp'))\n\
             attempt('keyctl', lambda: libc.syscall(250 if platform.machine() == 'x86_64' else 219, 0, 0, 0, 0, 0))\n\
             attempt('io_uring_setup', lambda: libc.syscall(425, 8, None))\n\
             attempt('socket-netlink', lambda: libc.socket(16, 3, 0))\n\
             attempt('socket-packet', lambda: libc.socket(17, 3, 0))\n\
             attempt('socket-inet', lambda: libc.socket(2, 1, 0))\n\
             attempt('socket-unix', lambda: 0 if libc.socket(1, 1, 0) >= 0 else -1)\n",
        ),
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.lines(),
        [
            "ptrace -1 1",
            "unshare-user -1 1",
            "unshare-net -1 1",
            "mount -1 1",
            "chroot -1 1",
            "keyctl -1 1",
            "io_uring_setup -1 1",
            "socket-netlink -1 1",
            "socket-packet -1 1",
            "socket-inet -1 1",
            "socket-unix 0 0",
        ],
        "{done:?}"
    );
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn egress_reaches_only_the_hosts_proxy_socket() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let proxy = tokio::net::UnixListener::bind(dirs.sockets.path().join("egress.sock")).unwrap();
    let proxy_task = tokio::spawn(async move {
        let (mut stream, _) = proxy.accept().await.unwrap();
        let mut request = vec![0u8; 5];
        stream.read_exact(&mut request).await.unwrap();
        stream.write_all(b"pong:").await.unwrap();
        stream.write_all(&request).await.unwrap();
        stream.shutdown().await.unwrap();
        String::from_utf8(request).unwrap()
    });
    let host_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    host_listener.set_nonblocking(true).unwrap();
    let host_port = host_listener.local_addr().unwrap().port();
    let port = 8080;
    let script = format!(
        "import os, socket\n\
         print(os.environ['HTTP_PROXY'], os.environ['https_proxy'])\n\
         s = socket.create_connection(('127.0.0.1', {port}), timeout=10)\n\
         s.sendall(b'ping\\n')\n\
         reply = b''\n\
         while True:\n\
         \x20   chunk = s.recv(100)\n\
         \x20   if not chunk: break\n\
         \x20   reply += chunk\n\
         print('reply', reply)\n\
         for host, p in [('127.0.0.1', {host_port}), ('127.0.0.1', {port} + 1), ('10.0.0.1', 80), ('::1', {host_port})]:\n\
         \x20   try:\n\
         \x20       socket.create_connection((host, p), timeout=5); print('connected', host, p)\n\
         \x20   except OSError as e: print('failed', host, p)\n\
         try:\n\
         \x20   socket.socket(socket.AF_INET, socket.SOCK_DGRAM); print('udp allowed')\n\
         except OSError as e: print('udp denied', e.errno)\n"
    );
    let mut spec = dirs.python(&script);
    spec.egress_port = Some(port);
    let done = run(&sandbox, &spec).await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(proxy_task.await.unwrap(), "ping\n");
    assert_eq!(
        done.lines(),
        [
            "http://127.0.0.1:8080 http://127.0.0.1:8080".to_owned(),
            "reply b'pong:ping\\n'".to_owned(),
            format!("failed 127.0.0.1 {host_port}"),
            "failed 127.0.0.1 8081".to_owned(),
            "failed 10.0.0.1 80".to_owned(),
            format!("failed ::1 {host_port}"),
            "udp denied 1".to_owned(),
        ],
        "{done:?}"
    );
    assert!(
        matches!(host_listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the host listener received a connection"
    );
    assert_next_sandbox_works(&sandbox).await;
}

/// Environment variable that turns this test's own binary into the helper host.
const HELPER: &str = "SIGIL_SANDBOX_TEST_HELPER_HOST";

/// A sandbox started by a host that is then killed disappears with it. The test re-runs its own
/// binary as that host (the branch taken when the helper variable is set): it starts a sandbox
/// running `sleep 1000`, prints the sleep's host pid, and waits to be killed.
#[tokio::test]
async fn sandbox_dies_with_its_host() {
    if std::env::var_os(HELPER).is_some() {
        let sandbox = sandbox();
        let dirs = Dirs::new();
        let sandboxed = sandbox
            .spawn(&dirs.spec("/usr/bin/sleep", &["1000"]))
            .unwrap();
        loop {
            if let Some(pid) = members(&sandboxed)
                .into_iter()
                .find(|&p| comm(p) == "sleep")
            {
                // libtest has already printed `test name ... ` without a newline.
                println!("\nSLEEP_PID={pid}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_secs(1000)).await;
        drop(sandboxed);
        return;
    }
    let mut helper = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "sandbox_dies_with_its_host",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(HELPER, "1")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(helper.stdout.take().unwrap()).lines();
    let sleep_pid: u32 = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the helper ended without a pid");
        if let Some(pid) = line.trim().strip_prefix("SLEEP_PID=") {
            break pid.parse().unwrap();
        }
    };
    assert!(alive(sleep_pid));
    helper.kill().await.unwrap();
    // Bounded wait for the kernel to deliver the parent-death signals down the chain.
    let deadline = Instant::now() + Duration::from_secs(30);
    while alive(sleep_pid) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !alive(sleep_pid),
        "the sandboxed sleep {sleep_pid} outlived its host"
    );
    assert_next_sandbox_works(&sandbox()).await;
}

#[tokio::test]
async fn dropping_a_sandbox_kills_it() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let mut spec = dirs.shell("sleep 1000 & sleep 1000 & echo started; wait");
    spec.limits.processes = Some(8);
    let mut sandboxed = sandbox.spawn(&spec).unwrap();
    let stdout = sandboxed.child().stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    assert_eq!(line, "started\n");
    // The shell may print before both children have exec'd `sleep`: look until they have.
    let inside = loop {
        let inside = members(&sandboxed);
        let sleeps = inside.iter().filter(|&&p| comm(p) == "sleep").count();
        assert!(sleeps <= 2, "{inside:?}");
        if sleeps == 2 {
            break inside;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(sandboxed.contains_pid(sandboxed.pid().unwrap()));
    assert!(!sandboxed.contains_pid(std::process::id()));
    drop(sandboxed);
    let deadline = Instant::now() + Duration::from_secs(30);
    while inside.iter().any(|&p| alive(p)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let survivors: Vec<u32> = inside.iter().copied().filter(|&p| alive(p)).collect();
    assert!(survivors.is_empty(), "survived drop: {survivors:?}");
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn python_from_usr_runs_a_plugin_file() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    std::fs::write(
        dirs.plugin.path().join("main.py"),
        "import sys\nprint('args', sys.argv[1:])\n",
    )
    .unwrap();
    let done = run(
        &sandbox,
        &dirs.spec(PYTHON, &["/plugin/main.py", "a b", "--c"]),
    )
    .await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "args ['a b', '--c']\n");
    let missing = run(&sandbox, &dirs.spec("/plugin/missing", &[])).await;
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    assert!(missing.stderr.contains("/plugin/missing"), "{missing:?}");
    let _ = finish;
}

/// Groups left by a host that died are removed by the next `Sandbox` on the machine.
#[tokio::test]
async fn stale_cgroups_of_dead_hosts_are_removed() {
    let cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = cgroup
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "pids")
                .then(|| path.to_owned())
        })
        .expect("this test needs the cgroup v1 pids hierarchy at /sys/fs/cgroup/pids");
    let root = std::path::Path::new("/sys/fs/cgroup/pids").join(own.trim_start_matches('/'));
    // A pid that has certainly exited (and been reaped).
    let dead = std::process::Command::new("/bin/true").spawn().unwrap();
    let dead_pid = dead.id();
    let mut dead = dead;
    dead.wait().unwrap();
    let stale = root.join(format!("sigil-sandbox-{dead_pid}-7"));
    std::fs::create_dir(&stale).unwrap();
    let live = root.join(format!("sigil-sandbox-{}-999", std::process::id()));
    std::fs::create_dir(&live).unwrap();
    let sandbox = sandbox();
    let stale_left = stale.exists();
    let live_left = live.exists();
    let _ = std::fs::remove_dir(&stale);
    let _ = std::fs::remove_dir(&live);
    assert!(!stale_left, "{} was not removed", stale.display());
    assert!(live_left, "a live host's group was removed");
    assert_next_sandbox_works(&sandbox).await;
}

/// Opens `dir` the way a caller holding a grant does (any open descriptor of the directory).
fn hold(dir: &std::path::Path) -> sigil_sandbox::HostDir {
    let file = std::fs::File::open(dir).unwrap();
    sigil_sandbox::HostDir::Held {
        fd: std::sync::Arc::new(std::os::fd::OwnedFd::from(file)),
        path: dir.to_path_buf(),
    }
}

#[tokio::test]
async fn a_held_directory_is_bound_by_its_handle_after_its_path_is_swapped_for_a_link() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let root = tempfile::tempdir().unwrap();
    let root = root.path().canonicalize().unwrap();
    let (data, out, outside) = (root.join("data"), root.join("out"), root.join("outside"));
    for dir in [&data, &out, &outside] {
        std::fs::create_dir(dir).unwrap();
    }
    std::fs::write(data.join("mine.txt"), "held").unwrap();
    std::fs::write(outside.join("secret.txt"), "outside secret").unwrap();
    let (held_data, held_out) = (hold(&data), hold(&out));
    // Both paths now lead outside; the handles still hold the directories granted.
    for dir in [&data, &out] {
        std::fs::rename(dir, dir.with_extension("old")).unwrap();
        std::os::unix::fs::symlink(&outside, dir).unwrap();
    }
    let mut spec = dirs.python(&format!(
        "import os\n\
         for name in ['mine.txt', 'secret.txt']:\n\
         \x20   try: print(name, open(os.path.join({data:?}, name)).read())\n\
         \x20   except OSError: print(name, 'missing')\n\
         open(os.path.join({out:?}, 'written.txt'), 'w').write('x')\n\
         fds = [int(f) for f in os.listdir('/proc/self/fd')]\n\
         def is_open(fd):\n\
         \x20   try: os.fstat(fd); return True\n\
         \x20   except OSError: return False\n\
         print('inherited', [os.readlink('/proc/self/fd/%d' % fd) for fd in fds if fd > 2 and is_open(fd)])\n",
        data = data,
        out = out,
    ));
    spec.read_only = vec![held_data];
    spec.read_write = vec![held_out];
    let done = run(&sandbox, &spec).await;
    assert!(done.status.success(), "{done:?}");
    assert_eq!(
        done.lines(),
        ["mine.txt held", "secret.txt missing", "inherited []"],
        "{done:?}"
    );
    assert!(root.join("out.old/written.txt").exists());
    assert!(!outside.join("written.txt").exists());
    assert_next_sandbox_works(&sandbox).await;
}

#[tokio::test]
async fn a_held_plugin_directory_is_bound_by_its_handle() {
    let sandbox = sandbox();
    let dirs = Dirs::new();
    let mut spec = dirs.shell("cat /plugin/plugin.txt");
    spec.plugin_dir = hold(dirs.plugin.path());
    let moved = tempfile::tempdir().unwrap();
    let elsewhere = moved.path().join("plugin");
    std::fs::rename(dirs.plugin.path(), &elsewhere).unwrap();
    std::os::unix::fs::symlink("/etc", dirs.plugin.path()).unwrap();
    let done = run(&sandbox, &spec).await;
    std::fs::remove_file(dirs.plugin.path()).unwrap();
    std::fs::rename(&elsewhere, dirs.plugin.path()).unwrap();
    assert!(done.status.success(), "{done:?}");
    assert_eq!(done.stdout, "plugin file\n", "{done:?}");
}
