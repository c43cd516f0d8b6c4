//! The contract every backend keeps, as tests generic over [`Store`]: the
//! embedded backend runs them always, the etcd backend against a real
//! etcd (feature `etcd`). Each function takes a store whose keys under
//! `p` are its own.

use std::time::Duration;

use crate::{Compare, Error, Store, Txn, WatchEvent, Write};

fn put(key: &str, value: &str) -> Write {
    Write::Put {
        key: key.into(),
        value: value.into(),
        lease: None,
    }
}

/// Revisions grow; a key's create and mod revisions and version follow its
/// writes; lists are sorted and stay under their prefix.
pub async fn revisions_and_lists<S: Store>(s: &S, p: &str) {
    let r1 = s.put(&format!("{p}b"), b"1".to_vec()).await.unwrap();
    let r2 = s.put(&format!("{p}a"), b"2".to_vec()).await.unwrap();
    let r3 = s.put(&format!("{p}b"), b"3".to_vec()).await.unwrap();
    assert!(r1 < r2 && r2 < r3, "{r1} {r2} {r3}");
    let b = s.get(&format!("{p}b")).await.unwrap().unwrap();
    assert_eq!(
        (
            b.value.as_slice(),
            b.create_revision,
            b.mod_revision,
            b.version
        ),
        (&b"3"[..], r1, r3, 2)
    );
    s.put(&format!("{p}x/inner"), b"4".to_vec()).await.unwrap();
    s.put(p, b"self".to_vec()).await.unwrap();
    let (kvs, rev) = s.list(&format!("{p}x/")).await.unwrap();
    assert_eq!(kvs.len(), 1);
    assert!(rev >= r3);
    let (all, _) = s.list(p).await.unwrap();
    let keys: Vec<&str> = all.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            p.to_string(),
            format!("{p}a"),
            format!("{p}b"),
            format!("{p}x/inner")
        ]
    );
    assert!(s.get(&format!("{p}missing")).await.unwrap().is_none());
}

/// Compares decide between the two branches, atomically.
pub async fn compare_and_swap<S: Store>(s: &S, p: &str) {
    let k = format!("{p}k");
    let r = s.put(&k, b"v1".to_vec()).await.unwrap();
    // Stale revision: the failure branch runs instead.
    let t = s
        .txn(Txn {
            compare: vec![Compare::ModRevision(k.clone(), r - 1)],
            success: vec![put(&k, "wrong")],
            failure: vec![put(&format!("{p}lost"), "yes")],
        })
        .await
        .unwrap();
    assert!(!t.succeeded);
    assert_eq!(s.get(&k).await.unwrap().unwrap().value, b"v1");
    assert!(s.get(&format!("{p}lost")).await.unwrap().is_some());
    let t = s
        .txn(Txn {
            compare: vec![
                Compare::ModRevision(k.clone(), r),
                Compare::Value(k.clone(), b"v1".to_vec()),
                Compare::Exists(k.clone()),
                Compare::Missing(format!("{p}nothing")),
                // 0 = the key does not exist.
                Compare::ModRevision(format!("{p}nothing"), 0),
            ],
            success: vec![put(&k, "v2"), put(&format!("{p}k2"), "w")],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(t.succeeded);
    let k2 = s.get(&format!("{p}k2")).await.unwrap().unwrap();
    assert_eq!(
        k2.mod_revision, t.revision,
        "one revision for the whole txn"
    );
    assert_eq!(s.get(&k).await.unwrap().unwrap().mod_revision, t.revision);
    // Exists on a missing key fails.
    let t = s
        .txn(Txn {
            compare: vec![Compare::Exists(format!("{p}nothing"))],
            success: vec![put(&k, "v3")],
            failure: vec![],
        })
        .await
        .unwrap();
    assert!(!t.succeeded);
    assert_eq!(s.get(&k).await.unwrap().unwrap().value, b"v2");
}

/// Deletes, one key or a prefix.
pub async fn deletes<S: Store>(s: &S, p: &str) {
    for k in ["d/1", "d/2", "e"] {
        s.put(&format!("{p}{k}"), b"v".to_vec()).await.unwrap();
    }
    s.delete(&format!("{p}e")).await.unwrap();
    assert!(s.get(&format!("{p}e")).await.unwrap().is_none());
    s.txn(Txn {
        success: vec![Write::DeletePrefix {
            prefix: format!("{p}d/"),
        }],
        ..Txn::default()
    })
    .await
    .unwrap();
    assert!(s.list(&format!("{p}d/")).await.unwrap().0.is_empty());
}

async fn next(w: &mut crate::Watch) -> (crate::Revision, WatchEvent) {
    tokio::time::timeout(Duration::from_secs(10), w.events.recv())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch is open")
}

/// A watch starts from a snapshot and delivers every later change under
/// its prefix, in order; a delete carries the last value.
pub async fn watches<S: Store>(s: &S, p: &str) {
    s.put(&format!("{p}w/before"), b"0".to_vec()).await.unwrap();
    let mut w = s.watch(&format!("{p}w/")).await.unwrap();
    assert_eq!(w.initial.len(), 1);
    let r1 = s.put(&format!("{p}w/a"), b"1".to_vec()).await.unwrap();
    s.put(&format!("{p}elsewhere"), b"x".to_vec())
        .await
        .unwrap();
    let r2 = s.delete(&format!("{p}w/before")).await.unwrap();
    let (rev, e) = next(&mut w).await;
    assert!(w.revision < rev);
    assert_eq!(rev, r1);
    assert!(
        matches!(&e, WatchEvent::Put(kv) if kv.value == b"1"),
        "{e:?}"
    );
    let (rev, e) = next(&mut w).await;
    assert_eq!(rev, r2);
    assert!(
        matches!(&e, WatchEvent::Delete(kv) if kv.key.ends_with("w/before") && kv.value == b"0"),
        "{e:?}"
    );
}

/// Leases: keys attached to one vanish when it expires or is revoked;
/// renewing keeps it; an unknown lease is an error.
pub async fn leases<S: Store>(s: &S, p: &str) {
    let l = s.grant(Duration::from_secs(2)).await.unwrap();
    let k = format!("{p}leased");
    s.txn(Txn {
        success: vec![Write::Put {
            key: k.clone(),
            value: b"alive".to_vec(),
            lease: Some(l),
        }],
        ..Txn::default()
    })
    .await
    .unwrap();
    assert_eq!(s.get(&k).await.unwrap().unwrap().lease, Some(l));
    // Renewed for 4 s: still there.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.keepalive(l).await.unwrap();
    }
    assert!(s.get(&k).await.unwrap().is_some());
    // Not renewed: gone (etcd may take a little longer than the TTL).
    let gone = async {
        while s.get(&k).await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("the leased key vanishes after expiry");
    assert!(matches!(s.keepalive(l).await, Err(Error::LeaseNotFound(_))));
    // Revoke deletes at once.
    let l2 = s.grant(Duration::from_secs(30)).await.unwrap();
    s.txn(Txn {
        success: vec![Write::Put {
            key: k.clone(),
            value: b"again".to_vec(),
            lease: Some(l2),
        }],
        ..Txn::default()
    })
    .await
    .unwrap();
    s.revoke(l2).await.unwrap();
    assert!(s.get(&k).await.unwrap().is_none());
    // Writing with a lease that does not exist fails.
    let r = s
        .txn(Txn {
            success: vec![Write::Put {
                key: k.clone(),
                value: b"x".to_vec(),
                lease: Some(l2),
            }],
            ..Txn::default()
        })
        .await;
    assert!(r.is_err(), "{r:?}");
}

/// Every part of the contract, each under its own prefix of `root`.
pub async fn all<S: Store>(s: &S, root: &str) {
    revisions_and_lists(s, &format!("{root}/lists/")).await;
    compare_and_swap(s, &format!("{root}/cas/")).await;
    deletes(s, &format!("{root}/del/")).await;
    watches(s, &format!("{root}/watch/")).await;
    leases(s, &format!("{root}/lease/")).await;
}
