//! A store's mail, prepared with each install: the relay's login as a Secret in the store namespace,
//! and the `MailConfigured` condition saying what the release gets.
//!
//! The login goes into a Secret the controller writes, not into helm values: values are kept in
//! every release revision (helm keeps ten) and shown by `helm get values`, so a rotated password
//! would linger there; the Secret holds only the current one, and the chart only names it.
use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};

use super::status::{self, FIELD_MANAGER, MAIL_CONFIGURED};
use super::{Context, Result};
use crate::crd::{LABEL_MANAGED_BY, LABEL_STORE_ID, MANAGED_BY, StoreCondition};
use crate::domain::StoreId;
use crate::mail::{MailRelay, StoreMailValues};

/// `<store id>-mail-relay`, keys `username` and `password` (what the chart's secretKeyRefs read).
pub fn secret_name(id: &StoreId) -> String {
    format!("{id}-mail-relay")
}

/// Writes the login Secret (when the relay wants one), sets `MailConfigured`, and answers the
/// store's `mail` values. Runs right before `helm upgrade --install`, so the Secret exists when the
/// pods that read it are created, and a changed login reaches the store with its next install.
pub async fn prepare(
    ctx: &Context,
    id: &StoreId,
    conditions: &mut Vec<StoreCondition>,
    generation: Option<i64>,
) -> Result<Option<StoreMailValues>> {
    let Some(relay) = &ctx.mail else {
        status::set_condition(
            conditions,
            MAIL_CONFIGURED,
            false,
            "NoRelay",
            "no SMTP relay is configured on the platform (storefleet serve --smtp-host; \
             docs/production.md): the store sends no mail, not even order confirmations",
            generation,
        );
        return Ok(None);
    };
    let credentials = match &relay.login {
        Some(_) => {
            apply_secret(ctx, id, relay).await?;
            Some(secret_name(id))
        }
        None => None,
    };
    status::set_condition(
        conditions,
        MAIL_CONFIGURED,
        true,
        "RelayConfigured",
        relay.describe(),
        generation,
    );
    Ok(Some(relay.values(credentials)))
}

/// Server-side apply, so a repeat is a no-op and a rotated password replaces the old one.
async fn apply_secret(ctx: &Context, id: &StoreId, relay: &MailRelay) -> kube::Result<()> {
    let Some(login) = &relay.login else {
        return Ok(());
    };
    let data = BTreeMap::from([
        (
            "username".to_owned(),
            ByteString(login.username.clone().into_bytes()),
        ),
        (
            "password".to_owned(),
            ByteString(login.password.clone().into_bytes()),
        ),
    ]);
    let mut secret = Secret {
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    secret.metadata.name = Some(secret_name(id));
    secret.metadata.labels = Some(BTreeMap::from([
        (LABEL_STORE_ID.to_owned(), id.to_string()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY.to_owned()),
    ]));
    let mut patch = serde_json::to_value(&secret).expect("a Secret serialises");
    patch["apiVersion"] = Secret::api_version(&()).into();
    patch["kind"] = Secret::kind(&()).into();
    Api::<Secret>::namespaced(ctx.client.clone(), id.as_str())
        .patch(
            &secret_name(id),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    Ok(())
}
