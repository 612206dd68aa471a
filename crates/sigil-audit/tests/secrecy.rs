//! The chain key and the checkpoint key never appear in logs, `Debug` output or errors.
//!
//! One test per binary: it installs the process-wide log subscriber, so the writer thread's
//! logs are captured too.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use common::{TestResult, chain_key, fill, keys, raw, sample, temp_db};
use sigil_audit::{AuditLog, Checkpoint};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every way a key's bytes could be spelled in text.
fn spellings(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        hex.clone(),
        hex.to_uppercase(),
        // minisign's own `Debug` of a secret key: unpadded hex digits.
        bytes.iter().map(|b| format!("{b:x}")).collect(),
        format!("{bytes:?}"),
        String::from_utf8_lossy(bytes).into_owned(),
    ]
}

/// Standard base64, as minisign writes keys.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes().filter(|c| *c != b'=') {
        let Some(v) = ALPHABET.iter().position(|a| *a == c) else {
            continue;
        };
        acc = (acc << 6) | u32::try_from(v).unwrap_or(0);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap_or(0));
        }
    }
    out
}

#[test]
fn the_audit_keys_never_appear_in_logs_debug_output_or_errors() -> TestResult {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )?;

    let (_dir, path) = temp_db()?;
    fill(&path, 5)?;
    let files = keys(&path);
    let mut shown: Vec<String> = Vec::new();

    let log = AuditLog::open(&path, &files)?;
    let checkpoint = log.checkpoint()?;
    shown.push(format!("{log:?} {files:?} {checkpoint:?}"));
    shown.push(checkpoint.to_json());
    shown.push(format!("{:?}", log.verify()?));

    // Errors: a write refused after the head was forged, a refused checkpoint, and the
    // open refusals, each also logged.
    raw(&path)?.execute("UPDATE audit_head SET seq = 4", [])?;
    match log.append(sample(6)) {
        Err(e) => shown.push(format!("{e} {e:?}")),
        Ok(seq) => return Err(format!("a write after a forged head got {seq}").into()),
    }
    let foreign = Checkpoint {
        head: "1".repeat(64),
        ..checkpoint.clone()
    };
    match log.verify_checkpoint(&foreign) {
        Err(e) => shown.push(format!("{e} {e:?}")),
        Ok(report) => return Err(format!("a changed checkpoint was accepted: {report:?}").into()),
    }
    log.close()?;

    let key = chain_key(&path)?;
    let secret_text = std::fs::read_to_string(files.checkpoint())?;

    std::fs::write(files.chain(), [0x42u8; 32])?;
    match AuditLog::open(&path, &files) {
        Err(e) => shown.push(format!("{e} {e:?}")),
        Ok(_) => return Err("a wrong chain key was accepted".into()),
    }
    std::fs::write(files.chain(), &key[..31])?;
    match AuditLog::open(&path, &files) {
        Err(e) => shown.push(format!("{e} {e:?}")),
        Ok(_) => return Err("a short chain key was accepted".into()),
    }
    std::fs::write(files.chain(), &key)?;
    let damaged = secret_text.replacen("\n", "\n!", 1);
    std::fs::write(files.checkpoint(), &damaged)?;
    match AuditLog::open(&path, &files) {
        Err(e) => shown.push(format!("{e} {e:?}")),
        Ok(_) => return Err("a damaged checkpoint key was accepted".into()),
    }
    std::fs::write(files.checkpoint(), &secret_text)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(files.chain(), std::fs::Permissions::from_mode(0o644))?;
    }
    raw(&path)?.execute("UPDATE audit_head SET seq = 5", [])?;
    let log = AuditLog::open(&path, &files)?;
    shown.push(format!("{log:?}"));
    log.close()?;

    let logs = String::from_utf8(
        capture
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )?;
    assert!(logs.contains("audit batch failed"), "{logs}");
    assert!(logs.contains("readable by others"), "{logs}");
    shown.push(logs);

    let line = secret_text
        .lines()
        .nth(1)
        .ok_or("the checkpoint key file has its key on the second line")?;
    let secret = base64_decode(line);
    // sig_alg, kdf_alg, chk_alg (2 each), salt (32), limits (8 + 8), key number (8), then the
    // 64-byte Ed25519 secret key (seed and public half).
    let ed25519 = secret
        .get(62..126)
        .ok_or("a minisign secret key is 158 bytes")?;
    let mut forbidden = vec![line.to_owned()];
    forbidden.extend(spellings(&key));
    forbidden.extend(spellings(ed25519));
    forbidden.extend(spellings(&ed25519[..32]));
    for text in &shown {
        for secret in &forbidden {
            assert!(!text.contains(secret.as_str()), "a key appears in:\n{text}");
        }
    }
    Ok(())
}
