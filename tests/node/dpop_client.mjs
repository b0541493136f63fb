// An independent DPoP client (RFC 9449) against the server: panva's oauth4webapi at its default
// settings gets a DPoP-bound client_credentials token, then introspects it (RFC 7662), revokes it
// (RFC 7009) and introspects it again. Driven by the end-to-end tests.
//
// Env: ISSUER (e.g. https://127.0.0.1:PORT), CLIENT_ID, CLIENT_SECRET. The server's private CA is
// trusted through NODE_EXTRA_CA_CERTS (set by the test), so no custom fetch is needed.
// Prints one JSON line: {token_type, jkt, cnf_jkt, nonce_retries, active_before,
// introspection_client_id, active_after}; on error, prints it to stderr and exits 1.
import * as oauth from "oauth4webapi";
import { calculateJwkThumbprint, exportJWK } from "jose";

const { ISSUER, CLIENT_ID, CLIENT_SECRET } = process.env;

try {
  const issuer = new URL(ISSUER);
  // processDiscoveryResponse checks that the document's issuer is the one we asked for.
  const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer));
  const client = { client_id: CLIENT_ID };
  const clientAuth = oauth.ClientSecretBasic(CLIENT_SECRET);

  const keyPair = await oauth.generateKeyPair("ES256");
  const DPoP = oauth.DPoP(client, keyPair);

  // The documented nonce handling: a server requiring a nonce answers 400 use_dpop_nonce with a
  // DPoP-Nonce header; the DPoP handle remembers that nonce, so one retry carries it.
  let nonceRetries = 0;
  let tokens, wireTokenType;
  for (;;) {
    const response = await oauth.clientCredentialsGrantRequest(as, client, clientAuth, new URLSearchParams(), { DPoP });
    // oauth4webapi lowercases token_type ("dpop"); the test checks what the server sent ("DPoP").
    const wire = response.clone();
    try {
      tokens = await oauth.processClientCredentialsResponse(as, client, response);
      wireTokenType = (await wire.json()).token_type;
      break;
    } catch (err) {
      if (nonceRetries === 0 && oauth.isDPoPNonceError(err)) {
        nonceRetries += 1;
        continue;
      }
      throw err;
    }
  }

  // The thumbprint computed by another implementation (jose), not by the server or oauth4webapi.
  const jkt = await calculateJwkThumbprint(await exportJWK(keyPair.publicKey));
  // The access token is a JWT; read its payload without verifying (verify_jose.mjs verifies).
  const payload = JSON.parse(Buffer.from(tokens.access_token.split(".")[1], "base64url").toString("utf8"));

  const introspect = async () =>
    oauth.processIntrospectionResponse(as, client,
      await oauth.introspectionRequest(as, client, clientAuth, tokens.access_token));

  const before = await introspect();
  await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, clientAuth, tokens.access_token));
  const after = await introspect();

  console.log(JSON.stringify({
    token_type: wireTokenType,
    jkt,
    cnf_jkt: payload.cnf?.jkt ?? null,
    nonce_retries: nonceRetries,
    active_before: before.active,
    introspection_client_id: before.client_id ?? null,
    active_after: after.active,
  }));
} catch (err) {
  const detail = { name: err?.name, message: err?.message };
  if (err instanceof oauth.ResponseBodyError) {
    Object.assign(detail, { error: err.error, error_description: err.error_description, status: err.status });
  } else if (err instanceof oauth.WWWAuthenticateChallengeError) {
    Object.assign(detail, { status: err.status, challenges: err.cause });
  } else if (err?.cause !== undefined) {
    // e.g. fetch's TypeError, whose cause says why TLS or the connection failed.
    detail.cause = String(err.cause?.message ?? err.cause);
  }
  console.error(JSON.stringify(detail));
  process.exit(1);
}
