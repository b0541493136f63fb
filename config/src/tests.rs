//! Unit tests of the layered configuration, the key declarations' use and the protected settings.

use super::*;

fn schema() -> Schema {
    Schema::new(&[
        "IdentityServer:X509KeyFilePath",
        "IdentityServer:X509KeyFilePassword",
        "IdentityServer:ValidationKeys:*",
        "Urls",
        "Logging:**",
    ])
}

#[test]
fn layering_case_and_environment() {
    let dir = tempdir();
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"identityserver":{"X509KeyFilePath":"a.pfx","ValidationKeys":["v1.crt","v2.crt"]},"Urls":"https://localhost:1"}"#,
    )
    .expect("write");
    std::fs::write(
        dir.join("appsettings.Staging.json"),
        r#"{"IdentityServer":{"x509keyfilepath":"b.pfx","ValidationKeys":["v3.crt"]}}"#,
    )
    .expect("write");
    let vars = vec![
        ("ASPNETCORE_ENVIRONMENT".to_string(), "Staging".to_string()),
        (
            "IDENTITYSERVER__X509KeyFilePassword".to_string(),
            "pw".to_string(),
        ),
        ("PATH".to_string(), "/bin".to_string()),
    ];
    let c = Config::load(&dir, "appsettings", true, &vars, &schema()).expect("load");
    assert_eq!(
        c.string("IdentityServer:X509KeyFilePath").as_deref(),
        Some("b.pfx")
    );
    assert_eq!(
        c.string("identityserver:x509keyfilepassword").as_deref(),
        Some("pw")
    );
    let keys: Vec<_> = c
        .list("IdentityServer:ValidationKeys")
        .iter()
        .map(|s| s.value.clone())
        .collect();
    // .NET semantics: element 0 overridden, element 1 kept from the base file.
    assert_eq!(keys, vec!["v3.crt", "v2.crt"]);
    assert!(c.get("PATH").is_none());
    assert_eq!(
        c.path("IdentityServer:X509KeyFilePath"),
        Some(dir.join("b.pfx"))
    );
    assert!(c.check_unknown(&schema()).is_empty());
}

#[test]
fn typo_is_reported_with_hint_and_json_errors_have_positions() {
    let dir = tempdir();
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"IdentityServer":{"X509KeyFilePasword":"x"},"Logging":{"LogLevel":{"Default":"Information"}}}"#,
    )
    .expect("write");
    let c = Config::load(&dir, "appsettings", true, &[], &schema()).expect("load");
    let errors = c.check_unknown(&schema());
    assert_eq!(errors.len(), 1);
    let text = errors[0].to_string();
    assert!(text.contains("IdentityServer:X509KeyFilePasword"), "{text}");
    assert!(
        text.contains("did you mean `IdentityServer:X509KeyFilePassword`"),
        "{text}"
    );
    std::fs::write(
        dir.join("appsettings.json"),
        "{\n  \"Urls\": \"x\",\n  oops\n}",
    )
    .expect("write");
    let err = Config::load(&dir, "appsettings", true, &[], &schema()).expect_err("bad json");
    assert!(
        err[0].to_string().contains("appsettings.json:3:"),
        "{}",
        err[0]
    );
}

#[test]
fn other_softwares_sections_are_ignored_but_owned_sections_stay_strict() {
    let dir = tempdir();
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"Connections":{"UsercubeDatabase":"data source=.;Password=x"},"License":"abc",
           "Scheduler":{"Enabled":true},
           "IdentityServer":{"X509KeyFilePath":"a.pfx","X509KeyFilePasword":"x"},
           "Urlz":"https://localhost:1","IdentityServr":{"X509KeyFilePath":"b.pfx"}}"#,
    )
    .expect("write");
    let c = Config::load(&dir, "appsettings", true, &[], &schema()).expect("load");
    let errors: Vec<String> = c
        .check_unknown(&schema())
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0].contains("`IdentityServer:X509KeyFilePasword`")
            && errors[0].contains("did you mean `IdentityServer:X509KeyFilePassword`"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("`IdentityServr`")
            && errors[1].contains("did you mean the section `IdentityServer`"),
        "{errors:?}"
    );
    // Short names: one letter away.
    assert!(
        errors[2].contains("`Urlz`") && errors[2].contains("did you mean the section `Urls`"),
        "{errors:?}"
    );
    let ignored = c.ignored_sections(&schema());
    let names: Vec<&str> = ignored.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, vec!["Connections", "License", "Scheduler"]);
    let line = describe_ignored(&ignored, "server").expect("some");
    assert!(
        line.starts_with("ignored: not used by this server: Connections (in "),
        "{line}"
    );
    assert!(!line.contains("Password=x"), "{line}");
}

#[test]
fn password_settings_may_come_from_files_and_credentials() {
    let schema = schema();
    // `XFile` stands for a password or secret key the schema knows, nothing else.
    assert!(schema.knows("IdentityServer:X509KeyFilePasswordFile"));
    assert!(schema.knows("identityserver:x509keyfilepasswordfile"));
    assert!(!schema.knows("IdentityServer:X509KeyFilePathFile"));
    assert!(!schema.knows("IdentityServer:OtherPasswordFile"));
    assert!(!schema.knows("Urls:File"));
    // Under a `*` pattern a name ending in SecretFile is a name (a client id), not a file setting.
    let agent = Schema::new(&["OpenId:OpenIdClients:*"]);
    assert!(
        protected::secret_file_target("OpenId:OpenIdClients:ExportSecretFile", &agent).is_none()
    );
    let mut clients = Config::empty(Path::new("/tmp"));
    clients.set(
        "OpenId:OpenIdClients:ExportSecretFile".into(),
        "s3cr3t".into(),
        Origin::Default,
    );
    assert!(clients.read_secret_files(&agent).is_empty());
    assert_eq!(
        clients
            .string("OpenId:OpenIdClients:ExportSecretFile")
            .as_deref(),
        Some("s3cr3t")
    );
    // `protect` refuses file settings and near-miss sections before it needs any certificate.
    for (key, expected) in [
        ("IdentityServer:X509KeyFilePasswordFile", "names a file"),
        (
            "IdentityServr:X509KeyFilePassword",
            "did you mean the section `IdentityServer`",
        ),
        ("EncryptionCertificate:Password", "cannot be protected"),
    ] {
        let request = protected::Protect {
            config_dir: PathBuf::from("/tmp"),
            request: protected::ProtectRequest::Value {
                key: key.into(),
                source: protected::ValueSource::Env("UNSET_FOR_THIS_TEST".into()),
                print: true,
            },
            certificate: None,
            output: PathBuf::from("/nonexistent/out.json"),
            vars: Vec::new(),
        };
        let error = protected::run(&request, &schema, &Config::empty(Path::new("/tmp")))
            .expect_err(key)
            .to_string();
        assert!(error.contains(expected), "{key}: {error}");
    }

    let dir = tempdir();
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"IdentityServer":{"X509KeyFilePath":"a.pfx","X509KeyFilePasswordFile":"pw.txt"}}"#,
    )
    .expect("write");
    std::fs::write(dir.join("pw.txt"), "from-a-file\n").expect("write");
    let c = Config::load(&dir, "appsettings", true, &[], &schema).expect("load");
    let s = c.get("IdentityServer:X509KeyFilePassword").expect("set");
    assert_eq!(s.value, "from-a-file");
    assert!(s.is_secret() && s.protected);
    assert!(c.get("IdentityServer:X509KeyFilePasswordFile").is_none());

    // A credential (systemd's key-per-file) wins over the files; other sections' files are left alone.
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).expect("mkdir");
    std::fs::write(credentials.join("IdentityServer__X509KeyFilePath"), "b.pfx").expect("write");
    std::fs::write(credentials.join("Database__Password"), "x").expect("write");
    let vars = vec![(
        "CREDENTIALS_DIRECTORY".to_string(),
        credentials.display().to_string(),
    )];
    let c = Config::load(&dir, "appsettings", true, &vars, &schema).expect("load");
    assert_eq!(
        c.string("IdentityServer:X509KeyFilePath").as_deref(),
        Some("b.pfx")
    );
    assert!(c.get("Database:Password").is_none());

    // Both the value and its file: refused, one would be ignored.
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"IdentityServer":{"X509KeyFilePassword":"clear","X509KeyFilePasswordFile":"pw.txt"}}"#,
    )
    .expect("write");
    let errors = Config::load(&dir, "appsettings", true, &[], &schema).expect_err("both");
    let text = errors[0].to_string();
    assert!(
        text.contains("keep one of them") && !text.contains("clear"),
        "{text}"
    );

    // An empty or missing file names the setting and the file.
    std::fs::write(
        dir.join("appsettings.json"),
        r#"{"IdentityServer":{"X509KeyFilePasswordFile":"missing.txt"}}"#,
    )
    .expect("write");
    let errors = Config::load(&dir, "appsettings", true, &[], &schema).expect_err("missing");
    let text = errors[0].to_string();
    assert!(
        text.contains("IdentityServer:X509KeyFilePasswordFile") && text.contains("missing.txt"),
        "{text}"
    );
}

#[test]
fn comments_and_trailing_commas_as_dotnet_accepts_them() {
    let text = "{\n  // the signing key\n  \"A\": { \"B\": \"x // not a comment\", /* c\n */ \"C\": [1, 2,], },\n}";
    let relaxed = relax_json(text);
    let v: serde_json::Value = serde_json::from_str(&relaxed).expect("relaxed JSON parses");
    assert_eq!(v["A"]["B"], "x // not a comment");
    assert_eq!(v["A"]["C"], serde_json::json!([1, 2]));
    assert_eq!(relaxed.lines().count(), text.lines().count());
}

#[test]
fn secrets_are_not_echoed() {
    let mut c = Config::empty(Path::new("/tmp"));
    c.set("A:Password".into(), "hunter2".into(), Origin::Default);
    c.set("A:Lifetime".into(), "abc".into(), Origin::Default);
    let e = c
        .bool("A:Password", false)
        .expect_err("not bool")
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    assert!(!format!("{c:?}").contains("hunter2"));
    let e = c
        .u64_in("A:Lifetime", 1, 1, 10)
        .expect_err("not number")
        .to_string();
    assert!(e.contains("`abc`"), "{e}");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ids-config-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}
