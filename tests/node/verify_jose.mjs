// An independent resource server's check of an access token: panva's jose at its default settings
// verifies TOKEN against the server's published JWKS (RFC 9068 JWT access token: typ at+jwt,
// aud = issuer). Driven by the end-to-end tests.
//
// Env: ISSUER (e.g. https://127.0.0.1:PORT), TOKEN. The server's private CA is trusted through
// NODE_EXTRA_CA_CERTS (set by the test): jose fetches the JWKS with the global fetch.
// Prints one JSON line: {alg, kid, sub, client_id}; on error, prints it to stderr and exits 1.
import { createRemoteJWKSet, jwtVerify } from "jose";

const { ISSUER, TOKEN } = process.env;

try {
  const jwks = createRemoteJWKSet(new URL(`${ISSUER}/.well-known/openid-configuration/jwks`));
  const { payload, protectedHeader } = await jwtVerify(TOKEN, jwks, {
    issuer: ISSUER,
    audience: ISSUER,
    typ: "at+jwt",
  });
  console.log(JSON.stringify({
    alg: protectedHeader.alg,
    kid: protectedHeader.kid ?? null,
    sub: payload.sub ?? null,
    client_id: payload.client_id ?? null,
  }));
} catch (err) {
  // jose's errors carry a code (e.g. ERR_JWT_CLAIM_VALIDATION_FAILED) and, for claims, which one.
  const detail = { name: err?.name, code: err?.code, message: err?.message };
  if (err?.claim !== undefined) Object.assign(detail, { claim: err.claim, reason: err.reason });
  if (err?.cause !== undefined) detail.cause = String(err.cause?.message ?? err.cause);
  console.error(JSON.stringify(detail));
  process.exit(1);
}
