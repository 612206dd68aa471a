//! Signing and verifying real plugin directories, and minisign's own command line agreeing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use sigil_trust::{
    DIGESTS_FILE, KeyPair, PublicKey, SIGNATURE_FILE, Signature, TrustError, TrustedKeys, sign_dir,
    verify_dir,
};

fn plugin() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("plugin.toml"), "id = \"demo\"\n").unwrap();
    std::fs::create_dir_all(dir.path().join("lib/sub")).unwrap();
    std::fs::write(dir.path().join("lib/sub/code.py"), "print('hi')\n").unwrap();
    std::fs::write(dir.path().join("main.py"), "import lib\n").unwrap();
    // Left out of the list wherever they appear, as install leaves them out.
    std::fs::create_dir_all(dir.path().join("target/debug")).unwrap();
    std::fs::write(dir.path().join("target/debug/build.log"), "junk").unwrap();
    dir
}

#[test]
fn bytecode_planted_beside_signed_sources_is_refused() {
    let dir = plugin();
    // Left out of the signed list, as install does not copy it...
    std::fs::create_dir_all(dir.path().join("lib/__pycache__")).unwrap();
    std::fs::write(dir.path().join("lib/__pycache__/x.pyc"), "stale").unwrap();
    let pair = KeyPair::generate_unencrypted().unwrap();
    let signed = sign_dir(dir.path(), &pair).unwrap();
    assert!(!signed.digests.contains("lib/__pycache__/x.pyc"));
    // ...but Python would run it in place of the signed source, so a signed plugin holding
    // any is refused until it is deleted.
    let problems = tampered(verify_dir(dir.path(), &trusting("release", &pair)));
    assert_eq!(
        problems,
        [
            "lib/__pycache__/x.pyc is bytecode, which is never signed: delete the __pycache__ directories"
        ]
    );
    std::fs::remove_dir_all(dir.path().join("lib/__pycache__")).unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &trusting("release", &pair)).unwrap(),
        Signature::Verified { .. }
    ));
}

fn trusting(name: &str, pair: &KeyPair) -> TrustedKeys {
    let mut keys = TrustedKeys::default();
    keys.insert(name, pair.public().clone()).unwrap();
    keys
}

fn tampered(result: Result<Signature, TrustError>) -> Vec<String> {
    match result {
        Err(TrustError::Tampered { problems, .. }) => problems,
        other => panic!("expected tampering, got {other:?}"),
    }
}

#[test]
fn a_signed_directory_verifies_with_the_trusted_key_and_sha256sum_agrees() {
    let dir = plugin();
    let pair = KeyPair::generate_unencrypted().unwrap();
    let signed = sign_dir(dir.path(), &pair).unwrap();
    assert_eq!(signed.digests.len(), 3);

    let list = std::fs::read_to_string(dir.path().join(DIGESTS_FILE)).unwrap();
    let paths: Vec<&str> = list.lines().map(|l| &l[66..]).collect();
    assert_eq!(paths, ["lib/sub/code.py", "main.py", "plugin.toml"]);

    match verify_dir(dir.path(), &trusting("release", &pair)).unwrap() {
        Signature::Verified { key, id, digests } => {
            assert_eq!(key, "release");
            assert_eq!(id, pair.public().id());
            assert!(digests.contains("main.py"));
        }
        other => panic!("{other:?}"),
    }

    // The digest list is sha256sum's format.
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", DIGESTS_FILE])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
}

#[test]
fn minisign_verifies_our_signatures_and_we_verify_minisigns() {
    // Sigil signs, minisign verifies.
    let dir = plugin();
    let keys = tempfile::tempdir().unwrap();
    let pair = KeyPair::generate_unencrypted().unwrap();
    let (secret, public) = (keys.path().join("k.key"), keys.path().join("k.pub"));
    pair.write(&secret, &public).unwrap();
    let reread = KeyPair::read(&secret, None).unwrap();
    assert_eq!(reread.public(), pair.public());
    sign_dir(dir.path(), &reread).unwrap();
    let out = Command::new("minisign")
        .args(["-V", "-m", DIGESTS_FILE, "-p"])
        .arg(&public)
        .current_dir(dir.path())
        .output()
        .expect("the minisign command (Debian package `minisign`) runs");
    assert!(
        out.status.success(),
        "minisign refused our signature: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Signature and comment signature verified")
    );

    // minisign refuses it once the list changes.
    std::fs::write(dir.path().join(DIGESTS_FILE), "changed\n").unwrap();
    let out = Command::new("minisign")
        .args(["-V", "-m", DIGESTS_FILE, "-p"])
        .arg(&public)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());

    // minisign signs (a key made by minisign, unencrypted), Sigil verifies.
    let other = plugin();
    let (msecret, mpublic) = (keys.path().join("m.key"), keys.path().join("m.pub"));
    let out = Command::new("minisign")
        .args(["-G", "-W", "-s"])
        .arg(&msecret)
        .arg("-p")
        .arg(&mpublic)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = KeyPair::generate_unencrypted().unwrap();
    sign_dir(other.path(), &ours).unwrap();
    std::fs::remove_file(other.path().join(SIGNATURE_FILE)).unwrap();
    let out = Command::new("minisign")
        .args(["-S", "-s"])
        .arg(&msecret)
        .args(["-m", DIGESTS_FILE])
        .current_dir(other.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = PublicKey::parse(&std::fs::read_to_string(&mpublic).unwrap(), "m.pub").unwrap();
    let mut keys = TrustedKeys::default();
    keys.insert("minisign-made", theirs).unwrap();
    match verify_dir(other.path(), &keys).unwrap() {
        Signature::Verified { key, .. } => assert_eq!(key, "minisign-made"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn files_changed_added_or_removed_after_signing_are_named() {
    let pair = KeyPair::generate_unencrypted().unwrap();
    let keys = trusting("release", &pair);

    let dir = plugin();
    sign_dir(dir.path(), &pair).unwrap();
    let mut code = std::fs::read(dir.path().join("main.py")).unwrap();
    code[0] ^= 1;
    std::fs::write(dir.path().join("main.py"), code).unwrap();
    assert_eq!(
        tampered(verify_dir(dir.path(), &keys)),
        ["main.py was changed after signing"]
    );

    let dir = plugin();
    sign_dir(dir.path(), &pair).unwrap();
    std::fs::write(dir.path().join("lib/extra.py"), "evil()\n").unwrap();
    std::fs::remove_file(dir.path().join("lib/sub/code.py")).unwrap();
    assert_eq!(
        tampered(verify_dir(dir.path(), &keys)),
        [
            "lib/sub/code.py is listed but missing",
            "lib/extra.py was added after signing"
        ]
    );

    let dir = plugin();
    sign_dir(dir.path(), &pair).unwrap();
    std::fs::remove_file(dir.path().join(DIGESTS_FILE)).unwrap();
    let problems = tampered(verify_dir(dir.path(), &keys));
    assert!(
        problems[0].contains("SIGIL-DIGESTS is missing"),
        "{problems:?}"
    );
}

#[test]
fn signatures_by_unknown_keys_count_for_nothing_and_broken_ones_are_errors() {
    let pair = KeyPair::generate_unencrypted().unwrap();
    let stranger = KeyPair::generate_unencrypted().unwrap();
    let keys = trusting("release", &pair);

    let dir = plugin();
    assert_eq!(verify_dir(dir.path(), &keys).unwrap(), Signature::Unsigned);

    sign_dir(dir.path(), &stranger).unwrap();
    assert_eq!(
        verify_dir(dir.path(), &keys).unwrap(),
        Signature::UnknownSigner {
            id: stranger.public().id()
        }
    );

    // A digest list rewritten to match changed files, under the old signature.
    let dir = plugin();
    sign_dir(dir.path(), &pair).unwrap();
    let signature = std::fs::read(dir.path().join(SIGNATURE_FILE)).unwrap();
    std::fs::write(dir.path().join("main.py"), "evil()\n").unwrap();
    sign_dir(dir.path(), &KeyPair::generate_unencrypted().unwrap()).unwrap();
    std::fs::write(dir.path().join(SIGNATURE_FILE), signature).unwrap();
    match verify_dir(dir.path(), &keys) {
        Err(error @ TrustError::Forged { .. }) => {
            let message = error.to_string();
            assert!(
                message.contains("SIGIL-DIGESTS.minisig")
                    && message.contains("trusted key `release`"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }

    std::fs::write(dir.path().join(SIGNATURE_FILE), "not a signature").unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &keys),
        Err(TrustError::BadSignature { .. })
    ));
}

#[test]
fn links_cannot_be_signed_and_keys_are_checked() {
    let pair = KeyPair::generate_unencrypted().unwrap();
    let dir = plugin();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("lib/passwd")).unwrap();
    match sign_dir(dir.path(), &pair) {
        Err(error @ TrustError::Unsignable { .. }) => {
            assert!(error.to_string().contains("lib/passwd"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    assert!(!dir.path().join(SIGNATURE_FILE).exists());

    let mut keys = TrustedKeys::default();
    keys.insert("a", pair.public().clone()).unwrap();
    for (name, expected) in [
        ("b", "already trusted as `a`"),
        ("bad name", "a key name is"),
        ("a", "the name is taken"),
    ] {
        let error = keys.insert(name, pair.public().clone()).unwrap_err();
        assert!(error.to_string().contains(expected), "{name}: {error}");
    }
    assert!(PublicKey::parse("RWnot-a-key", "x").is_err());
    let text = pair.public().to_file_text();
    assert_eq!(&PublicKey::parse(&text, "x").unwrap(), pair.public());
    assert_eq!(
        &PublicKey::parse(&pair.public().to_base64(), "x").unwrap(),
        pair.public()
    );
}

#[test]
fn an_encrypted_secret_key_needs_its_password() {
    let keys = tempfile::tempdir().unwrap();
    let pair = KeyPair::generate_encrypted("correct horse".into()).unwrap();
    let (secret, public) = (keys.path().join("k.key"), keys.path().join("k.pub"));
    pair.write(&secret, &public).unwrap();
    assert!(pair.write(&secret, &keys.path().join("other.pub")).is_err());
    let error = KeyPair::read(&secret, None).unwrap_err().to_string();
    assert!(error.contains("needs its password"), "{error}");
    let error = KeyPair::read(&secret, Some("wrong".into()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("k.key"), "{error}");
    let read = KeyPair::read(&secret, Some("correct horse".into())).unwrap();
    assert_eq!(read.public(), pair.public());
    let dir = plugin();
    sign_dir(dir.path(), &read).unwrap();
    assert!(Path::new(&dir.path().join(SIGNATURE_FILE)).exists());
}
