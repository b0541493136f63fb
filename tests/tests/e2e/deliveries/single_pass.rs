//! Deliveries whose SHA-256 comes after the body (issue 16): the agent reads an encrypted file once,
//! sending the digest as a `Repr-Digest` request trailer to a server that says it reads one; the
//! server checks it before it commits. Raw requests over HTTP/1.1 (chunked) and HTTP/2 check what the
//! server accepts and refuses; the real binaries check the agent's choice of form and the fallback to
//! the digest-first form against a server that does not offer trailers.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use http_body::Frame;
use serde_json::{Value, json};

use super::{Pair, code, content, delivery_server, no_partial_and_count, server_command, token};
use crate::support::{JOB_SECRET, agent, https_client_builder, stderr};

/// Which HTTP version a raw request uses.
#[derive(Clone, Copy, Debug)]
enum Version {
    Http1,
    Http2,
}

fn client(ca: &Path, version: Version) -> reqwest::Client {
    let builder = https_client_builder(ca);
    match version {
        Version::Http1 => builder.http1_only(),
        Version::Http2 => builder.http2_prior_knowledge(),
    }
    .build()
    .expect("client")
}

/// The body in pieces, then `trailers` (none: the body just ends).
fn body_with_trailers(data: &[u8], trailers: Option<reqwest::header::HeaderMap>) -> reqwest::Body {
    let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = data
        .chunks(100_000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    if let Some(t) = trailers {
        frames.push(Ok(Frame::trailers(t)));
    }
    reqwest::Body::wrap(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

fn digest_trailer(value: &str) -> reqwest::header::HeaderMap {
    let mut map = reqwest::header::HeaderMap::new();
    map.insert(
        "repr-digest",
        reqwest::header::HeaderValue::from_str(value).expect("value"),
    );
    map
}

/// A delivery with `Trailer: Repr-Digest` and `Upload-Length`, the body without a length.
async fn put_trailer(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    id: &str,
    data: &[u8],
    trailers: Option<reqwest::header::HeaderMap>,
) -> reqwest::Response {
    client
        .put(format!("{base}/api/deliveries/{id}?name=data.bin"))
        .bearer_auth(token)
        .header("trailer", "Repr-Digest")
        .header("upload-length", data.len().to_string())
        .body(body_with_trailers(data, trailers))
        .send()
        .await
        .expect("PUT")
}

async fn error_of(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_string(),
    )
}

fn export(dir: &Path, id: &str) -> Vec<u8> {
    let out = server_command(
        dir,
        &["deliveries", "export", id, "--client", "Job", "--stdout"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn a_digest_after_the_body_is_checked_before_commit_over_http1_and_http2() {
    let d = delivery_server(json!({ "MaxFileSizeMiB": 2 }));
    let server = d.start().await;
    let store = d.path().join("data/deliveries");
    let job = token(&server, "Job", JOB_SECRET).await;
    let ca = d.path().join("ca.crt");
    let data = content(1_234_567, 7);
    let digest = crate::support::sha256_header(&data);
    let mut committed = 0;

    // The check before sending says the server reads the digest after the body.
    let r = super::get(&server, "/api/deliveries/nothing-yet", &job).await;
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.headers()
            .get("delivery-trailers")
            .and_then(|v| v.to_str().ok()),
        Some("repr-digest")
    );

    for version in [Version::Http1, Version::Http2] {
        let c = client(&ca, version);
        let id = format!("trailer-{version:?}");
        // Stored, and exported byte for byte.
        let r = put_trailer(
            &c,
            &server.base,
            &job,
            &id,
            &data,
            Some(digest_trailer(&digest)),
        )
        .await;
        let expected = match version {
            Version::Http1 => reqwest::Version::HTTP_11,
            Version::Http2 => reqwest::Version::HTTP_2,
        };
        assert_eq!(r.version(), expected);
        assert_eq!(r.status().as_u16(), 201, "{version:?}");
        committed += 1;
        assert!(
            export(d.path(), &id) == data,
            "{version:?}: exported content differs"
        );
        // The same file again: recognised after the body, the first record, nothing new.
        let r = put_trailer(
            &c,
            &server.base,
            &job,
            &id,
            &data,
            Some(digest_trailer(&digest)),
        )
        .await;
        assert_eq!(r.status().as_u16(), 200, "{version:?}");
        // Another file under that id (same size and name): a conflict, told after the body.
        let mut other = data.clone();
        other[10] ^= 1;
        let r = put_trailer(
            &c,
            &server.base,
            &job,
            &id,
            &other,
            Some(digest_trailer(&crate::support::sha256_header(&other))),
        )
        .await;
        assert_eq!(error_of(r).await, (409, "delivery_conflict".into()));

        // A wrong digest in the trailer: nothing stored.
        let wrong = crate::support::sha256_header(b"another file");
        let r = put_trailer(
            &c,
            &server.base,
            &job,
            &format!("wrong-{version:?}"),
            &data,
            Some(digest_trailer(&wrong)),
        )
        .await;
        assert_eq!(
            error_of(r).await,
            (400, "digest_mismatch".into()),
            "{version:?}"
        );
        // No trailer at all, or a trailer without the digest: nothing stored.
        for (n, trailers) in [None, Some(reqwest::header::HeaderMap::new())]
            .into_iter()
            .enumerate()
        {
            let r = put_trailer(
                &c,
                &server.base,
                &job,
                &format!("missing-{n}-{version:?}"),
                &data,
                trailers,
            )
            .await;
            assert_eq!(
                error_of(r).await,
                (400, "invalid_request".into()),
                "{version:?}"
            );
        }
        // A digest both before and after the body is ambiguous.
        let r = c
            .put(server.url(&format!("/api/deliveries/both-{version:?}?name=data.bin")))
            .bearer_auth(&job)
            .header("repr-digest", &digest)
            .header("content-length", data.len().to_string())
            .body(body_with_trailers(&data, Some(digest_trailer(&digest))))
            .send()
            .await
            .expect("PUT");
        if matches!(version, Version::Http2) {
            assert_eq!(error_of(r).await, (400, "invalid_request".into()));
        } else {
            // HTTP/1.1 with a length carries no trailer: the header digest alone, stored.
            assert_eq!(r.status().as_u16(), 201);
            committed += 1;
        }
        // Too large says so before the body, from Upload-Length; no size at all is 411.
        let r = c
            .put(server.url("/api/deliveries/big?name=data.bin"))
            .bearer_auth(&job)
            .header("trailer", "Repr-Digest")
            .header("upload-length", (3u64 * 1024 * 1024).to_string())
            .body(body_with_trailers(b"x", None))
            .send()
            .await
            .expect("PUT");
        assert_eq!(error_of(r).await, (413, "too_large".into()));
        if matches!(version, Version::Http1) {
            let r = c
                .put(server.url("/api/deliveries/no-size?name=data.bin"))
                .bearer_auth(&job)
                .header("trailer", "Repr-Digest")
                // A small body: refused before it is read, a large one could meet a closed connection.
                .body(body_with_trailers(b"x", Some(digest_trailer(&digest))))
                .send()
                .await
                .expect("PUT");
            assert_eq!(r.status().as_u16(), 411);
        }
        no_partial_and_count(&store, committed);
    }

    // The digest before the body (what older agents and the curl example send) still works.
    let r = super::put(&server, Some(&job), "header-form", data.clone(), None, None).await;
    assert_eq!(r.status().as_u16(), 201);
    assert!(export(d.path(), "header-form") == data);
    no_partial_and_count(&store, committed + 1);
    server.stop().await;
}

/// Encrypts `plain` for the agent (`agent encrypt`) and returns the `.enc` file.
fn encrypted(pair: &Pair, name: &str, plain: &[u8]) -> PathBuf {
    let stage = pair.agent.path().join("stage");
    std::fs::create_dir_all(&stage).expect("mkdir");
    let file = stage.join(name);
    std::fs::write(&file, plain).expect("write");
    let out = agent(
        pair.agent.path(),
        &["encrypt", file.to_str().expect("utf-8"), "--force"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    std::fs::remove_file(&file).expect("rm plaintext");
    stage.join(format!("{name}.enc"))
}

/// The server log's `delivery stored` lines: whether each digest came after the body.
fn stored_forms(pair: &Pair) -> Vec<bool> {
    let log = std::fs::read_to_string(pair.server_log()).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains("delivery stored"))
        .map(|l| l.contains("digest_after_body=true") || l.contains("\"digest_after_body\":true"))
        .collect()
}

fn push(pair: &Pair, file: &Path) -> (i32, String, String) {
    let out = agent(pair.agent.path(), &["push", file.to_str().expect("utf-8")]);
    (
        code(&out),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr(&out),
    )
}

#[test]
fn agent_push_sends_an_encrypted_file_in_one_pass_and_a_second_push_is_already_delivered() {
    let mut pair = Pair::new();
    pair.start_server();
    let plain = content(3 * 1024 * 1024 + 17, 3);
    let file = encrypted(&pair, "report.csv", &plain);

    let (status, out, err) = push(&pair, &file);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains(": delivered as `push-"), "{out}");
    assert_eq!(
        stored_forms(&pair),
        vec![true],
        "the digest came after the body"
    );
    let records = pair.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["name"], "report.csv");
    assert_eq!(records[0]["size"], json!(plain.len()));
    assert!(pair.export(records[0]["id"].as_str().expect("id")) == plain);

    // The same file again: recognised, nothing sent, nothing stored.
    let (status, out, err) = push(&pair, &file);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("already delivered"), "{out}");
    assert_eq!(pair.records().len(), 1);
    assert_eq!(stored_forms(&pair).len(), 1);

    // A file damaged after its header is sent up to the damage and then cut: nothing stored.
    let mut bytes = std::fs::read(&file).expect("read");
    let at = bytes.len() - 1000;
    bytes[at] ^= 1;
    let damaged = file.with_file_name("damaged.csv.enc");
    std::fs::write(&damaged, &bytes).expect("write");
    let (status, _, err) = push(&pair, &damaged);
    assert_eq!(status, 8, "{err}");
    assert_eq!(pair.records().len(), 1);
    no_partial_and_count(&pair.store(), 1);
}

#[test]
fn a_server_that_does_not_offer_trailers_gets_the_digest_before_the_body() {
    let mut pair = Pair::new();
    pair.server
        .set("Deliveries", json!({ "DigestTrailers": false }));
    pair.server.write();
    pair.start_server();
    let plain = content(2 * 1024 * 1024 + 5, 4);
    let file = encrypted(&pair, "old.bin", &plain);

    let (status, out, err) = push(&pair, &file);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains(": delivered as `push-"), "{out}");
    assert_eq!(stored_forms(&pair), vec![false], "the digest came first");
    let records = pair.records();
    assert_eq!(records.len(), 1);
    assert!(pair.export(records[0]["id"].as_str().expect("id")) == plain);
    let (status, out, err) = push(&pair, &file);
    assert_eq!(status, 0, "{err}");
    assert!(out.contains("already delivered"), "{out}");
    assert_eq!(pair.records().len(), 1);
}
