//! Unit tests of the replay journal: reading back, torn lines, compaction, a full queue.

use std::time::Instant;

use ids_runtime::ManualClock;

use super::file::HEADER;
use super::*;

fn clock(now: i64) -> Arc<ManualClock> {
    Arc::new(ManualClock::new(now))
}

fn open(folder: &Path, clock: &Arc<ManualClock>, limits: Limits) -> (JournaledReplayCache, Opened) {
    JournaledReplayCache::open(
        folder,
        MemoryReplayCache::new(1000, 1000),
        clock.clone(),
        limits,
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("journal")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn accepted_assertions_are_refused_after_a_restart_until_they_expire() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("data/replay");
    let now = 1_000_000;
    let c = clock(now);
    let (cache, opened) = open(&folder, &c, Limits::default());
    assert_eq!(opened.unusable, None);
    assert!(cache.first_use_now("Job", "a", now + 60, now).expect("ok"));
    assert!(
        cache
            .first_use_now("Job", "b", now + 3600, now)
            .expect("ok")
    );
    assert!(
        cache
            .first_use_now("Other Client", "a", now + 60, now)
            .expect("ok")
    );
    cache.shutdown();
    drop(cache);

    // Restarted 100 s later: `a` (exp + leeway passed) is gone, `b` is still refused.
    c.set(now + 100);
    let (cache, opened) = open(&folder, &c, Limits::default());
    assert_eq!((opened.loaded, opened.expired), (1, 2), "{opened:?}");
    assert_eq!(
        cache.first_use_now("Job", "b", now + 3600, now + 100),
        Ok(false)
    );
    assert_eq!(
        cache.first_use_now("Job", "a", now + 160, now + 100),
        Ok(true)
    );
    cache.shutdown();
    // The start-up compaction dropped the expired entries.
    assert_eq!(lines(&folder.join(JOURNAL)).len(), 2);
    let mode = {
        use std::os::unix::fs::PermissionsExt as _;
        (
            std::fs::metadata(&folder)
                .expect("folder")
                .permissions()
                .mode()
                & 0o777,
            std::fs::metadata(folder.join(JOURNAL))
                .expect("file")
                .permissions()
                .mode()
                & 0o777,
        )
    };
    assert_eq!(mode, (0o700, 0o600));
}

#[test]
fn a_torn_last_line_and_damaged_lines_are_skipped_and_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("replay");
    std::fs::create_dir_all(&folder).expect("mkdir");
    let now = 5000;
    let good = |n: u8, exp: i64| Entry {
        key: [n; 16],
        expires_at: exp,
        client: "Job".into(),
    };
    let text = format!(
        "{HEADER}{}garbage line\n{}{}\n{}",
        good(1, now + 100).line(),
        good(2, now + 100).line(),
        "ab".repeat(16) + " 12 !!",
        &good(3, now + 100).line()[..20],
    );
    std::fs::write(folder.join(JOURNAL), text).expect("write");
    let c = clock(now);
    let (cache, opened) = open(&folder, &c, Limits::default());
    assert_eq!(opened.unusable, None);
    assert_eq!(opened.loaded, 2);
    assert_eq!(opened.malformed_count, 2, "{opened:?}");
    assert!(opened.malformed[0].starts_with("line 3:"), "{opened:?}");
    assert_eq!(opened.torn_tail, Some(20));
    assert_eq!(
        cache.memory.insert([1; 16], "Job", now + 100, now),
        Ok(false),
        "the entries before and after the damage are back"
    );
    assert_eq!(
        cache.memory.insert([2; 16], "Job", now + 100, now),
        Ok(false)
    );
    cache.shutdown();
    assert_eq!(lines(&folder.join(JOURNAL)).len(), 2);
}

#[test]
fn an_unusable_folder_leaves_a_working_cache_in_memory_and_says_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A file where the data folder should be: no folder can be made under it (even as root).
    let file = dir.path().join("data");
    std::fs::write(&file, "not a folder").expect("write");
    let c = clock(100);
    let (cache, opened) = open(&file.join("replay"), &c, Limits::default());
    let reason = opened.unusable.clone().expect("unusable");
    assert!(
        reason.contains(&file.join("replay").display().to_string()),
        "{reason}"
    );
    assert!(!cache.is_journaled());
    assert_eq!(cache.first_use_now("Job", "a", 200, 100), Ok(true));
    assert_eq!(cache.first_use_now("Job", "a", 200, 100), Ok(false));
    cache.shutdown();
}

#[test]
fn the_writer_compacts_away_expired_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let folder = dir.path().join("replay");
    let now = 10_000;
    let c = clock(now);
    let limits = Limits {
        compact_after: 10,
        expiry_sweep: Duration::ZERO,
        sync_interval: Duration::from_millis(10),
    };
    let (cache, _) = open(&folder, &c, limits);
    for i in 0..10 {
        assert_eq!(
            cache.first_use_now("Job", &format!("short-{i}"), now + 1, now),
            Ok(true)
        );
    }
    c.set(now + 100);
    for i in 0..3 {
        assert_eq!(
            cache.first_use_now("Job", &format!("long-{i}"), now + 1000, now + 100),
            Ok(true)
        );
    }
    // The writer compacts on its own (the 10 short ones expired); bounded wait.
    let path = folder.join(JOURNAL);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lines(&path).len() != 3 {
        assert!(
            Instant::now() < deadline,
            "not compacted: {:?}",
            lines(&path)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    cache.shutdown();
    assert_eq!(lines(&path).len(), 3);
}
