//! Client quotas: stored per entity and key, replaced and removed.

use std::collections::BTreeMap;

use streamhouse_metadata::quotas::{ClientQuota, EntityName, QuotaAlteration, QuotaEntity};
use streamhouse_metadata::Catalog;

fn named(name: &str) -> Option<EntityName> {
    Some(EntityName::Named(name.to_owned()))
}

fn set(entity: &QuotaEntity, key: &str, value: f64) -> QuotaAlteration {
    QuotaAlteration {
        entity: entity.clone(),
        set: vec![(key.to_owned(), value)],
        remove: Vec::new(),
    }
}

pub async fn client_quotas_are_set_replaced_and_removed(catalog: &dyn Catalog) {
    assert_eq!(catalog.client_quotas().await.unwrap(), vec![]);
    let client = QuotaEntity {
        user: None,
        client_id: named("c1"),
    };
    // A default and a name that looks like nothing are different entities.
    let default_client = QuotaEntity {
        user: None,
        client_id: Some(EntityName::Default),
    };
    let empty_client = QuotaEntity {
        user: None,
        client_id: named(""),
    };
    let user_and_client = QuotaEntity {
        user: named("alice"),
        client_id: Some(EntityName::Default),
    };
    catalog
        .alter_client_quotas(&[
            set(&client, "producer_byte_rate", 1_048_576.0),
            set(&client, "consumer_byte_rate", 2_000_000.5),
            set(&default_client, "producer_byte_rate", 10.0),
            set(&empty_client, "producer_byte_rate", 20.0),
            set(&user_and_client, "consumer_byte_rate", 30.0),
        ])
        .await
        .unwrap();
    // Replacing one key and removing another (and one that is not there).
    catalog
        .alter_client_quotas(&[QuotaAlteration {
            entity: client.clone(),
            set: vec![("producer_byte_rate".into(), 512.0)],
            remove: vec!["consumer_byte_rate".into(), "request_percentage".into()],
        }])
        .await
        .unwrap();
    let quota = |entity: &QuotaEntity, values: &[(&str, f64)]| ClientQuota {
        entity: entity.clone(),
        values: values
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
    };
    assert_eq!(
        catalog.client_quotas().await.unwrap(),
        vec![
            quota(&default_client, &[("producer_byte_rate", 10.0)]),
            quota(&empty_client, &[("producer_byte_rate", 20.0)]),
            quota(&client, &[("producer_byte_rate", 512.0)]),
            quota(&user_and_client, &[("consumer_byte_rate", 30.0)]),
        ]
    );
    // An entity whose last key goes is gone.
    catalog
        .alter_client_quotas(&[QuotaAlteration {
            entity: client.clone(),
            set: Vec::new(),
            remove: vec!["producer_byte_rate".into()],
        }])
        .await
        .unwrap();
    assert!(catalog
        .client_quotas()
        .await
        .unwrap()
        .iter()
        .all(|q| q.entity != client));
}
