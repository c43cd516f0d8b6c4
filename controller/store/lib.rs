//! The store: an etcd-like key-value interface (revisioned get and list by
//! prefix, put, delete, compare-and-swap transactions, prefix watches,
//! leases) that the controller and server use without knowing the backend.
//!
//! # Layout
//!
//! - this file: the [`Store`] trait and its value types ([`KeyValue`],
//!   [`Txn`], [`Watch`], leases).
//! - [`embedded`]: the default backend: in-process, persisted in a state
//!   directory through a write-ahead log, crash-safe (an acknowledged write
//!   survives `kill -9`).
//! - [`etcd`] (feature `etcd`): the same trait on an etcd v3 cluster.
//! - `contract.rs` (tests): what every backend keeps, run against both.
//! - [`repair`]: `clusvc store check|repair`, offline.
//! - [`election`]: leader election on any backend, and [`election::Guarded`]
//!   writes that fail once the writer is no longer the leader.
//! - [`keys`]: where clusvc keeps what in the store (the key layout) and
//!   how values are encoded.
//!
//! Dependencies: none on other clusvc crates; the key layout names model
//! objects only by prefix, and values are opaque JSON.

#[cfg(test)]
mod contract;
pub mod election;
pub mod embedded;
#[cfg(feature = "etcd")]
pub mod etcd;
pub mod keys;
pub mod repair;

use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// A store revision: every change increments it.
pub type Revision = u64;

/// A lease identifier.
pub type LeaseId = u64;

/// A stored key with its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// Revision that created the key.
    pub create_revision: Revision,
    /// Revision of the last change.
    pub mod_revision: Revision,
    /// Number of changes since creation (1 after creation).
    pub version: u64,
    /// The lease the key is attached to.
    pub lease: Option<LeaseId>,
}

/// One condition of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's mod revision equals this (0 = the key does not exist).
    ModRevision(String, Revision),
    /// The key's value equals this.
    Value(String, Vec<u8>),
    /// The key exists.
    Exists(String),
    /// The key does not exist.
    Missing(String),
}

/// One write of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Set a key.
    Put {
        /// The key to set.
        key: String,
        /// Its new value.
        value: Vec<u8>,
        /// Attach to a lease.
        lease: Option<LeaseId>,
    },
    /// Remove a key.
    Delete {
        /// The key to remove.
        key: String,
    },
    /// Remove every key under a prefix.
    DeletePrefix {
        /// Every key starting with this is removed.
        prefix: String,
    },
}

/// A compare-and-swap transaction: if every compare holds, apply `success`,
/// else `failure`; atomically, as one revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Txn {
    /// Conditions that must all hold for `success` to be applied.
    pub compare: Vec<Compare>,
    /// Writes when they all hold.
    pub success: Vec<Write>,
    /// Writes otherwise.
    pub failure: Vec<Write>,
}

/// What a transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnResult {
    /// Whether the compares held.
    pub succeeded: bool,
    /// The store revision after it.
    pub revision: Revision,
}

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    /// A key was created or changed.
    Put(KeyValue),
    /// A key was removed (its last value).
    Delete(KeyValue),
}

impl WatchEvent {
    /// The key concerned.
    pub fn key(&self) -> &str {
        match self {
            WatchEvent::Put(kv) | WatchEvent::Delete(kv) => &kv.key,
        }
    }
}

/// A snapshot of a prefix and the stream of later changes.
pub struct Watch {
    /// Keys under the prefix at `revision`.
    pub initial: Vec<KeyValue>,
    /// The revision of the snapshot; events follow it.
    pub revision: Revision,
    /// Changes after `revision`, in order.
    pub events: mpsc::UnboundedReceiver<(Revision, WatchEvent)>,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The state directory or log could not be used.
    #[error("store I/O on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The log or snapshot is damaged beyond its torn tail.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// A lease that does not exist (expired or revoked).
    #[error("lease {0} not found")]
    LeaseNotFound(LeaseId),
    /// The backend is unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend refused a transaction for its size (etcd's
    /// `--max-txn-ops` or `--max-request-bytes`); nothing was written.
    #[error(
        "the change is too large for one store transaction ({0}); nothing was written: \
         run etcd with a larger --max-txn-ops and --max-request-bytes (see docs/cluster.md) \
         or apply the objects in smaller parts"
    )]
    TooLarge(String),
    /// A guarded write of a leader that has been deposed.
    #[error("not the leader any more (elected at revision {0}; another server leads now)")]
    NotLeader(Revision),
}

/// Result of store calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operations every backend provides.
pub trait Store: Send + Sync + 'static {
    /// One key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<KeyValue>>> + Send;
    /// Every key under a prefix, sorted, and the current revision.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<(Vec<KeyValue>, Revision)>> + Send;
    /// A transaction.
    fn txn(&self, txn: Txn) -> impl Future<Output = Result<TxnResult>> + Send;
    /// A snapshot of a prefix plus its changes from then on.
    fn watch(&self, prefix: &str) -> impl Future<Output = Result<Watch>> + Send;
    /// A new lease of `ttl`.
    fn grant(&self, ttl: Duration) -> impl Future<Output = Result<LeaseId>> + Send;
    /// Renews a lease.
    fn keepalive(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;
    /// Ends a lease now, deleting its keys.
    fn revoke(&self, lease: LeaseId) -> impl Future<Output = Result<()>> + Send;

    /// Sets a key (unconditionally).
    fn put(&self, key: &str, value: Vec<u8>) -> impl Future<Output = Result<Revision>> + Send {
        let txn = Txn {
            success: vec![Write::Put {
                key: key.to_string(),
                value,
                lease: None,
            }],
            ..Txn::default()
        };
        async move { Ok(self.txn(txn).await?.revision) }
    }

    /// Removes a key (unconditionally).
    fn delete(&self, key: &str) -> impl Future<Output = Result<Revision>> + Send {
        let txn = Txn {
            success: vec![Write::Delete {
                key: key.to_string(),
            }],
            ..Txn::default()
        };
        async move { Ok(self.txn(txn).await?.revision) }
    }
}
