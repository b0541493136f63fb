//! The delivery rules on a real folder store: commit only with the announced size and SHA-256,
//! idempotent ids, one upload per id, authorization, clean-up of interrupted deliveries, quota.

use std::path::Path;
use std::sync::Arc;

use aws_lc_rs::digest;
use ids_crypto::devcerts::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_crypto::encrypted_file::{DecryptionKey, Recipient};
use ids_crypto::pfx::Pfx;

use super::folder::FolderStore;
use super::*;

fn service(dir: &Path, quota: Option<u64>) -> Deliveries {
    let ca = Ca::new("deliveries test CA", 1).unwrap();
    let issued = ca.issue_encryption("server", KeyKind::EcP256, 1).unwrap();
    let pfx = Pfx::from_bytes(
        "test",
        &to_pfx(&issued, &[], "server", "pw", PfxProfile::Modern).unwrap(),
        "pw",
    )
    .unwrap();
    let (store, _) = FolderStore::open(dir, quota, 0, true).unwrap();
    Deliveries::new(
        Arc::new(store),
        Recipient::from_certificate(&pfx.certificate).unwrap(),
        DecryptionKey::from_pfx(&pfx).unwrap(),
        Policy {
            deliver_profiles: vec!["Administrator".into(), "Agent".into()],
            read_profiles: vec!["Reader".into()],
            max_size: 10 * 1024 * 1024,
            max_uploads: 3,
        },
    )
}

fn caller(client: &str, profile: Option<&str>) -> Caller {
    Caller {
        client_id: client.into(),
        profile: profile.map(str::to_string),
        agent: Some("Paris".into()),
    }
}

fn incoming(id: &str, data: &[u8]) -> Incoming {
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest::digest(&digest::SHA256, data).as_ref());
    Incoming {
        id: DeliveryId::parse(id).unwrap(),
        name: format!("{id}.csv"),
        size: data.len() as u64,
        sha256,
    }
}

fn upload(s: &Deliveries, who: &Caller, inc: Incoming) -> Box<Upload> {
    match s.start(who, inc).unwrap() {
        Started::Upload(u) => u,
        Started::Duplicate(r) => panic!("unexpected duplicate {r:?}"),
    }
}

/// Files of the store folder, sorted.
fn stored(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("deliveries"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn ids_and_names_are_checked() {
    for ok in ["a", "0f3c-A_b.9", &"x".repeat(MAX_ID_LEN)] {
        assert!(DeliveryId::parse(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        ".hidden",
        "a/b",
        "a b",
        "é",
        &"x".repeat(MAX_ID_LEN + 1),
    ] {
        assert!(DeliveryId::parse(bad).is_err(), "{bad}");
    }
    assert!(check_name("report 2026-11.csv").is_ok());
    assert!(check_name("rapport-été.csv").is_ok());
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a\\b",
        "a\nb",
        &"x".repeat(MAX_NAME_LEN + 1),
    ] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_delivery_is_committed_only_with_its_announced_size_and_digest() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), None);
    let job = caller("Job", Some("Administrator"));
    let body = data(200_000);

    let mut u = upload(&s, &job, incoming("good", &body));
    for piece in body.chunks(16_384) {
        u.write(piece).unwrap();
    }
    let record = u.finish("2026-11-22T00:00:00Z".into()).unwrap();
    assert_eq!(record.size, 200_000);
    assert_eq!(record.client_id, "Job");
    assert_eq!(record.agent.as_deref(), Some("Paris"));
    assert_eq!(stored(dir.path()), ["good.idsenc", "good.json"]);
    let encrypted = std::fs::read(dir.path().join("deliveries/good.idsenc")).unwrap();
    assert!(encrypted.starts_with(b"IDSENC"));
    assert!(!encrypted.windows(64).any(|w| w == &body[1000..1064]));
    let mut out = Vec::new();
    s.export(&DeliveryId::parse("good").unwrap(), &mut out)
        .unwrap();
    assert!(out == body);

    // Another digest: refused at the end, nothing left.
    let mut wrong = incoming("wrong", &body);
    wrong.sha256[0] ^= 1;
    let mut u = upload(&s, &job, wrong);
    u.write(&body).unwrap();
    assert!(matches!(
        u.finish(String::new()),
        Err(DeliveryError::DigestMismatch { .. })
    ));
    // Shorter than announced, longer than announced, or abandoned: nothing left either.
    let mut u = upload(&s, &job, incoming("short", &body));
    u.write(&body[..1000]).unwrap();
    assert!(matches!(
        u.finish(String::new()),
        Err(DeliveryError::Incomplete { received: 1000, .. })
    ));
    let mut u = upload(&s, &job, incoming("long", &body[..10]));
    assert!(matches!(
        u.write(&body[..11]),
        Err(DeliveryError::InvalidRequest(_))
    ));
    drop(u);
    let mut u = upload(&s, &job, incoming("abandoned", &body));
    u.write(&body[..5000]).unwrap();
    drop(u);
    assert_eq!(stored(dir.path()), ["good.idsenc", "good.json"]);
    // Over the size limit: refused before anything is written.
    let mut big = incoming("big", b"");
    big.size = 10 * 1024 * 1024 + 1;
    assert!(matches!(
        s.start(&job, big),
        Err(DeliveryError::TooLarge { .. })
    ));
}

#[test]
fn an_id_is_stored_once_and_received_on_one_connection_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), None);
    let job = caller("Job", Some("Administrator"));
    let body = data(1000);

    let first = upload(&s, &job, incoming("d1", &body));
    // The same id while the first upload is under way.
    assert!(matches!(
        s.start(&job, incoming("d1", &body)),
        Err(DeliveryError::InProgress(_))
    ));
    let mut first = first;
    first.write(&body).unwrap();
    let record = first.finish("t1".into()).unwrap();

    match s.start(&job, incoming("d1", &body)).unwrap() {
        Started::Duplicate(r) => assert_eq!(r, record),
        Started::Upload(_) => panic!("a repeated delivery must not be stored again"),
    }
    // Another file under the same id, or the same file from another client: conflict.
    assert!(matches!(
        s.start(&job, incoming("d1", &data(999))),
        Err(DeliveryError::Conflict(_))
    ));
    assert!(matches!(
        s.start(&caller("Other", Some("Agent")), incoming("d1", &body)),
        Err(DeliveryError::Conflict(_))
    ));
    assert_eq!(s.list().unwrap().len(), 1);
    // The record is visible to its client and to readers only.
    let id = DeliveryId::parse("d1").unwrap();
    assert!(s.find(&job, &id).is_ok());
    // At most Deliveries:MaxConcurrentUploads (3 here) at once.
    let uploads: Vec<_> = (0..3)
        .map(|i| upload(&s, &job, incoming(&format!("c{i}"), &body)))
        .collect();
    assert!(matches!(
        s.start(&job, incoming("c3", &body)),
        Err(DeliveryError::Busy(3))
    ));
    drop(uploads);
    assert!(s.start(&job, incoming("c3", &body)).is_ok());
    assert!(s.find(&caller("Reader1", Some("Reader")), &id).is_ok());
    assert!(matches!(
        s.find(&caller("Other", Some("Agent")), &id),
        Err(DeliveryError::NotFound)
    ));
}

#[test]
fn profiles_and_declared_agents_decide_who_may_deliver_or_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), None);
    let admin = caller("Job", Some("Administrator"));
    let reader = caller("R", Some("Reader"));
    let none = caller("N", None);
    assert!(s.authorize(&admin, Action::Deliver, &[]).is_ok());
    assert!(s.authorize(&admin, Action::Read, &[]).is_err());
    assert!(s.authorize(&reader, Action::Read, &[]).is_ok());
    let refused = s.authorize(&reader, Action::Deliver, &[]).unwrap_err();
    assert!(
        refused.to_string().contains("profile `Reader`"),
        "{refused}"
    );
    assert!(refused.to_string().contains("Deliveries:DeliverProfiles"));
    assert!(s.authorize(&none, Action::Deliver, &[]).is_err());
    // With declared agents, the agent identifier must be one of them.
    assert!(s.authorize(&admin, Action::Deliver, &["Paris"]).is_ok());
    assert!(s.authorize(&admin, Action::Deliver, &["Lyon"]).is_err());
    let mut anonymous = admin.clone();
    anonymous.agent = None;
    assert!(
        s.authorize(&anonymous, Action::Deliver, &["Paris"])
            .is_err()
    );
    assert!(s.authorize(&anonymous, Action::Deliver, &[]).is_ok());
}

#[test]
fn opening_the_store_removes_what_interrupted_deliveries_left() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("deliveries");
    {
        let s = service(dir.path(), None);
        let job = caller("Job", Some("Administrator"));
        let mut u = upload(&s, &job, incoming("kept", b"abc"));
        u.write(b"abc").unwrap();
        u.finish("t".into()).unwrap();
    }
    std::fs::write(folder.join(".x.idsenc.1234.partial"), b"half").unwrap();
    std::fs::write(folder.join("orphan.idsenc"), b"no record").unwrap();
    // Operator commands look without touching.
    let (_, opened) = FolderStore::open(dir.path(), None, 0, false).unwrap();
    assert!(opened.removed.is_empty());
    assert_eq!(stored(dir.path()).len(), 4);
    // The server at start-up cleans up.
    let (_, opened) = FolderStore::open(dir.path(), None, 0, true).unwrap();
    assert_eq!(opened.removed.len(), 2);
    assert_eq!(opened.deliveries, 1);
    assert_eq!(stored(dir.path()), ["kept.idsenc", "kept.json"]);
}

#[test]
fn the_quota_refuses_what_would_not_fit_and_counts_what_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), Some(1024 * 1024));
    let job = caller("Job", Some("Administrator"));
    let body = data(600 * 1024);
    let mut u = upload(&s, &job, incoming("first", &body));
    // While the first is in progress its reservation counts.
    assert!(matches!(
        s.start(&job, incoming("second", &body)),
        Err(DeliveryError::StorageFull(_))
    ));
    u.write(&body).unwrap();
    u.finish("t".into()).unwrap();
    assert!(matches!(
        s.start(&job, incoming("second", &body)),
        Err(DeliveryError::StorageFull(_))
    ));
    // A small one still fits.
    let small = data(1000);
    let mut u = upload(&s, &job, incoming("small", &small));
    u.write(&small).unwrap();
    u.finish("t".into()).unwrap();
}
