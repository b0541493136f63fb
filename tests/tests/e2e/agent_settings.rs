//! The agent's configuration as operators write it: vendor layouts, secrets outside JSON, and an
//! error naming the key for every mistake.

use serde_json::json;

use crate::support::{AgentDeployment, JOB_SECRET};

const BASE: &str = "https://ids.example.com";

fn errors_of(a: &AgentDeployment, vars: &[(&str, &str)]) -> String {
    a.load_with(vars).expect_err("invalid settings").join("\n")
}

#[test]
fn vendor_layout_loads_with_defaults() {
    let a = AgentDeployment::new(&format!("{BASE}/"));
    let loaded = a.load_with(&[]).expect("valid");
    let s = &loaded.settings;
    assert_eq!(s.application_uri, BASE, "trailing slash removed");
    assert_eq!(s.issuer, BASE);
    assert_eq!(s.audience, BASE);
    assert_eq!(s.default_client, "Job");
    assert_eq!(s.agent_identifier.as_deref(), Some("Local"));
    assert_eq!(
        s.client(None).and_then(|c| c.secret()).map(|s| s.expose()),
        Some(JOB_SECRET)
    );
    // The vendor's other sections (Connections, ...) are not ours: ignored, not errors.
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // Secrets never show in Debug output.
    assert!(!format!("{s:?}").contains(JOB_SECRET));
}

#[test]
fn secret_from_environment_variable_overrides_json() {
    let mut a = AgentDeployment::new(BASE);
    a.set_agent("OpenId.OpenIdClients", json!({}));
    let loaded = a
        .load_with(&[("OpenId__OpenIdClients__Job", "from-env")])
        .expect("valid");
    let c = loaded.settings.client(Some("Job")).expect("client");
    assert_eq!(c.secret().map(|s| s.expose()), Some("from-env"));
    assert!(
        c.source.contains("OpenId__OpenIdClients__Job"),
        "{}",
        c.source
    );
}

#[test]
fn secret_from_file() {
    let mut a = AgentDeployment::new(BASE);
    a.set_agent("OpenId.OpenIdClients", json!({}));
    a.set_agent(
        "OpenId.OpenIdClientSecretFiles",
        json!({ "Job": "secrets/job.txt" }),
    );
    std::fs::create_dir_all(a.path().join("secrets")).expect("mkdir");
    let file = a.path().join("secrets/job.txt");
    std::fs::write(&file, format!("{JOB_SECRET}\n")).expect("write");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let loaded = a.load_with(&[]).expect("valid");
    assert_eq!(
        loaded
            .settings
            .client(None)
            .and_then(|c| loaded.keys.secret(c))
            .map(|s| s.expose()),
        Some(JOB_SECRET),
        "the final line break is not part of the secret"
    );
    #[cfg(unix)]
    assert!(
        loaded.warnings.iter().any(|w| w.contains("chmod 600")),
        "{:?}",
        loaded.warnings
    );

    // Both a secret and a secret file for one client: which one wins is not guessed.
    a.set_agent("OpenId.OpenIdClients", json!({ "Job": "x" }));
    let text = errors_of(&a, &[]);
    assert!(text.contains("OpenIdClientSecretFiles:Job"), "{text}");
    assert!(text.contains("keep one of them"), "{text}");

    a.set_agent("OpenId.OpenIdClients", json!({}));
    a.set_agent(
        "OpenId.OpenIdClientSecretFiles",
        json!({ "Job": "missing.txt" }),
    );
    let text = errors_of(&a, &[]);
    assert!(text.contains("missing.txt"), "{text}");
}

#[test]
fn unwrapped_openid_keys_are_read_with_a_warning() {
    let mut a = AgentDeployment::new(BASE);
    a.agent_settings =
        json!({ "OpenIdClients": { "Job": JOB_SECRET }, "DefaultOpenIdClient": "Job" });
    let loaded = a.load_with(&[]).expect("tolerated");
    assert_eq!(loaded.settings.default_client, "Job");
    let warnings = loaded.warnings.join("\n");
    assert!(warnings.contains("`OpenIdClients`"), "{warnings}");
    assert!(warnings.contains("belongs under `OpenId`"), "{warnings}");

    // Both placements: an error that says which to keep.
    a.agent_settings = json!({
        "OpenIdClients": { "Job": "outside-s3cret" },
        "OpenId": { "OpenIdClients": { "Job": "inside-s3cret" } },
    });
    let text = errors_of(&a, &[]);
    assert!(text.contains("keep only `OpenId:OpenIdClients`"), "{text}");
    assert!(!text.contains("s3cret"), "no secret in: {text}");

    // A secret where the map belongs: refused, and the value is not repeated.
    for placement in [
        json!({ "OpenId": { "OpenIdClients": "scalar-s3cret" } }),
        json!({ "OpenIdClients": "scalar-s3cret" }),
    ] {
        a.agent_settings = placement;
        let text = errors_of(&a, &[]);
        assert!(
            text.contains("expected a map of client id to secret"),
            "{text}"
        );
        assert!(!text.contains("s3cret"), "no secret in: {text}");
    }
}

#[test]
fn every_mistake_names_its_key() {
    type Mutation = Box<dyn Fn(&mut AgentDeployment)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "missing ApplicationUri",
            Box::new(|a| {
                a.settings
                    .as_object_mut()
                    .expect("object")
                    .remove("ApplicationUri");
            }),
            "`ApplicationUri` is required",
        ),
        (
            "plain http",
            Box::new(|a| {
                a.set("ApplicationUri", json!("http://ids.example.com"));
            }),
            "DangerAllowInsecureHttp",
        ),
        (
            "no server certificate",
            Box::new(|a| {
                a.settings["IdentityServer"] = json!({});
            }),
            "`IdentityServer:X509KeyFilePath` is required",
        ),
        (
            "server certificate file missing",
            Box::new(|a| {
                a.set("IdentityServer.X509KeyFilePath", json!("nope.crt"));
            }),
            "nope.crt",
        ),
        (
            "expired server certificate",
            Box::new(|a| {
                a.set("IdentityServer.X509KeyFilePath", json!("expired.pfx"));
                a.set(
                    "IdentityServer.X509KeyFilePassword",
                    json!(crate::support::PASSWORD),
                );
            }),
            "expired on",
        ),
        (
            "typo in an owned section",
            Box::new(|a| {
                a.set("IdentityServer.X509KeyFilPath", json!("x"));
            }),
            "did you mean `IdentityServer:X509KeyFilePath`",
        ),
        (
            "typo under OpenId",
            Box::new(|a| {
                a.set_agent("OpenId.DefaultOpenIdClients", json!("Job"));
            }),
            "did you mean `OpenId:DefaultOpenIdClient`",
        ),
        (
            "unknown validation mode",
            Box::new(|a| {
                a.set("IdentityServer.TokenValidation", json!("Remote"));
            }),
            "expected `Certificate`",
        ),
        (
            "leeway above 60 s",
            Box::new(|a| {
                a.set("IdentityServer.ClockSkewSeconds", json!(300));
            }),
            "IdentityServer:ClockSkewSeconds",
        ),
        (
            "no client",
            Box::new(|a| {
                a.agent_settings = json!({});
            }),
            "`OpenId:OpenIdClients` is required",
        ),
        (
            "default client not configured",
            Box::new(|a| {
                a.set_agent("OpenId.DefaultOpenIdClient", json!("Jobs"));
            }),
            "no client `Jobs`",
        ),
        (
            "several clients, no default",
            Box::new(|a| {
                a.agent_settings = json!({ "OpenId": { "OpenIdClients": { "A": "1", "B": "2" } } });
            }),
            "`OpenId:DefaultOpenIdClient` is required",
        ),
        (
            "empty secret",
            Box::new(|a| {
                a.set_agent("OpenId.OpenIdClients.Job", json!(""));
            }),
            "the client secret is empty",
        ),
        (
            "Windows store",
            Box::new(|a| {
                a.set("IdentityServer.X509Thumbprint", json!("ABCDEF"));
            }),
            "not supported on this platform",
        ),
        (
            "trust file missing",
            Box::new(|a| {
                a.set("Tls.TrustedCertificates", json!(["missing-ca.crt"]));
            }),
            "missing-ca.crt",
        ),
        (
            "encryption without certificate",
            Box::new(|a| {
                a.set("EncryptionCertificate.EncryptFile", json!(true));
            }),
            "`EncryptionCertificate:File` is required",
        ),
        (
            "malformed JSON",
            Box::new(|a| {
                a.write();
                std::fs::write(a.path().join("appsettings.agent.json"), "{ \"OpenId\": { ")
                    .expect("write");
            }),
            "appsettings.agent.json:1:",
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut a = AgentDeployment::new(BASE);
        mutate(&mut a);
        let result = if name == "malformed JSON" {
            let vars: Vec<(String, String)> = Vec::new();
            agent::Settings::load_with(a.path(), &vars, 0)
                .map(|_| ())
                .map_err(|es| {
                    es.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                })
        } else {
            a.load_with(&[]).map(|_| ()).map_err(|e| e.join("\n"))
        };
        let text = result.expect_err(name);
        assert!(
            text.contains(expected),
            "{name}: expected `{expected}` in:\n{text}"
        );
        assert!(!text.contains(JOB_SECRET), "{name}: secret leaked:\n{text}");
    }
}

#[test]
fn server_pfx_with_private_key_earns_a_warning_and_pfx_without_key_loads() {
    let mut a = AgentDeployment::new(BASE);
    a.set("IdentityServer.X509KeyFilePath", json!("signing-rsa.pfx"));
    a.set(
        "IdentityServer.X509KeyFilePassword",
        json!(crate::support::PASSWORD),
    );
    let loaded = a.load_with(&[]).expect("valid");
    let warnings = loaded.warnings.join("\n");
    assert!(warnings.contains("PRIVATE key"), "{warnings}");
    assert!(warnings.contains("-nokeys"), "{warnings}");

    let mut a = AgentDeployment::new(BASE);
    a.set("IdentityServer.X509KeyFilePath", json!("cert-only.pfx"));
    a.set(
        "IdentityServer.X509KeyFilePassword",
        json!(crate::support::PASSWORD),
    );
    let loaded = a.load_with(&[]).expect("a PFX without private key");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn jwks_mode_needs_no_certificate() {
    let mut a = AgentDeployment::new(BASE);
    a.settings["IdentityServer"] = json!({ "TokenValidation": "Jwks", "JwksRefreshSeconds": 30 });
    let loaded = a.load_with(&[]).expect("valid");
    assert!(matches!(
        loaded.settings.token_validation,
        agent::settings::TokenValidation::Jwks { refresh_interval } if refresh_interval.as_secs() == 30
    ));
}
