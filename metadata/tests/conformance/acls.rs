//! ACLs: added idempotently, listed in a stable order, deleted exactly.

use streamhouse_metadata::acls::{
    AclBinding, AclOperation, AclPermission, PatternType, ResourceType,
};
use streamhouse_metadata::Catalog;

fn acl(name: &str, pattern: PatternType, principal: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.to_owned(),
        pattern_type: pattern,
        principal: principal.to_owned(),
        host: "*".to_owned(),
        operation: op,
        permission: AclPermission::Allow,
    }
}

pub async fn acls_are_added_once_listed_and_deleted_exactly(catalog: &dyn Catalog) {
    use AclOperation::{Read, Write};
    use PatternType::{Literal, Prefixed};
    assert_eq!(catalog.acls().await.unwrap(), vec![]);

    let read = acl("orders", Literal, "User:alice", Read);
    let write = acl("orders", Literal, "User:alice", Write);
    let prefixed = acl("orders", Prefixed, "User:bob", Read);
    let mut denied = acl("orders", Literal, "User:alice", Read);
    denied.permission = AclPermission::Deny;
    let mut group = acl("app", Literal, "User:*", Read);
    group.resource_type = ResourceType::Group;
    group.host = "10.0.0.1".to_owned();
    catalog
        .create_acls(&[write.clone(), read.clone(), prefixed.clone()])
        .await
        .unwrap();
    // Adding one again (and in the same call twice) keeps one of each.
    catalog
        .create_acls(&[read.clone(), denied.clone(), group.clone(), group.clone()])
        .await
        .unwrap();
    let mut expected = vec![
        read.clone(),
        write.clone(),
        prefixed.clone(),
        denied.clone(),
        group.clone(),
    ];
    expected.sort();
    assert_eq!(catalog.acls().await.unwrap(), expected);

    // Only exact matches go, and only what was stored is reported.
    let absent = acl("orders", Literal, "User:carol", Read);
    let deleted = catalog
        .delete_acls(&[denied.clone(), absent, group.clone()])
        .await
        .unwrap();
    assert_eq!(deleted, vec![denied, group]);
    let mut left = vec![read, write, prefixed];
    left.sort();
    assert_eq!(catalog.acls().await.unwrap(), left);
}
