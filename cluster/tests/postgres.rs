//! The PostgreSQL backend, leases, claims and fencing against a real
//! PostgreSQL server (`roomhost_cluster::testing::PgServer`), each test on
//! its own throwaway server.

use std::sync::Arc;
use std::time::Duration;

use roomhost_cluster::testing::PgServer;
use roomhost_cluster::{ClusterConfig, ClusterError, Leases, PostgresBackend, schema};
use roomhost_host::storage::{
    Backend, Changes, EmbeddedBackend, RoomCommit, StorageError, StoredRoom,
};

/// A node of the cluster at `url`, joined, with lease `lease`.
fn node(url: &str, id: &str, lease: Duration) -> Arc<Leases> {
    let config = ClusterConfig::new(url, id, format!("127.0.0.1:{}", 7000 + id.len()))
        .with_lease(lease, lease / 4);
    let leases = Arc::new(Leases::connect(config).unwrap());
    leases.join().unwrap();
    leases
}

fn backend(leases: &Arc<Leases>) -> PostgresBackend {
    PostgresBackend::new(leases.clone(), false)
}

fn commit(service: &str, room: &str, puts: &[(&str, Option<&str>)]) -> RoomCommit {
    let mut changes = Changes::default();
    for (key, value) in puts {
        changes.entries.insert(
            key.as_bytes().to_vec(),
            value.map(|v| v.as_bytes().to_vec()),
        );
    }
    RoomCommit {
        service: service.into(),
        room: room.into(),
        changes,
    }
}

fn entries(stored: &StoredRoom) -> Vec<(String, String)> {
    stored
        .entries
        .iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn pair(key: &str, value: &str) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

const LONG: Duration = Duration::from_secs(30);
/// A lease short enough to wait out in a test, long enough that a loaded
/// machine does not lose it between two steps of one.
const SHORT: Duration = Duration::from_secs(2);
/// Waited past a lapsed lease.
const MARGIN: Duration = Duration::from_millis(500);

#[test]
fn commits_round_trip_and_a_group_is_all_or_nothing() {
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("store").unwrap();
    let a = node(&url, "a", LONG);
    let store = backend(&a);
    for room in ["r1", "r2"] {
        a.claim("chat", room).unwrap();
    }
    let mut with_timer = commit("chat", "r2", &[("k", Some("2"))]);
    with_timer
        .changes
        .timers
        .insert(u64::MAX, Some(1_700_000_000_000));
    with_timer.changes.timers.insert(7, Some(5));
    store
        .commit(&[
            commit("chat", "r1", &[("a", Some("1")), ("b", Some("22"))]),
            with_timer,
        ])
        .unwrap();
    store
        .commit(&[commit("chat", "r1", &[("b", None), ("c", Some("333"))])])
        .unwrap();

    let r1 = store.load("chat", "r1").unwrap();
    assert_eq!(entries(&r1), vec![pair("a", "1"), pair("c", "333")]);
    let r2 = store.load("chat", "r2").unwrap();
    assert_eq!(entries(&r2), vec![pair("k", "2")]);
    let mut timers = r2.timers.clone();
    timers.sort();
    assert_eq!(timers, vec![(7, 5), (u64::MAX, 1_700_000_000_000)]);
    let rooms = store.rooms().unwrap();
    assert_eq!(rooms.len(), 2);
    assert_eq!(
        (rooms[0].room.as_str(), rooms[0].entries, rooms[0].bytes),
        ("r1", 2, 6)
    );
    assert_eq!((rooms[1].timers, rooms[1].next_timer_ms), (2, Some(5)));

    // A group with an unclaimed room is refused whole: r1's part is not
    // written either.
    let refused = store.commit(&[
        commit("chat", "r1", &[("a", Some("changed"))]),
        commit("chat", "unclaimed", &[("x", Some("1"))]),
    ]);
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );
    // A group that fails half-way through (a timer the database cannot
    // hold) is rolled back whole.
    let mut bad_timer = commit("chat", "r2", &[("k", Some("changed"))]);
    bad_timer.changes.timers.insert(1, Some(u64::MAX));
    let refused = store.commit(&[commit("chat", "r1", &[("a", Some("changed"))]), bad_timer]);
    assert!(
        matches!(refused, Err(StorageError::Backend(_))),
        "{refused:?}"
    );
    assert_eq!(entries(&store.load("chat", "r1").unwrap()), entries(&r1));
    assert_eq!(store.load("chat", "r2").unwrap(), r2);
    assert!(store.load("chat", "unclaimed").unwrap().is_empty());

    // A backup is an embedded store the single-node server can open.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.redb");
    assert_eq!(store.backup(&file).unwrap(), 2);
    std::fs::rename(&file, dir.path().join(roomhost_host::storage::FILE_NAME)).unwrap();
    let embedded = EmbeddedBackend::open(dir.path()).unwrap();
    assert_eq!(embedded.rooms().unwrap(), store.rooms().unwrap());
    assert_eq!(embedded.load("chat", "r2").unwrap().entries, r2.entries);

    // Deleting a room, and emptying one, drops its summary.
    assert!(store.delete_room("chat", "r1").unwrap());
    assert!(!store.delete_room("chat", "r1").unwrap());
    let mut empty = commit("chat", "r2", &[("k", None)]);
    empty.changes.timers.insert(u64::MAX, None);
    empty.changes.timers.insert(7, None);
    store.commit(&[empty]).unwrap();
    assert!(store.rooms().unwrap().is_empty());

    // Connecting again migrates nothing.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    assert_eq!(schema::migrate(&mut client).unwrap(), schema::VERSION);
}

#[test]
fn a_live_lease_keeps_a_room_and_release_hands_it_over_at_once() {
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("claims").unwrap();
    let (a, b) = (node(&url, "a", LONG), node(&url, "b", LONG));
    let first = a.claim("chat", "room").unwrap();
    assert_eq!(
        a.claim("chat", "room").unwrap(),
        first,
        "a claim held is kept"
    );
    match b.claim("chat", "room") {
        Err(ClusterError::Owned { node, .. }) => assert_eq!(node, "a"),
        other => panic!("b claimed a room a holds: {other:?}"),
    }
    // b cannot write it either.
    let refused = backend(&b).commit(&[commit("chat", "room", &[("k", Some("b"))])]);
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );

    assert!(a.release("chat", "room").unwrap());
    let second = b.claim("chat", "room").unwrap();
    assert!(second > first, "epoch {second} after {first}");
    backend(&b)
        .commit(&[commit("chat", "room", &[("k", Some("b"))])])
        .unwrap();
    let refused = backend(&a).commit(&[commit("chat", "room", &[("k", Some("a"))])]);
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );

    // Leaving releases everything at once.
    b.claim("chat", "other").unwrap();
    b.leave().unwrap();
    assert!(!b.lease_valid());
    assert!(a.claim("chat", "room").unwrap() > second);
    a.claim("chat", "other").unwrap();
    assert_eq!(a.claims().list().len(), 2);

    // Two nodes racing for the same rooms: each room gets one owner.
    let c = node(&url, "c", LONG);
    let racers: Vec<_> = [a.clone(), c.clone()]
        .into_iter()
        .map(|leases| {
            std::thread::spawn(move || {
                (0..40)
                    .filter(|i| leases.claim("race", &i.to_string()).is_ok())
                    .count()
            })
        })
        .collect();
    let won: usize = racers.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(won, 40);
    for i in 0..40 {
        let (owner, epoch) = a.owner("race", &i.to_string()).unwrap().unwrap();
        let holder = if owner == "a" { &a } else { &c };
        assert_eq!(holder.claims().epoch("race", &i.to_string()), Some(epoch));
    }
}

#[test]
fn after_a_lease_lapses_the_new_owner_is_fenced_from_the_old() {
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("fencing").unwrap();
    let lease = SHORT;
    let a = node(&url, "a", lease);
    let b = node(&url, "b", LONG);
    let old = a.claim("collab", "doc").unwrap();
    backend(&a)
        .commit(&[commit("collab", "doc", &[("text", Some("from a"))])])
        .unwrap();
    assert!(a.lease_valid() && a.check_lease().unwrap());
    assert!(matches!(
        b.claim("collab", "doc"),
        Err(ClusterError::Owned { .. })
    ));

    // a stops renewing (paused, partitioned): its lease lapses.
    std::thread::sleep(lease + MARGIN);
    assert!(!a.lease_valid());
    assert!(!a.check_lease().unwrap());
    let new = b.claim("collab", "doc").unwrap();
    assert!(new > old, "epoch {new} after {old}");
    // The new owner loads after its claim and sees every write of the old.
    let store_b = PostgresBackend::new(b.clone(), true);
    assert_eq!(
        entries(&store_b.load("collab", "doc").unwrap()),
        vec![pair("text", "from a")]
    );
    store_b
        .commit(&[commit("collab", "doc", &[("text", Some("from b"))])])
        .unwrap();

    // a wakes up and writes: refused, and b's state is intact.
    let late = backend(&a).commit(&[commit(
        "collab",
        "doc",
        &[("text", Some("late a")), ("extra", Some("x"))],
    )]);
    assert!(matches!(late, Err(StorageError::Fenced(_))), "{late:?}");
    assert_eq!(
        entries(&store_b.load("collab", "doc").unwrap()),
        vec![pair("text", "from b")]
    );
    // Its lease cannot be renewed once lapsed; it forgets its claims.
    assert!(matches!(a.renew(), Err(ClusterError::LeaseLost(_))));
    assert!(a.claims().list().is_empty());
    // Joining again gives a lease but not the room b holds.
    a.join().unwrap();
    assert!(matches!(
        a.claim("collab", "doc"),
        Err(ClusterError::Owned { .. })
    ));
}

#[test]
fn a_stale_epoch_is_refused_even_under_a_live_lease() {
    // The same node id connected twice (a node restarted while its old
    // process still runs): the second claims with a newer epoch, and the
    // first, whose lease row is the same live one, is fenced by the epoch.
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("restart").unwrap();
    let first = node(&url, "a", LONG);
    let old = first.claim("chat", "room").unwrap();
    backend(&first)
        .commit(&[commit("chat", "room", &[("k", Some("old"))])])
        .unwrap();
    let second = node(&url, "a", LONG);
    let new = second.claim("chat", "room").unwrap();
    assert!(new > old);
    assert!(first.check_lease().unwrap(), "the lease is live");
    let refused = backend(&first).commit(&[commit("chat", "room", &[("k", Some("stale"))])]);
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );
    let store = backend(&second);
    assert_eq!(
        entries(&store.load("chat", "room").unwrap()),
        vec![pair("k", "old")]
    );
    store
        .commit(&[commit("chat", "room", &[("k", Some("new"))])])
        .unwrap();
    assert_eq!(
        entries(&store.load("chat", "room").unwrap()),
        vec![pair("k", "new")]
    );
}

#[test]
fn a_renewed_lease_outlives_its_length_and_lapses_when_renewal_stops() {
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("renewal").unwrap();
    let lease = SHORT;
    let a = node(&url, "a", lease);
    let b = node(&url, "b", LONG);
    a.claim("chat", "room").unwrap();
    let renewal = a.keep_renewed().unwrap();
    std::thread::sleep(lease * 2);
    assert!(a.lease_valid() && a.check_lease().unwrap());
    assert!(matches!(
        b.claim("chat", "room"),
        Err(ClusterError::Owned { .. })
    ));
    drop(renewal);
    std::thread::sleep(lease + MARGIN);
    assert!(!a.lease_valid());
    b.claim("chat", "room").unwrap();
}

#[test]
fn writes_racing_a_takeover_never_land_after_it() {
    // The old holder commits as fast as it can while the new one claims:
    // every write of the old holder is either in what the new one loaded
    // after its claim, or refused. Nothing of the old lands after the
    // takeover. (Same node id twice, so only the epoch decides.)
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("race").unwrap();
    let old = node(&url, "a", LONG);
    old.claim("chat", "room").unwrap();
    let writer = {
        let old = old.clone();
        std::thread::spawn(move || {
            let store = backend(&old);
            let mut written = Vec::new();
            for i in 0..10_000 {
                let key = format!("old-{i:05}");
                match store.commit(&[commit("chat", "room", &[(&key, Some("x"))])]) {
                    Ok(()) => written.push(key),
                    Err(StorageError::Fenced(_)) => return (written, true),
                    Err(other) => panic!("{other}"),
                }
            }
            (written, false)
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let new = node(&url, "a", LONG);
    new.claim("chat", "room").unwrap();
    let store = backend(&new);
    let seen = entries(&store.load("chat", "room").unwrap());
    store
        .commit(&[commit("chat", "room", &[("new", Some("y"))])])
        .unwrap();
    let (written, fenced) = writer.join().unwrap();
    assert!(fenced, "the old holder was never refused");
    assert!(!written.is_empty(), "the old holder wrote nothing first");
    let mut expected = seen.clone();
    expected.push(pair("new", "y"));
    expected.sort();
    let last = entries(&store.load("chat", "room").unwrap());
    assert_eq!(
        last, expected,
        "a write of the old holder landed after the takeover"
    );
    assert_eq!(
        seen.len(),
        written.len(),
        "an acknowledged write is missing"
    );
}

#[test]
fn the_renewal_thread_rejoins_without_claims_when_the_lease_lapsed() {
    // The database ends a's lease behind its back (as if its renewals had
    // not reached it in time) and b takes the room: a's renewal thread
    // finds the lease lapsed, joins again holding nothing, and a's writes
    // to the room are refused.
    let pg = PgServer::start().unwrap();
    let url = pg.create_database("rejoin").unwrap();
    let a = node(&url, "a", SHORT);
    let b = node(&url, "b", LONG);
    a.claim("chat", "room").unwrap();
    let _renewal = a.keep_renewed().unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    admin
        .execute(
            "UPDATE roomhost.nodes SET lease_until = now() - interval '1 second' WHERE id = 'a'",
            &[],
        )
        .unwrap();
    b.claim("chat", "room").unwrap();
    std::thread::sleep(SHORT / 4 + MARGIN);
    assert!(a.claims().list().is_empty(), "{:?}", a.claims().list());
    assert!(
        a.lease_valid() && a.check_lease().unwrap(),
        "a joined again"
    );
    let refused = backend(&a).commit(&[commit("chat", "room", &[("k", Some("a"))])]);
    assert!(
        matches!(refused, Err(StorageError::Fenced(_))),
        "{refused:?}"
    );
    assert!(matches!(
        a.claim("chat", "room"),
        Err(ClusterError::Owned { .. })
    ));
}
