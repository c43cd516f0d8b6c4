//! The machine's own member: `clusvc run` declares it when no manifest
//! does, so a single machine needs no Member manifest.

use clusvc_core::api::SOURCE_ANNOTATION;
use clusvc_core::model::{Member, Object, desired};
use clusvc_store::{Compare, Store, Txn, Write, keys};

/// The source of the member `clusvc run` declares for itself.
pub const LOCAL_SOURCE: &str = "local";

/// Why the local member could not be declared.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The name is not a DNS label.
    #[error("member name {0:?} is not a DNS label; pass --member NAME")]
    Name(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] clusvc_store::Error),
}

/// Declares `member` unless an object of that name exists (from manifests,
/// an apply or an earlier start); the write is a compare-and-swap on its
/// absence, so a concurrent apply wins.
pub async fn declare_local<S: Store>(store: &S, member: &str) -> Result<(), Error> {
    let key = format!("{}{member}", keys::MEMBERS);
    if store.get(&key).await?.is_some() {
        return Ok(());
    }
    let mut m = Member::new(member);
    if desired::check(&[Object::Member(m.clone())])
        .iter()
        .any(|i| i.path == "metadata.name")
    {
        return Err(Error::Name(member.to_string()));
    }
    m.metadata
        .annotations
        .insert(SOURCE_ANNOTATION.to_string(), LOCAL_SOURCE.to_string());
    store
        .txn(Txn {
            compare: vec![Compare::Missing(key.clone())],
            success: vec![Write::Put {
                key,
                value: keys::encode(&m),
                lease: None,
            }],
            failure: vec![],
        })
        .await?;
    Ok(())
}
