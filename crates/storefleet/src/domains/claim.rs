//! Claiming and releasing domains: the `StoreDomain` objects. The API server decides who wins a
//! race (one object per name), so two stores asking for one domain at once get one 201 and one 409,
//! on any number of control plane replicas.
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Api, Client, ResourceExt};

use super::name::DomainName;
use super::types::{DomainClaim, DomainClaimSpec};
use crate::crd::{LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_STORE_ID, MANAGED_BY};
use crate::domain::StoreId;

/// How a claim went.
#[derive(Debug)]
pub enum Claimed {
    /// A new claim: this request made it (undo it if the request fails later).
    New(DomainClaim),
    /// This store already held it (a repeated request, or one cut short before).
    Already(DomainClaim),
    /// Another store holds it. Which one is never said to the caller.
    Taken,
}

pub fn api(client: &Client) -> Api<DomainClaim> {
    Api::all(client.clone())
}

pub async fn claim(
    client: &Client,
    domain: &DomainName,
    store: &StoreId,
    instance: &str,
) -> kube::Result<Claimed> {
    let api = api(client);
    let mut object = DomainClaim::new(
        domain.as_str(),
        DomainClaimSpec {
            store_id: store.to_string(),
        },
    );
    let labels = object.labels_mut();
    labels.insert(LABEL_STORE_ID.into(), store.to_string());
    labels.insert(LABEL_INSTANCE.into(), instance.to_owned());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    match api.create(&PostParams::default(), &object).await {
        Ok(created) => Ok(Claimed::New(created)),
        Err(kube::Error::Api(e)) if e.code == 409 => match api.get_opt(domain.as_str()).await? {
            Some(existing) if existing.spec.store_id == store.as_str() => {
                Ok(Claimed::Already(existing))
            }
            Some(_) => Ok(Claimed::Taken),
            // Released between our create and our read: try once more (a second loss is a 409).
            None => match api.create(&PostParams::default(), &object).await {
                Ok(created) => Ok(Claimed::New(created)),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(Claimed::Taken),
                Err(e) => Err(e),
            },
        },
        Err(e) => Err(e),
    }
}

/// Releases `domain` if `store` holds it: that very object (uid precondition), so a claim another
/// store made since is never deleted.
pub async fn release(client: &Client, domain: &str, store: &str) -> kube::Result<bool> {
    let api = api(client);
    let Some(claim) = api.get_opt(domain).await? else {
        return Ok(false);
    };
    if claim.spec.store_id != store {
        return Ok(false);
    }
    delete_exactly(&api, &claim).await
}

pub(super) async fn delete_exactly(
    api: &Api<DomainClaim>,
    claim: &DomainClaim,
) -> kube::Result<bool> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: claim.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match api.delete(&claim.name_any(), &params).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every claim of a store (by its label), e.g. to release them all when the store is gone.
pub async fn of_store(client: &Client, store: &str) -> kube::Result<Vec<DomainClaim>> {
    let listed = api(client)
        .list(&ListParams::default().labels(&format!("{LABEL_STORE_ID}={store}")))
        .await;
    let list = match listed {
        Ok(list) => list,
        // No StoreDomain CRD on this cluster: no store ever claimed a domain here. A store's
        // deletion must not wait for a CRD that will never come.
        Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(list
        .items
        .into_iter()
        .filter(|c| c.spec.store_id == store)
        .collect())
}

/// Releases every domain of a deleted store, so other stores may claim them. Answers the domains.
pub async fn release_store(client: &Client, store: &str) -> kube::Result<Vec<String>> {
    let api = api(client);
    let mut released = Vec::new();
    for claim in of_store(client, store).await? {
        if delete_exactly(&api, &claim).await? {
            released.push(claim.name_any());
        }
    }
    Ok(released)
}
