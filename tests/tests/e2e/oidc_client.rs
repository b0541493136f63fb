//! Standard OAuth / OpenID Connect client libraries against the server: the `openidconnect` crate,
//! openid-client (Node.js, installed in `tests/node` by `npm ci`) and Authlib (Python): each discovers
//! the server and gets a token.

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{ClientId, ClientSecret, IssuerUrl, OAuth2TokenResponse, Scope};
use serde_json::Value;

use crate::support::{Deployment, JOB_SECRET, verify_with_jwks};

#[tokio::test]
async fn openidconnect_discovers_and_exchanges_client_credentials() {
    let d = Deployment::new();
    let server = d.start().await;
    let http = server.client.clone();
    // openidconnect's HTTP client interface, served by our reqwest client (which trusts the test CA).
    let client_fn = move |request: openidconnect::HttpRequest| {
        let http = http.clone();
        async move {
            let (parts, body) = request.into_parts();
            let mut builder = http.request(parts.method, parts.uri.to_string()).body(body);
            for (name, value) in &parts.headers {
                builder = builder.header(name, value);
            }
            let response = builder.send().await?;
            let mut out = openidconnect::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                out = out.header(name, value);
            }
            let bytes = response.bytes().await?;
            Ok::<_, reqwest::Error>(out.body(bytes.to_vec()).expect("response"))
        }
    };
    let issuer = IssuerUrl::new(server.base.clone()).expect("issuer");
    let metadata = CoreProviderMetadata::discover_async(issuer, &client_fn)
        .await
        .expect("discovery");
    assert_eq!(
        metadata.token_endpoint().map(|u| u.to_string()),
        Some(server.url("/connect/token"))
    );
    let client = openidconnect::core::CoreClient::from_provider_metadata(
        metadata,
        ClientId::new("Job".into()),
        Some(ClientSecret::new(JOB_SECRET.into())),
    );
    let token = client
        .exchange_client_credentials()
        .expect("token endpoint known")
        .add_scope(Scope::new("api".into()))
        .request_async(&client_fn)
        .await
        .expect("token");
    let claims = verify_with_jwks(&server, token.access_token().secret()).await;
    assert_eq!(claims["client_id"], "Job");
    assert_eq!(token.scopes().map(|s| s.len()), Some(1));
    server.stop().await;
}

/// Issue 14 point 10c: the server has no authorization endpoint (client credentials only), and RFC
/// 8414 lets such a server omit `authorization_endpoint`: its RFC 8414 document does. The OpenID
/// Connect document keeps it because the `openidconnect` crate cannot read one without it (next test).
#[tokio::test]
async fn the_rfc8414_document_advertises_no_authorization_endpoint() {
    let d = Deployment::new();
    let server = d.start().await;
    let rfc8414: Value = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(rfc8414["token_endpoint"], server.url("/connect/token"));
    assert!(
        rfc8414.get("authorization_endpoint").is_none(),
        "an OAuth-only server does not advertise /connect/authorize: {rfc8414}"
    );
    // Otherwise the two documents say the same.
    let mut oidc: Value = server
        .get("/.well-known/openid-configuration")
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(
        oidc["authorization_endpoint"],
        server.url("/connect/authorize")
    );
    oidc.as_object_mut()
        .expect("object")
        .remove("authorization_endpoint");
    assert_eq!(oidc, rfc8414);
    server.stop().await;
}

/// Why the OpenID Connect document keeps `authorization_endpoint`: OpenID Connect Discovery 1.0
/// lists it as REQUIRED and the `openidconnect` crate refuses metadata without it. When a version of
/// the crate accepts it, this test fails: drop it from the OpenID Connect document too (keys.rs).
#[tokio::test]
async fn openidconnect_refuses_metadata_without_an_authorization_endpoint() {
    let d = Deployment::new();
    let server = d.start().await;
    let text = server
        .get("/.well-known/oauth-authorization-server")
        .await
        .text()
        .await
        .expect("text");
    let error = serde_json::from_str::<CoreProviderMetadata>(&text)
        .expect_err("openidconnect requires authorization_endpoint");
    assert!(
        error.to_string().contains("authorization_endpoint"),
        "{error}"
    );
    server.stop().await;
}

/// openid-client (Node.js, the most used OAuth client there): discovers the server through each
/// document (`algorithm: "oidc"` reads `/.well-known/openid-configuration`, `"oauth2"` reads
/// `/.well-known/oauth-authorization-server`) and gets a token with the discovered endpoint.
const OPENID_CLIENT: &str = r#"
import * as client from "openid-client";
const [issuer, clientId, secret] = process.argv.slice(1);
const results = [];
for (const algorithm of ["oidc", "oauth2"]) {
  try {
    const config = await client.discovery(new URL(issuer), clientId, secret, undefined, { algorithm });
    const metadata = config.serverMetadata();
    const tokens = await client.clientCredentialsGrant(config, { scope: "api" });
    results.push({ algorithm, token_endpoint: metadata.token_endpoint,
      authorization_endpoint: metadata.authorization_endpoint ?? null,
      access_token: tokens.access_token });
  } catch (e) {
    results.push({ algorithm, error: String(e), cause: String(e.cause ?? "") });
  }
}
console.log(JSON.stringify(results));
"#;

#[tokio::test(flavor = "multi_thread")]
async fn openid_client_discovers_the_server_through_both_documents() {
    let Some(dir) = crate::support::node_with("openid-client", "openid_client_discovers") else {
        return;
    };
    let d = Deployment::new();
    let server = d.start().await;
    let out = tokio::process::Command::new("timeout")
        .args(["120", "node", "--input-type=module", "-e", OPENID_CLIENT])
        .arg(&server.base)
        .args(["Job", JOB_SECRET])
        .current_dir(&dir)
        .env("NODE_EXTRA_CA_CERTS", d.path().join("ca.crt"))
        .output()
        .await
        .expect("run node");
    let results = tokens_through_both_documents(&server, &out, "openid-client").await;
    for result in &results {
        assert_eq!(result["token_endpoint"], server.url("/connect/token"));
    }
    assert_eq!(results[1]["algorithm"], "oauth2");
    assert_eq!(results[1]["authorization_endpoint"], Value::Null);
    server.stop().await;
}

/// Authlib (Python): what its client integrations do with `server_metadata_url` (load the metadata,
/// then fetch a token at the `token_endpoint` it names), for each document, with Authlib's RFC 8414
/// checks of the members this server's metadata is about.
const AUTHLIB_DISCOVERY: &str = r#"
import sys, json
from authlib.integrations.base_client.sync_app import BaseApp, OAuth2Mixin
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata

class App(OAuth2Mixin, BaseApp):
    client_cls = OAuth2Session

client_id, secret = sys.argv[1:3]
results = []
for url in sys.argv[3:]:
    app = App(None, name="ids", client_id=client_id, client_secret=secret, server_metadata_url=url)
    try:
        metadata = app.load_server_metadata()
        checked = AuthorizationServerMetadata({k: v for k, v in metadata.items() if not k.startswith("_")})
        checks = {}
        for member in ["issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "grant_types_supported", "token_endpoint_auth_methods_supported"]:
            try:
                getattr(checked, "validate_" + member)()
                checks[member] = "ok"
            except Exception as e:
                checks[member] = str(e)
        token = app.fetch_access_token(grant_type="client_credentials", scope="api")
        results.append({"url": url, "checks": checks, "authorization_endpoint": metadata.get("authorization_endpoint"), "access_token": token["access_token"]})
    except Exception as e:
        results.append({"url": url, "error": repr(e)})
print(json.dumps(results))
"#;

#[tokio::test(flavor = "multi_thread")]
async fn authlib_discovers_the_server_through_both_documents() {
    if !crate::support::python_with("authlib", "authlib_discovers") {
        return;
    }
    let d = Deployment::new();
    let server = d.start().await;
    let out = tokio::process::Command::new("timeout")
        .args(["120", "python3", "-c", AUTHLIB_DISCOVERY, "Job", JOB_SECRET])
        .arg(server.url("/.well-known/openid-configuration"))
        .arg(server.url("/.well-known/oauth-authorization-server"))
        .env("REQUESTS_CA_BUNDLE", d.path().join("ca.crt"))
        .output()
        .await
        .expect("run python3");
    let results = tokens_through_both_documents(&server, &out, "Authlib").await;
    for result in &results {
        for (member, verdict) in result["checks"].as_object().expect("checks") {
            assert_eq!(
                verdict, "ok",
                "Authlib's RFC 8414 check of {member}: {result}"
            );
        }
    }
    assert_eq!(results[1]["authorization_endpoint"], Value::Null);
    server.stop().await;
}

/// The two results (one per discovery document) a client script printed as a JSON array, each with a
/// token for `Job` that verifies against the server's JWKS.
async fn tokens_through_both_documents(
    server: &crate::support::Server,
    out: &std::process::Output,
    who: &str,
) -> Vec<Value> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let results: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    let results = results.as_array().expect("array").clone();
    assert_eq!(results.len(), 2, "{results:?}");
    for result in &results {
        let token = result["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("{who} got no token: {result}"));
        assert_eq!(verify_with_jwks(server, token).await["client_id"], "Job");
    }
    results
}
