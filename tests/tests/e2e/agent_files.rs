//! `agent encrypt` / `agent decrypt` as an operator runs them: round trips with PFX files made by
//! `openssl` and by the project, each kind of damage with its exit code, processes killed in the
//! middle, encrypted logs of a crashed agent, and CMS files exchanged with `openssl cms`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ids_devpki::KeyKind;
use serde_json::json;

use crate::support::{
    AgentDeployment, PASSWORD, agent, code, fixtures, partial_files, project_pfx, spawn_agent,
    stderr, wait_for,
};

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// An agent folder whose settings name `pfx` as its EncryptionCertificate with EncryptFile true (no
/// server is contacted by the file commands).
fn deployment_with_certificate(pfx: &str, encrypt: bool) -> AgentDeployment {
    let mut a = AgentDeployment::new("https://127.0.0.1:9");
    a.set(
        "EncryptionCertificate",
        json!({ "File": pfx, "EncryptFile": encrypt }),
    );
    a.set_agent("EncryptionCertificate", json!({ "Password": PASSWORD }));
    a.write();
    a
}

#[test]
fn round_trips_with_openssl_and_project_pfx_files_rsa_and_ec() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let (project_rsa, project_rsa_crt) = project_pfx(d, "project-rsa", KeyKind::Rsa2048);
    let (project_ec, project_ec_crt) = project_pfx(d, "project-ec", KeyKind::EcP256);
    let pairs = [
        (
            fixtures().join("signing-rsa.pfx"),
            fixtures().join("signing-rsa.crt"),
        ),
        (
            fixtures().join("signing-ec.pfx"),
            fixtures().join("signing-ec.crt"),
        ),
        (project_rsa, project_rsa_crt),
        (project_ec, project_ec_crt),
    ];
    let sizes = [0usize, 1, 65_536, 65_537, 300_000];
    for (i, (pfx, crt)) in pairs.iter().enumerate() {
        let inputs: Vec<PathBuf> = sizes
            .iter()
            .map(|&n| {
                let p = d.join(format!("k{i}-{n}.bin"));
                std::fs::write(&p, data(n)).expect("write input");
                p
            })
            .collect();
        let mut args = vec!["encrypt", "--recipient", path_str(crt)];
        args.extend(inputs.iter().map(|p| path_str(p)));
        let out = agent(d, &args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));

        let encrypted: Vec<String> = inputs
            .iter()
            .map(|p| format!("{}.enc", p.display()))
            .collect();
        let plain_dir = d.join(format!("plain{i}"));
        let mut args = vec![
            "decrypt",
            "--key",
            path_str(pfx),
            "--password-env",
            "TEST_PFX_PASSWORD",
            "-o",
            path_str(&plain_dir),
        ];
        args.extend(encrypted.iter().map(String::as_str));
        let out = agent(d, &args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        for (input, n) in inputs.iter().zip(sizes) {
            let back =
                std::fs::read(plain_dir.join(input.file_name().expect("name"))).expect("out");
            assert_eq!(back, data(n), "{} with {}", input.display(), pfx.display());
        }
    }
}

#[test]
fn the_settings_certificate_is_the_default_and_exit_codes_tell_damage_from_another_key() {
    let a = deployment_with_certificate("signing-rsa.pfx", true);
    let d = a.path();
    std::fs::write(d.join("report.csv"), data(200_000)).expect("write");
    let out = agent(d, &["encrypt", "report.csv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let enc = std::fs::read(d.join("report.csv.enc")).expect("encrypted");
    assert!(enc.starts_with(b"IDSENC"));
    std::fs::remove_file(d.join("report.csv")).expect("rm");

    // The agent's own key by default.
    let out = agent(d, &["decrypt", "report.csv.enc"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        std::fs::read(d.join("report.csv")).expect("plain"),
        data(200_000)
    );

    // An existing output is not replaced without --force.
    let out = agent(d, &["decrypt", "report.csv.enc"]);
    assert_eq!(code(&out), 9, "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    std::fs::remove_file(d.join("report.csv")).expect("rm");

    // Another key: exit 7, and the message names the certificate the file is for.
    let out = agent(
        d,
        &[
            "decrypt",
            "report.csv.enc",
            "--key",
            "signing-ec.pfx",
            "--password-env",
            "TEST_PFX_PASSWORD",
        ],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
    let rsa = ids_pki::Certificate::from_file(&fixtures().join("signing-rsa.crt")).expect("crt");
    assert!(stderr(&out).contains(&rsa.x5t_s256()), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("different certificate"),
        "{}",
        stderr(&out)
    );

    // Damage: a flipped byte in a chunk, the last chunk dropped, data appended: exit 8, no output.
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "flipped.enc",
            {
                let mut b = enc.clone();
                b[5_000] ^= 0x40;
                b
            },
            "failed authentication",
        ),
        ("cut.enc", enc[..enc.len() - 100].to_vec(), "truncated"),
        (
            "appended.enc",
            [enc.as_slice(), b"more"].concat(),
            "appended",
        ),
    ];
    for (name, bytes, expected) in cases {
        std::fs::write(d.join(name), bytes).expect("write");
        let out = agent(d, &["decrypt", name]);
        assert_eq!(code(&out), 8, "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(name),
            "the message names the file: {}",
            stderr(&out)
        );
        let output = d.join(name.trim_end_matches(".enc"));
        assert!(!output.exists(), "{name}: no output file");
    }
    let leftovers: Vec<_> = std::fs::read_dir(d)
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files removed: {leftovers:?}"
    );

    // A file that is not encrypted: exit 9.
    std::fs::write(d.join("plain.txt"), "hello").expect("write");
    let out = agent(d, &["decrypt", "plain.txt"]);
    assert_eq!(code(&out), 9, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not an encrypted file"),
        "{}",
        stderr(&out)
    );

    // The commands' log files are encrypted: no plaintext line, readable with the agent's key.
    let logs: Vec<PathBuf> = std::fs::read_dir(d.join("work/logs"))
        .expect("log folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(!logs.is_empty());
    let mut all = String::new();
    for log in &logs {
        assert!(
            log.to_string_lossy().ends_with(".log.enc"),
            "{}",
            log.display()
        );
        let bytes = std::fs::read(log).expect("log");
        assert!(bytes.starts_with(b"IDSENC"));
        assert!(!String::from_utf8_lossy(&bytes).contains("report.csv"));
        let out = agent(d, &["decrypt", "--stdout", path_str(log)]);
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    assert!(
        all.contains("file encrypted") && all.contains("report.csv"),
        "{all}"
    );
}

#[test]
fn encrypt_file_false_warns_once_and_logs_in_clear() {
    let a = deployment_with_certificate("signing-rsa.pfx", false);
    let d = a.path();
    std::fs::write(d.join("x.txt"), "x").expect("write");
    let out = agent(d, &["encrypt", "x.txt"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("EncryptFile is false").count(),
        1,
        "{}",
        stderr(&out)
    );
    let logs: Vec<_> = std::fs::read_dir(d.join("work/logs"))
        .expect("logs")
        .flatten()
        .collect();
    assert!(
        logs.iter()
            .all(|e| e.file_name().to_string_lossy().ends_with(".log"))
    );
}

/// Makes a named pipe: a process reading it blocks until data comes, so it can be killed mid-file.
fn fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// Feeds `bytes` into the pipe from a thread (the open blocks until the agent opens its end) and
/// keeps the writing end open so the agent waits for more.
fn feed(pipe: PathBuf, bytes: Vec<u8>) -> std::thread::JoinHandle<std::fs::File> {
    std::thread::spawn(move || {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(pipe)
            .expect("open fifo");
        f.write_all(&bytes).expect("feed");
        f
    })
}

#[test]
fn killed_while_encrypting_or_decrypting_leaves_the_original_and_no_partial_output() {
    let a = deployment_with_certificate("signing-rsa.pfx", true);
    let d = a.path();

    // Encrypting a file that arrives slowly: killed after 1 MiB, nothing under the final name.
    fifo(&d.join("incoming.bin"));
    let mut child = spawn_agent(d, &["encrypt", "incoming.bin"]);
    let writer = feed(d.join("incoming.bin"), data(1 << 20));
    wait_for("encrypted chunks in the temporary file", || {
        partial_files(d)
            .iter()
            .any(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 500_000)
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    drop(writer.join());
    assert!(
        !d.join("incoming.bin.enc").exists(),
        "no file under the final name"
    );

    // Decrypting over an existing file with --force: killed mid-way, the existing file is intact.
    std::fs::write(d.join("big.bin"), data(3 << 20)).expect("write");
    let out = agent(d, &["encrypt", "big.bin"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let encrypted = std::fs::read(d.join("big.bin.enc")).expect("enc");
    std::fs::write(d.join("big.bin"), b"the previous version").expect("write");
    std::fs::create_dir(d.join("in")).expect("mkdir");
    fifo(&d.join("in/big.bin.enc"));
    let mut child = spawn_agent(d, &["decrypt", "in/big.bin.enc", "-o", ".", "--force"]);
    let writer = feed(
        d.join("in/big.bin.enc"),
        encrypted[..encrypted.len() / 2].to_vec(),
    );
    wait_for("decrypted chunks in the temporary file", || {
        partial_files(d)
            .iter()
            .any(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 1_000_000)
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    drop(writer.join());
    assert_eq!(
        std::fs::read(d.join("big.bin")).expect("original"),
        b"the previous version"
    );

    // The original input of an encryption is never touched either.
    assert_eq!(
        std::fs::read(d.join("big.bin.enc")).expect("enc"),
        encrypted
    );
}

#[test]
fn the_log_of_a_killed_agent_is_recovered_up_to_its_last_line() {
    let a = deployment_with_certificate("signing-ec.pfx", true);
    let d = a.path();
    fifo(&d.join("stuck.enc"));
    // `decrypt` logs that it started, then blocks on the pipe: kill it there.
    let mut child = spawn_agent(d, &["decrypt", "stuck.enc"]);
    let pid = child.id();
    let logs = d.join("work/logs");
    let log = || -> Option<PathBuf> {
        std::fs::read_dir(&logs)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(&format!("-{pid}.log.enc")))
    };
    wait_for("a sealed log line", || {
        log().and_then(|p| std::fs::read(p).ok()).is_some_and(|b| {
            b.len() > 11 && b.len() > u32::from_be_bytes([b[7], b[8], b[9], b[10]]) as usize + 20
        })
    });
    child.kill().expect("kill");
    child.wait().expect("wait");
    let log = log().expect("log file");
    let log = path_str(&log).to_string();

    let out = agent(d, &["decrypt", "--stdout", &log]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
    assert!(stderr(&out).contains("truncated"), "{}", stderr(&out));

    let out = agent(d, &["decrypt", "--stdout", "--recover", &log]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("started"), "{text}");
    assert!(stderr(&out).contains("recovered"), "{}", stderr(&out));

    // A modified chunk is not a crash: --recover still outputs what is authentic, but exits 8.
    let mut bytes = std::fs::read(&log).expect("log");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(d.join("modified.log.enc"), bytes).expect("write");
    let out = agent(d, &["decrypt", "--stdout", "--recover", "modified.log.enc"]);
    assert_eq!(code(&out), 8, "{}", stderr(&out));
}

fn openssl(args: &[&str]) -> Output {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    out
}

#[test]
fn cms_files_are_exchanged_with_openssl_cms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let crt = fixtures().join("signing-rsa.crt");
    let pfx = fixtures().join("signing-rsa.pfx");
    let key = d.join("key.pem");
    openssl(&[
        "pkcs12",
        "-in",
        path_str(&pfx),
        "-nocerts",
        "-nodes",
        "-passin",
        "pass:test-password",
        "-out",
        path_str(&key),
    ]);
    let original = data(100_000);
    std::fs::write(d.join("doc.bin"), &original).expect("write");

    // Ours -> openssl.
    let out = agent(
        d,
        &[
            "encrypt",
            "--format",
            "cms",
            "--recipient",
            path_str(&crt),
            "doc.bin",
        ],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let decrypted = d.join("by-openssl.bin");
    openssl(&[
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        "DER",
        "-in",
        path_str(&d.join("doc.bin.p7m")),
        "-inkey",
        path_str(&key),
        "-recip",
        path_str(&crt),
        "-out",
        path_str(&decrypted),
    ]);
    assert_eq!(std::fs::read(&decrypted).expect("read"), original);

    // openssl -> ours, authenticated (GCM) and CBC.
    for (cipher, name) in [("-aes-256-gcm", "gcm.p7m"), ("-aes-256-cbc", "cbc.p7m")] {
        openssl(&[
            "cms",
            "-encrypt",
            "-binary",
            cipher,
            "-outform",
            "DER",
            "-in",
            path_str(&d.join("doc.bin")),
            "-out",
            path_str(&d.join(name)),
            path_str(&crt),
        ]);
        let out = agent(
            d,
            &[
                "decrypt",
                name,
                "--stdout",
                "--key",
                path_str(&pfx),
                "--password-env",
                "TEST_PFX_PASSWORD",
            ],
        );
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        assert_eq!(out.stdout, original, "{name}");
        assert_eq!(
            stderr(&out).contains("not authenticated"),
            name == "cbc.p7m",
            "{name}: {}",
            stderr(&out)
        );
    }

    // Another key: exit 7.
    let out = agent(
        d,
        &[
            "decrypt",
            "gcm.p7m",
            "--key",
            path_str(&fixtures().join("signing-ec.pfx")),
            "--password-env",
            "TEST_PFX_PASSWORD",
        ],
    );
    assert_eq!(code(&out), 7, "{}", stderr(&out));
}

#[test]
fn the_vault_encrypts_what_the_agent_writes_only_when_encrypt_file_is_true() {
    use std::io::{Read as _, Write as _};
    for encrypt in [true, false] {
        let a = deployment_with_certificate("signing-ec.pfx", encrypt);
        let loaded = a.load_with(&[]).expect("settings");
        let now = agent::clock::Clock::now(&agent::SystemClock);
        let vault = agent::files::Vault::from_settings(&loaded.settings, now).expect("vault");
        assert_eq!(vault.encrypts(), encrypt);

        let mut file = vault.create_temp("spool.csv").expect("create");
        let path = file.path().to_path_buf();
        file.write_all(b"id;name\n1;secret row\n").expect("write");
        assert!(!path.exists(), "invisible until committed");
        file.commit().expect("commit");
        assert!(
            path.starts_with(a.path().join("work/temp")),
            "{}",
            path.display()
        );

        let on_disk = std::fs::read(&path).expect("read");
        assert_eq!(on_disk.starts_with(b"IDSENC"), encrypt);
        assert_eq!(
            String::from_utf8_lossy(&on_disk).contains("secret row"),
            !encrypt
        );
        let (mut reader, was_encrypted) = vault.open(&path).expect("open");
        let mut back = String::new();
        reader.read_to_string(&mut back).expect("read back");
        assert_eq!(back, "id;name\n1;secret row\n");
        assert_eq!(was_encrypted, encrypt);
    }
}

#[test]
fn an_expired_encryption_certificate_is_refused_for_encrypting_with_its_date() {
    let a = deployment_with_certificate("expired.pfx", true);
    let d = a.path();
    std::fs::write(d.join("x.txt"), "x").expect("write");
    let out = agent(d, &["encrypt", "x.txt"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("EncryptionCertificate:File")
            && err.contains("expired")
            && err.contains("2021"),
        "{err}"
    );
    assert!(!d.join("x.txt.enc").exists());
    assert!(!err.contains(PASSWORD), "no password in messages");
    // A wrong PFX password names the setting, never the password.
    let mut a = deployment_with_certificate("signing-rsa.pfx", true);
    a.set_agent(
        "EncryptionCertificate",
        json!({ "Password": "not-the-password" }),
    );
    a.write();
    let out = agent(a.path(), &["encrypt", "x.txt"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong password"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("not-the-password"));
}
