//! A standard OpenID Connect client library (the `openidconnect` crate) against the server.

use openidconnect::core::CoreProviderMetadata;
use openidconnect::{ClientId, ClientSecret, IssuerUrl, OAuth2TokenResponse, Scope};

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
