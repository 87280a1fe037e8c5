//! SCRAM credentials: stored, replaced, listed and deleted per user and
//! mechanism.

use streamhouse_metadata::credentials::{ScramCredential, ScramMechanism};
use streamhouse_metadata::Catalog;

fn credential(user: &str, mechanism: ScramMechanism, key: u8) -> ScramCredential {
    ScramCredential {
        user: user.to_owned(),
        mechanism,
        salt: vec![key; 32],
        iterations: 4096,
        stored_key: vec![key.wrapping_add(1); 64],
        server_key: (0..=255).collect(),
    }
}

pub async fn scram_credentials_are_stored_replaced_and_deleted(catalog: &dyn Catalog) {
    use ScramMechanism::{Sha256, Sha512};
    assert_eq!(catalog.scram_credentials().await.unwrap(), vec![]);
    assert_eq!(
        catalog.scram_credential("alice", Sha256).await.unwrap(),
        None
    );

    let alice_256 = credential("alice", Sha256, 1);
    let alice_512 = credential("alice", Sha512, 2);
    let bob_512 = credential("bob", Sha512, 3);
    for c in [&bob_512, &alice_512, &alice_256] {
        catalog.upsert_scram_credential(c).await.unwrap();
    }
    assert_eq!(
        catalog.scram_credential("alice", Sha512).await.unwrap(),
        Some(alice_512.clone())
    );
    assert_eq!(catalog.scram_credential("bob", Sha256).await.unwrap(), None);
    assert_eq!(
        catalog.scram_credentials().await.unwrap(),
        vec![alice_256.clone(), alice_512.clone(), bob_512.clone()]
    );

    // A new password replaces the mechanism's credential, nothing else.
    let mut replaced = credential("alice", Sha512, 9);
    replaced.iterations = 8192;
    catalog.upsert_scram_credential(&replaced).await.unwrap();
    assert_eq!(
        catalog.scram_credential("alice", Sha512).await.unwrap(),
        Some(replaced)
    );
    assert_eq!(
        catalog.scram_credential("alice", Sha256).await.unwrap(),
        Some(alice_256)
    );

    assert!(catalog
        .delete_scram_credential("alice", Sha256)
        .await
        .unwrap());
    assert!(!catalog
        .delete_scram_credential("alice", Sha256)
        .await
        .unwrap());
    assert!(!catalog
        .delete_scram_credential("carol", Sha512)
        .await
        .unwrap());
    let users: Vec<(String, ScramMechanism)> = catalog
        .scram_credentials()
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.user, c.mechanism))
        .collect();
    assert_eq!(
        users,
        vec![("alice".to_owned(), Sha512), ("bob".to_owned(), Sha512)]
    );
}
