"""An independent client's token lifecycle against the server: Authlib's requests OAuth2Session gets a
client_credentials token, introspects it (RFC 7662), revokes it (RFC 7009) and introspects it again.
Driven by the end-to-end tests.

Env: ISSUER (e.g. https://127.0.0.1:PORT), CLIENT_ID, CLIENT_SECRET, CA_FILE (the server's private CA).
Prints one JSON line: {active_before, client_id, scope, token_type, revoke_status, active_after}, the
middle three from the first introspection answer; on error, prints it to stderr and exits 1.
"""

import json
import os
import sys

from authlib.integrations.requests_client import OAuth2Session


def main():
    issuer = os.environ["ISSUER"]
    session = OAuth2Session(
        client_id=os.environ["CLIENT_ID"],
        client_secret=os.environ["CLIENT_SECRET"],
        token_endpoint_auth_method="client_secret_basic",
    )
    # Each request names the test CA itself: requests lets REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE from
    # the environment override Session.verify, but not a per-request verify.
    tls = {"verify": os.environ["CA_FILE"]}

    # withhold_token: OAuth2Session otherwise refuses a request before it holds a token.
    discovery = session.get(f"{issuer}/.well-known/openid-configuration", withhold_token=True, **tls)
    discovery.raise_for_status()
    metadata = discovery.json()

    token = session.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", **tls)
    access_token = token["access_token"]

    # introspect_token and revoke_token hand back the raw response: their status is ours to check.
    def introspect():
        response = session.introspect_token(metadata["introspection_endpoint"], token=access_token, **tls)
        if response.status_code != 200:
            raise RuntimeError(f"introspection answered {response.status_code}: {response.text}")
        return response.json()

    before = introspect()
    revoked = session.revoke_token(metadata["revocation_endpoint"], token=access_token, **tls)
    after = introspect()

    print(json.dumps({
        "active_before": before.get("active"),
        "client_id": before.get("client_id"),
        "scope": before.get("scope"),
        "token_type": before.get("token_type"),
        "revoke_status": revoked.status_code,
        "active_after": after.get("active"),
    }))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the test reads stderr: say what failed, including an OAuth error's fields
        detail = {"name": type(e).__name__, "message": str(e)}
        for field in ("error", "description"):
            if getattr(e, field, None):
                detail[field] = getattr(e, field)
        print(json.dumps(detail), file=sys.stderr)
        sys.exit(1)
