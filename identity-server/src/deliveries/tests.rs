//! The delivery rules on a real folder store: commit only with the announced size and SHA-256,
//! idempotent ids per client, one upload per id, a share of the slots per client, the minimum upload
//! pace, names, authorization, clean-up of interrupted deliveries, quota.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use ids_devpki::{Ca, KeyKind, PfxProfile, to_pfx};
use ids_pki::pfx::Pfx;
use ids_seal::encrypted_file::{DecryptionKey, Recipient};

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
            max_uploads_per_client: 3,
            min_upload_rate: MinUploadRate {
                bytes_per_second: 240,
                window: Duration::from_secs(10),
            },
            digest_trailers: true,
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
        sha256: Some(sha256),
    }
}

fn upload(s: &Deliveries, who: &Caller, inc: Incoming) -> Box<Upload> {
    match s.start(who, inc).unwrap() {
        Started::Upload(u) => u,
        Started::Duplicate(r) => panic!("unexpected duplicate {r:?}"),
    }
}

/// Files of the store folder and its client folders (as `@client/name`), sorted.
fn stored(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir.join("deliveries")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for f in std::fs::read_dir(e.path()).unwrap().flatten() {
                names.push(format!("{name}/{}", f.file_name().to_string_lossy()));
            }
        } else {
            names.push(name);
        }
    }
    names.sort();
    names
}

fn key(client: &str, id: &str) -> DeliveryKey {
    DeliveryKey::new(&client.into(), &DeliveryId::parse(id).unwrap())
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
    assert_eq!(stored(dir.path()), ["@Job/good.idsenc", "@Job/good.json"]);
    let encrypted = std::fs::read(dir.path().join("deliveries/@Job/good.idsenc")).unwrap();
    assert!(encrypted.starts_with(b"IDSENC"));
    assert!(!encrypted.windows(64).any(|w| w == &body[1000..1064]));
    let mut out = Vec::new();
    s.export(&key("Job", "good"), &mut out).unwrap();
    assert!(out == body);

    // Another digest: refused at the end, nothing left.
    let mut wrong = incoming("wrong", &body);
    if let Some(d) = wrong.sha256.as_mut() {
        d[0] ^= 1;
    }
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
    assert_eq!(stored(dir.path()), ["@Job/good.idsenc", "@Job/good.json"]);
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
    // Another file under the same id: conflict.
    assert!(matches!(
        s.start(&job, incoming("d1", &data(999))),
        Err(DeliveryError::Conflict(_))
    ));
    assert_eq!(s.list().unwrap().len(), 1);
    // The record is visible to its client and to readers only.
    let id = DeliveryId::parse("d1").unwrap();
    assert!(s.find(&job, &id, None).is_ok());
    // At most Deliveries:MaxConcurrentUploads (3 here) at once.
    let uploads: Vec<_> = (0..3)
        .map(|i| upload(&s, &job, incoming(&format!("c{i}"), &body)))
        .collect();
    assert!(matches!(
        s.start(&caller("Other", Some("Agent")), incoming("c3", &body)),
        Err(DeliveryError::Busy(3))
    ));
    drop(uploads);
    assert!(s.start(&job, incoming("c3", &body)).is_ok());
    assert!(
        s.find(&caller("Reader1", Some("Reader")), &id, None)
            .is_ok()
    );
    assert!(matches!(
        s.find(&caller("Other", Some("Agent")), &id, None),
        Err(DeliveryError::NotFound)
    ));
    assert!(matches!(
        s.find(&caller("Other", Some("Agent")), &id, Some("Job")),
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
    // In the client's folder, and in the top folder (where deliveries went before ids were per
    // client).
    std::fs::write(folder.join("@Job/.x.idsenc.1234.partial"), b"half").unwrap();
    std::fs::write(folder.join("@Job/orphan.idsenc"), b"no record").unwrap();
    std::fs::write(folder.join(".y.idsenc.1234.partial"), b"half").unwrap();
    std::fs::write(folder.join("old-orphan.idsenc"), b"no record").unwrap();
    // Operator commands look without touching.
    let (_, opened) = FolderStore::open(dir.path(), None, 0, false).unwrap();
    assert!(opened.removed.is_empty());
    assert_eq!(stored(dir.path()).len(), 6);
    // The server at start-up cleans up.
    let (_, opened) = FolderStore::open(dir.path(), None, 0, true).unwrap();
    assert_eq!(opened.removed.len(), 4);
    assert_eq!(opened.deliveries, 1);
    assert_eq!(stored(dir.path()), ["@Job/kept.idsenc", "@Job/kept.json"]);
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

#[test]
fn the_same_id_from_two_clients_is_two_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), None);
    let job = caller("Job", Some("Administrator"));
    let other = caller("Other", Some("Agent"));
    let reader = caller("R", Some("Reader"));
    let (a, b) = (data(1000), data(2000));
    let mut u = upload(&s, &job, incoming("d1", &a));
    // The same id from another client while the first is under way: another delivery.
    let mut v = upload(&s, &other, incoming("d1", &b));
    u.write(&a).unwrap();
    v.write(&b).unwrap();
    let first = u.finish("t1".into()).unwrap();
    let second = v.finish("t2".into()).unwrap();
    assert_eq!((first.size, second.size), (1000, 2000));
    assert_eq!(
        stored(dir.path()),
        [
            "@Job/d1.idsenc",
            "@Job/d1.json",
            "@Other/d1.idsenc",
            "@Other/d1.json"
        ]
    );
    // Each client repeats within its own namespace.
    assert!(matches!(
        s.start(&other, incoming("d1", &b)).unwrap(),
        Started::Duplicate(r) if r == second
    ));
    assert!(matches!(
        s.start(&other, incoming("d1", &a)),
        Err(DeliveryError::Conflict(_))
    ));
    let id = DeliveryId::parse("d1").unwrap();
    assert_eq!(s.find(&job, &id, None).unwrap(), first);
    assert_eq!(s.find(&other, &id, None).unwrap(), second);
    assert_eq!(s.find(&reader, &id, Some("Other")).unwrap(), second);
    match s.find(&reader, &id, None) {
        Err(DeliveryError::Ambiguous { clients, .. }) => assert_eq!(clients, ["Job", "Other"]),
        other => panic!("{other:?}"),
    }
    let mut out = Vec::new();
    s.export(&key("Other", "d1"), &mut out).unwrap();
    assert!(out == b);
    assert_eq!(s.list().unwrap(), [first, second]);
}

#[test]
fn deliveries_stored_before_ids_were_per_client_are_read_where_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("deliveries");
    let s = service(dir.path(), None);
    let job = caller("Job", Some("Administrator"));
    // Written as the server did before: `<id>.idsenc` and `<id>.json` in the top folder.
    let body = data(3000);
    let mut u = upload(&s, &job, incoming("old", &body));
    u.write(&body).unwrap();
    let record = u.finish("t0".into()).unwrap();
    for ext in ["idsenc", "json"] {
        std::fs::rename(
            folder.join(format!("@Job/old.{ext}")),
            folder.join(format!("old.{ext}")),
        )
        .unwrap();
    }
    let (store, opened) = FolderStore::open(dir.path(), None, 0, true).unwrap();
    assert!(opened.removed.is_empty());
    assert_eq!(opened.deliveries, 1);
    assert_eq!(store.get(&key("Job", "old")).unwrap(), Some(record.clone()));
    assert_eq!(store.get(&key("Other", "old")).unwrap(), None);
    assert!(matches!(
        s.start(&job, incoming("old", &body)).unwrap(),
        Started::Duplicate(r) if r == record
    ));
    assert!(matches!(
        s.start(&job, incoming("old", &data(10))),
        Err(DeliveryError::Conflict(_))
    ));
    let mut out = Vec::new();
    s.export(&key("Job", "old"), &mut out).unwrap();
    assert!(out == body);
    // Another client's "old" is its own, in its folder.
    let other = caller("Other", Some("Agent"));
    let mut v = upload(&s, &other, incoming("old", &data(10)));
    v.write(&data(10)).unwrap();
    v.finish("t1".into()).unwrap();
    assert_eq!(s.list().unwrap().len(), 2);
    assert_eq!(
        stored(dir.path()),
        [
            "@Other/old.idsenc",
            "@Other/old.json",
            "old.idsenc",
            "old.json"
        ]
    );
}

#[test]
fn client_folder_names_are_safe_distinct_and_bounded() {
    use super::folder::client_folder_name;
    assert_eq!(client_folder_name("Job"), "@Job");
    assert_eq!(client_folder_name("a.b-c_d"), "@a.b-c_d");
    assert_eq!(client_folder_name("../x"), "@..%2Fx");
    assert_eq!(client_folder_name("é %"), "@%C3%A9%20%25");
    let long_a = "a".repeat(300);
    let long_b = format!("{}b", "a".repeat(299));
    let (na, nb) = (client_folder_name(&long_a), client_folder_name(&long_b));
    assert_ne!(na, nb);
    assert!(na.len() <= 160 && nb.len() <= 160, "{na}");
    assert!(na.contains('~'));
    // A short id never has `~` (it is escaped), so never the name of a long one.
    assert_eq!(client_folder_name("~"), "@%7E");
}

/// The folder names written before `percent-encoding` was used, byte for byte: existing folders keep
/// being found.
#[test]
fn client_folder_names_are_those_written_before() {
    use super::folder::client_folder_name;
    fn before(client: &str) -> String {
        let mut pieces = Vec::with_capacity(client.len());
        for b in client.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
                pieces.push((b as char).to_string());
            } else {
                pieces.push(format!("%{b:02X}"));
            }
        }
        let mut name = String::from('@');
        if pieces.iter().map(String::len).sum::<usize>() < 160 {
            name.extend(pieces);
            return name;
        }
        for piece in pieces {
            if name.len() + piece.len() > 160 - 40 {
                break;
            }
            name.push_str(&piece);
        }
        let hash = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, client.as_bytes());
        name.push('~');
        name.push_str(&ids_pki::b64::hex(&hash.as_ref()[..16]));
        name
    }
    let parts = [
        "a",
        "Job",
        "é",
        " ",
        "%",
        "/",
        "~",
        "--",
        "_.",
        "€uro",
        "\u{10348}",
    ];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..3000 {
        let mut client = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 120) as usize;
        for i in 0..len {
            client.push_str(parts[((state >> (i % 50)) as usize + i) % parts.len()]);
        }
        assert_eq!(client_folder_name(&client), before(&client), "{client:?}");
    }
}

#[test]
fn one_client_holds_at_most_its_share_of_the_upload_slots() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = service(dir.path(), None);
    s.policy.max_uploads = 4;
    s.policy.max_uploads_per_client = 2;
    let job = caller("Job", Some("Administrator"));
    let other = caller("Other", Some("Agent"));
    let body = data(100);
    let held: Vec<_> = (0..2)
        .map(|i| upload(&s, &job, incoming(&format!("j{i}"), &body)))
        .collect();
    match s.start(&job, incoming("j2", &body)) {
        Err(DeliveryError::ClientBusy { client, max }) => {
            assert_eq!((client.as_str(), max), ("Job", 2))
        }
        other => panic!("{other:?}"),
    }
    // Another client still gets its share, up to the slots in all.
    let others: Vec<_> = (0..2)
        .map(|i| upload(&s, &other, incoming(&format!("o{i}"), &body)))
        .collect();
    let third = caller("Third", Some("Agent"));
    assert!(matches!(
        s.start(&third, incoming("t0", &body)),
        Err(DeliveryError::Busy(4))
    ));
    // A slot given back (here by an abandoned upload) is free again for its client.
    drop(held);
    assert!(s.start(&job, incoming("j2", &body)).is_ok());
    drop(others);
}

#[test]
fn the_upload_pace_is_checked_window_after_window() {
    let min = MinUploadRate {
        bytes_per_second: 100,
        window: Duration::from_secs(2),
    };
    let second = Duration::from_secs(1);
    let mut pace = UploadPace::new(min);
    assert_eq!(pace.wait_limit(), Some(Duration::from_secs(2)));
    // 200 bytes per 2 s window is enough, however they come.
    pace.record(second, 0).unwrap();
    assert_eq!(pace.wait_limit(), Some(second));
    pace.record(second, 200).unwrap();
    pace.record(Duration::from_millis(1999), 199).unwrap();
    pace.record(Duration::from_millis(1), 1).unwrap();
    // A fast start does not pay for a slow end: each window counts on its own.
    pace.record(Duration::from_millis(10), 1_000_000).unwrap();
    pace.record(Duration::from_millis(1990), 0).unwrap();
    pace.record(second, 150).unwrap();
    match pace.record(second, 49) {
        Err(DeliveryError::TooSlow {
            received,
            seconds,
            min,
        }) => assert_eq!((received, seconds, min), (199, 2, 100)),
        other => panic!("{other:?}"),
    }
    // No minimum: never refused, no window.
    let mut none = UploadPace::new(MinUploadRate {
        bytes_per_second: 0,
        window: Duration::from_secs(2),
    });
    assert_eq!(none.wait_limit(), None);
    none.record(Duration::from_secs(3600), 0).unwrap();
}

#[test]
fn names_that_could_disguise_a_file_are_refused_naming_the_character() {
    for (name, expected) in [
        (".bashrc", "must not start with `.`"),
        ("..", "must not start with `.`"),
        (
            "invoice\u{202E}txt.exe",
            "U+202E RIGHT-TO-LEFT OVERRIDE at character 8",
        ),
        ("a\u{2066}b", "U+2066 LEFT-TO-RIGHT ISOLATE at character 2"),
        ("a\u{2028}b", "U+2028 LINE SEPARATOR at character 2"),
        ("a\u{2029}b", "U+2029 PARAGRAPH SEPARATOR"),
        (
            "\u{FEFF}x",
            "U+FEFF ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK) at character 1",
        ),
        ("a\u{200D}b", "U+200D ZERO WIDTH JOINER"),
        ("a\u{AD}b", "U+00AD SOFT HYPHEN"),
        ("a\u{1}b", "U+0001 (a control character) at character 2"),
        ("a\u{9F}b", "U+009F (a control character)"),
        ("a\u{600}b", "U+0600 (an invisible format character)"),
        ("a\u{E0067}b", "U+E0067 (a tag character)"),
        ("a\u{1D173}b", "U+1D173 (an invisible format character)"),
        ("é\u{202E}", "at character 2"),
    ] {
        let e = check_name(name).unwrap_err().to_string();
        assert!(e.contains(expected), "{name:?}: {e}");
    }
    for fine in [
        "report.csv",
        "rapport-été.csv",
        "a b",
        "日本語.txt",
        "x.",
        "a..b",
        "ﷺ.txt",
    ] {
        assert!(check_name(fine).is_ok(), "{fine}");
    }
}

#[test]
fn export_names_are_made_safe_and_say_what_changed() {
    assert_eq!(export_name("report.csv", "d1"), ("report.csv".into(), None));
    let (name, changed) = export_name(".bashrc", "d1");
    assert_eq!(name, "bashrc");
    assert!(changed.unwrap().contains("leading `.`"));
    let (name, changed) = export_name("invoice\u{202E}txt.exe", "d1");
    assert_eq!(name, "invoice_txt.exe");
    assert!(changed.unwrap().contains("U+202E RIGHT-TO-LEFT OVERRIDE"));
    assert_eq!(export_name("\u{FEFF}.x\u{2028}", "d1").0, "_.x_");
    assert_eq!(export_name("...", "d1").0, "delivery-d1");
    assert_eq!(export_name("a/b\\c", "d1").0, "a_b_c");
    assert_eq!(names::shown("a\u{202E}b\u{7}"), "a\\u{202E}b\\u{0007}");
}

fn trailer_form(id: &str, data: &[u8]) -> (Incoming, [u8; 32]) {
    let mut inc = incoming(id, data);
    let sha256 = inc.sha256.take().unwrap();
    (inc, sha256)
}

#[test]
fn a_digest_after_the_body_is_checked_before_commit_and_a_repeat_is_told_after_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), None);
    let job = caller("Job", Some("Administrator"));
    let body = data(150_000);

    // Hashed by the caller on another thread (pipelined), digest as a trailer: stored.
    let (inc, sha256) = trailer_form("t", &body);
    let mut u = upload(&s, &job, inc);
    assert!(u.digest_follows());
    let mut hasher = u.detach_hasher().unwrap();
    for piece in body.chunks(10_000) {
        hasher.update(piece);
        u.write(piece).unwrap();
    }
    let mut actual = [0u8; 32];
    actual.copy_from_slice(hasher.finish().as_ref());
    let digests = Digests {
        actual: Some(actual),
        trailer: Some(sha256),
    };
    let record = match u.finish_with(digests, "t1".into()).unwrap() {
        Finished::Stored(r) => r,
        Finished::Duplicate(r) => panic!("not a repeat: {r:?}"),
    };
    let mut out = Vec::new();
    s.export(&key("Job", "t"), &mut out).unwrap();
    assert!(out == body);

    // The same id and file again, digest after the body: the first record, nothing stored.
    let before = stored(dir.path());
    let (inc, sha256) = trailer_form("t", &body);
    let mut u = upload(&s, &job, inc);
    u.write(&body).unwrap();
    let trailer = Digests {
        actual: None,
        trailer: Some(sha256),
    };
    match u.finish_with(trailer, "t2".into()).unwrap() {
        Finished::Duplicate(r) => assert_eq!(r, record),
        Finished::Stored(r) => panic!("stored twice: {r:?}"),
    }
    // The same id, size and name but another content: a conflict, found after the body.
    let mut other = body.clone();
    other[0] ^= 1;
    let (inc, sha256) = trailer_form("t", &other);
    let mut u = upload(&s, &job, inc);
    u.write(&other).unwrap();
    let trailer = Digests {
        actual: None,
        trailer: Some(sha256),
    };
    assert!(matches!(
        u.finish_with(trailer, "t3".into()),
        Err(DeliveryError::Conflict(_))
    ));
    assert_eq!(stored(dir.path()), before);

    // A wrong trailer, a missing one, or one on top of a header digest: nothing stored.
    for (id, trailer, header) in [
        ("wrong", Some([9u8; 32]), false),
        ("missing", None, false),
        ("both", Some([0u8; 32]), true),
    ] {
        let (mut inc, sha256) = trailer_form(id, &body);
        let trailer = trailer.map(|t| if id == "both" { sha256 } else { t });
        if header {
            inc.sha256 = Some(sha256);
        }
        let mut u = upload(&s, &job, inc);
        u.write(&body).unwrap();
        let result = u.finish_with(
            Digests {
                actual: None,
                trailer,
            },
            "t".into(),
        );
        match id {
            "wrong" => assert!(matches!(result, Err(DeliveryError::DigestMismatch { .. }))),
            _ => assert!(
                matches!(result, Err(DeliveryError::InvalidRequest(_))),
                "{id}"
            ),
        }
    }
    assert_eq!(stored(dir.path()), before);
}
