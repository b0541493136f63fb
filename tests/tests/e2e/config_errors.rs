//! Bad inputs: each gives a specific error naming the file, key or client, and never a secret.

use serde_json::json;

use crate::support::{Deployment, PASSWORD};

/// Settings + certificates + XML, as `serve` and `check` load them; the joined error text.
fn problems(d: &Deployment) -> String {
    let settings = match d.load_settings() {
        Ok(s) => s,
        Err(es) => return es.join("\n"),
    };
    match identity_server::load(&settings, crate::support::unix_now()) {
        Ok(_) => String::new(),
        Err(es) => es.to_string(),
    }
}

#[test]
fn the_default_deployment_is_valid() {
    assert_eq!(problems(&Deployment::new()), "");
}

#[test]
fn malformed_xml_names_file_line_and_column() {
    let d = Deployment::new();
    d.write_xml("broken.xml", "<ConfigurationFile>\n  <OpenIdClient Identifier=\"A\" HashedSecret=\"x\">\n</ConfigurationFile>\n");
    let p = problems(&d);
    assert!(p.contains("broken.xml:3:"), "{p}");
}

#[test]
fn wrong_pfx_password_names_the_file_and_not_the_password() {
    let mut d = Deployment::new();
    d.set(
        "IdentityServer.X509KeyFilePassword",
        json!("not-the-password-42"),
    );
    let p = problems(&d);
    assert!(
        p.contains("signing-rsa.pfx") && p.contains("wrong password"),
        "{p}"
    );
    assert!(!p.contains("not-the-password-42"), "{p}");
}

#[test]
fn missing_files_are_named() {
    let mut d = Deployment::new();
    d.set(
        "IdentityServer.X509KeyFilePath",
        json!("nowhere/signing.pfx"),
    );
    let p = problems(&d);
    assert!(
        p.contains("nowhere/signing.pfx") && p.contains("IdentityServer:X509KeyFilePath"),
        "{p}"
    );

    let mut d = Deployment::new();
    d.set("AccessControl.ConfigurationPath", json!("NoSuchFolder"));
    let p = problems(&d);
    assert!(p.contains("NoSuchFolder"), "{p}");

    let d = Deployment::new();
    std::fs::remove_file(d.path().join("appsettings.json")).ok();
    let err = identity_server::Settings::load_with(d.path(), &[], None).expect_err("no settings");
    assert!(err[0].to_string().contains("appsettings.json"), "{err:?}");
}

#[test]
fn weak_keys_and_keyless_or_expired_certificates_are_refused() {
    let mut d = Deployment::new();
    d.set("IdentityServer.X509KeyFilePath", json!("rsa1024.pfx"));
    let p = problems(&d);
    assert!(
        p.contains("rsa1024.pfx") && p.contains("1024 bits") && p.contains("2048"),
        "{p}"
    );

    let mut d = Deployment::new();
    d.set("IdentityServer.X509KeyFilePath", json!("cert-only.pfx"));
    let p = problems(&d);
    assert!(
        p.contains("cert-only.pfx") && p.contains("no private key"),
        "{p}"
    );

    let mut d = Deployment::new();
    d.set("IdentityServer.X509KeyFilePath", json!("expired.pfx"));
    let p = problems(&d);
    assert!(
        p.contains("expired.pfx") && p.contains("expired on 2021-01-01"),
        "{p}"
    );
    assert!(p.contains("DangerAcceptExpiredCertificate"), "{p}");

    d.set("IdentityServer.DangerAcceptExpiredCertificate", json!(true));
    d.write();
    let settings = d.load_settings().expect("settings");
    let loaded =
        identity_server::load(&settings, crate::support::unix_now()).expect("accepted on request");
    assert!(
        loaded
            .warnings
            .iter()
            .any(|w| w.contains("DANGER") && w.contains("expired")),
        "{:?}",
        loaded.warnings
    );

    let mut d = Deployment::new();
    d.set("Kestrel.Certificates.Default.Path", json!("expired.pfx"));
    let p = problems(&d);
    assert!(
        p.contains("Kestrel:Certificates:Default:Path") && p.contains("expired"),
        "{p}"
    );
}

#[test]
fn unknown_and_windows_only_keys_are_reported() {
    let mut d = Deployment::new();
    d.set("IdentityServer.X509KeyFilePasword", json!("x"));
    d.set("IdentityServer.X509Thumbprint", json!("ABCDEF"));
    d.set("Kestrel.Certificates.Default.Store", json!("My"));
    let p = problems(&d);
    assert!(
        p.contains("unknown setting `IdentityServer:X509KeyFilePasword`"),
        "{p}"
    );
    assert!(
        p.contains("did you mean `IdentityServer:X509KeyFilePassword`"),
        "{p}"
    );
    assert!(
        p.contains("IdentityServer:X509Thumbprint")
            && p.contains("not supported on this platform, use X509KeyFilePath"),
        "{p}"
    );
    assert!(p.contains("Kestrel:Certificates:Default:Store"), "{p}");

    // Environment variables override files, with `__` as separator; typos there are reported too.
    let d = Deployment::new();
    d.write();
    let vars = vec![
        (
            "IdentityServer__X509KeyFilePassword".to_string(),
            "wrong".to_string(),
        ),
        (
            "IDENTITYSERVER__ACCESSTOKENLIFETIME".to_string(),
            "120".to_string(),
        ),
    ];
    let s = identity_server::Settings::load_with(d.path(), &vars, None).expect("settings");
    assert_eq!(s.access_token_lifetime.as_secs(), 120);
    assert_eq!(s.signing.password.expose(), "wrong");
    let vars = vec![(
        "IdentityServer__AccessTokenLifetme".to_string(),
        "120".to_string(),
    )];
    let err = identity_server::Settings::load_with(d.path(), &vars, None).expect_err("typo");
    assert!(
        err[0]
            .to_string()
            .contains("environment variable IdentityServer__AccessTokenLifetme"),
        "{err:?}"
    );
}

#[test]
fn environment_file_layers_over_appsettings() {
    let d = Deployment::new();
    d.write();
    std::fs::write(
        d.path().join("appsettings.Staging.json"),
        r#"{"identityserver": {"accesstokenlifetime": 300}}"#,
    )
    .expect("write");
    let vars = vec![("DOTNET_ENVIRONMENT".to_string(), "Staging".to_string())];
    let s = identity_server::Settings::load_with(d.path(), &vars, None).expect("settings");
    assert_eq!(s.access_token_lifetime.as_secs(), 300);
    let s = identity_server::Settings::load_with(d.path(), &[], Some("https://127.0.0.1:7001"))
        .expect("settings");
    assert_eq!(s.urls[0].port, 7001);
    assert_eq!(s.access_token_lifetime.as_secs(), 3600);
}

#[test]
fn bad_values_are_named() {
    let mut d = Deployment::new();
    d.set("IdentityServer.AccessTokenLifetime", json!("an hour"));
    d.set("Urls", json!("http://127.0.0.1:0"));
    let p = problems(&d);
    assert!(
        p.contains("IdentityServer:AccessTokenLifetime") && p.contains("`an hour`"),
        "{p}"
    );
    assert!(p.contains("plain HTTP is refused"), "{p}");
}

#[test]
fn xml_client_problems_name_the_client() {
    let d = Deployment::new();
    d.write_xml(
        "more/dup.xml",
        "<ConfigurationFile>\n<OpenIdClient Identifier=\"Job\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" />\n</ConfigurationFile>",
    );
    let p = problems(&d);
    assert!(
        p.contains("duplicate OpenIdClient `Job`") && p.contains("dup.xml:2:1"),
        "{p}"
    );

    let d = Deployment::new();
    d.write_xml(
        "bad.xml",
        "<ConfigurationFile>\n<OpenIdClient Identifier=\"BadHash\" HashedSecret=\"c2hvcnQ=\" />\n<OpenIdClient Identifier=\"NoProfile\" HashedSecret=\"K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\" Profile=\"Admin\" />\n</ConfigurationFile>",
    );
    let p = problems(&d);
    assert!(
        p.contains("OpenIdClient `BadHash`") && p.contains("HashedSecret"),
        "{p}"
    );
    assert!(
        p.contains("OpenIdClient `NoProfile`") && p.contains("Profile `Admin` is not declared"),
        "{p}"
    );
    // Every problem is listed, not only the first.
    assert_eq!(p.lines().count(), 2, "{p}");
}

#[test]
fn the_same_pfx_can_sign_and_serve_tls() {
    let mut d = Deployment::new();
    d.settings
        .as_object_mut()
        .expect("object")
        .remove("Kestrel");
    let s = d.load_settings().expect("settings");
    assert_eq!(s.tls.path, s.signing.path);
    assert_eq!(s.tls.password.expose(), PASSWORD);
}

#[test]
fn appsettings_with_comments_and_trailing_commas_load_as_in_dotnet() {
    let d = Deployment::new();
    std::fs::write(
        d.path().join("appsettings.json"),
        r#"{
  // Token signing (ASP.NET's JSON reader accepts comments)
  "IdentityServer": {
    "X509KeyFilePath": "signing-rsa.pfx", /* relative to this folder */
    "X509KeyFilePassword": "test-password",
  },
  "Urls": "https://127.0.0.1:0",
}
"#,
    )
    .expect("write");
    let s = identity_server::Settings::load_with(d.path(), &[], None).expect("settings");
    assert_eq!(s.signing.path, d.path().join("signing-rsa.pfx"));
    std::fs::write(
        d.path().join("appsettings.json"),
        "{\n  // ok\n  \"Urls\": \"x\"\n  \"IdentityServer\": {}\n}",
    )
    .expect("write");
    let err = identity_server::Settings::load_with(d.path(), &[], None).expect_err("missing comma");
    assert!(
        err[0].to_string().contains("appsettings.json:4:"),
        "{err:?}"
    );
}

#[test]
fn tls_problems_are_found_by_check_too() {
    // Same file as the signing key but another password: opened separately, and refused.
    let mut d = Deployment::new();
    d.set(
        "Kestrel.Certificates.Default.Path",
        json!("signing-rsa.pfx"),
    );
    d.set(
        "Kestrel.Certificates.Default.Password",
        json!("wrong-tls-password"),
    );
    let p = problems(&d);
    assert!(
        p.contains("Kestrel:Certificates:Default:Path") && p.contains("wrong password"),
        "{p}"
    );
    assert!(!p.contains("wrong-tls-password"), "{p}");
}

#[test]
fn alias_conflicts_and_unsupported_sections_are_reported() {
    let mut d = Deployment::new();
    d.set("IdentityServer.X509File", json!("signing-ec.pfx"));
    let p = problems(&d);
    assert!(
        p.contains("IdentityServer:X509File")
            && p.contains("alias of IdentityServer:X509KeyFilePath"),
        "{p}"
    );

    // The alias alone works.
    let mut d = Deployment::new();
    d.settings["IdentityServer"]
        .as_object_mut()
        .expect("object")
        .remove("X509KeyFilePath");
    d.set("IdentityServer.X509File", json!("signing-ec.pfx"));
    assert_eq!(problems(&d), "");

    let mut d = Deployment::new();
    d.set("Kestrel.Endpoints.Https.Url", json!("https://*:5001"));
    let p = problems(&d);
    assert!(
        p.contains("Kestrel:Endpoints is not supported") && p.contains("Urls"),
        "{p}"
    );
}

#[test]
fn validation_keys_from_pfx_files_and_environment_lists() {
    let d = Deployment::new();
    d.write();
    // A key-less PFX (password = the signing password) and a PEM certificate, as a `;` list from the environment.
    let vars = vec![(
        "IdentityServer__ValidationKeys".to_string(),
        "cert-only.pfx; signing-ec.crt".to_string(),
    )];
    let settings = identity_server::Settings::load_with(d.path(), &vars, None).expect("settings");
    let loaded = identity_server::load(&settings, crate::support::unix_now()).expect("load");
    let subjects: Vec<&str> = loaded.keys.validation.iter().map(|c| c.subject()).collect();
    assert_eq!(subjects.len(), 2, "{subjects:?}");
    assert!(
        subjects[0].contains("ids-test-signing-rsa") && subjects[1].contains("ids-test-signing-ec"),
        "{subjects:?}"
    );

    let vars = vec![(
        "IdentityServer__ValidationKeys".to_string(),
        "rsa1024.pfx".to_string(),
    )];
    let settings = identity_server::Settings::load_with(d.path(), &vars, None).expect("settings");
    let err = identity_server::load(&settings, crate::support::unix_now()).expect_err("weak key");
    assert!(
        err.to_string().contains("IdentityServer:ValidationKeys")
            && err.to_string().contains("1024"),
        "{err:?}"
    );
}

#[test]
fn project_made_pfx_files_load_and_not_yet_valid_ones_are_refused() {
    use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
    let ca = Ca::new("e2e CA", 30).expect("ca");
    let now = time::OffsetDateTime::now_utc();
    let day = time::Duration::days(1);
    let cases = [
        (
            "ours-ec.pfx",
            KeyKind::EcP256,
            now - day,
            PfxProfile::Modern,
            true,
        ),
        (
            "ours-legacy.pfx",
            KeyKind::Rsa2048,
            now - day,
            PfxProfile::Legacy,
            true,
        ),
        (
            "ours-future.pfx",
            KeyKind::EcP256,
            now + 2 * day,
            PfxProfile::Modern,
            false,
        ),
    ];
    for (name, kind, not_before, profile, valid) in cases {
        let issued = ca
            .issue_signing_between("e2e signing", kind, not_before, not_before + 30 * day)
            .expect("issue");
        let pfx = to_pfx(&issued, &[&ca.cert.cert_der], "signing", PASSWORD, profile).expect("pfx");
        let mut d = Deployment::new();
        std::fs::write(d.path().join(name), pfx).expect("write");
        d.set("IdentityServer.X509KeyFilePath", json!(name));
        let p = problems(&d);
        if valid {
            assert_eq!(p, "", "{name}");
        } else {
            assert!(p.contains(name) && p.contains("is not valid before"), "{p}");
        }
    }
}
