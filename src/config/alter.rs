//! The operations of IncrementalAlterConfigs (Kafka's `AlterConfigOp.OpType`):
//! which changes are well-formed, and a topic's config set after them.

use std::collections::BTreeMap;

use super::topic::{self, list_items};
use super::ConfigType;

pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// One change, checked for shape by [`Change::new`].
pub struct Change {
    pub name: String,
    pub op: i8,
    /// Empty for DELETE.
    pub value: String,
}

impl Change {
    /// The change a client asked for, or Kafka's message for one that fits no
    /// value (INVALID_REQUEST): an unknown operation, or APPEND or SUBTRACT on
    /// a config that is not a list.
    pub fn new(name: String, op: i8, value: String) -> Result<Change, String> {
        match op {
            OP_SET | OP_DELETE => {}
            OP_APPEND | OP_SUBTRACT => {
                let is_list = topic::definition(&name).is_some_and(|d| d.kind == ConfigType::List);
                if !is_list {
                    let verb = if op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(format!(
                        "Config value {verb} is not allowed for config key: {name}"
                    ));
                }
            }
            op => {
                return Err(format!(
                    "Unknown config operation {op} for config key: {name}"
                ))
            }
        }
        Ok(Change { name, op, value })
    }
}

/// The config set after `changes`. APPEND and SUBTRACT start from the current
/// value, or Kafka's default when the topic does not set the key, and keep the
/// items' order, as Kafka does.
pub fn changed(current: &BTreeMap<String, String>, changes: &[Change]) -> BTreeMap<String, String> {
    let mut configs = current.clone();
    for change in changes {
        match change.op {
            OP_SET => {
                configs.insert(change.name.clone(), change.value.clone());
            }
            OP_DELETE => {
                configs.remove(&change.name);
            }
            op => {
                let default = topic::definition(&change.name).map_or("", |d| d.default);
                let old = configs.get(&change.name).map_or(default, String::as_str);
                let mut items: Vec<&str> = list_items(old);
                let given = list_items(&change.value);
                if op == OP_APPEND {
                    for item in given {
                        if !items.contains(&item) {
                            items.push(item);
                        }
                    }
                } else {
                    items.retain(|item| !given.contains(item));
                }
                let joined = items.join(",");
                configs.insert(change.name.clone(), joined);
            }
        }
    }
    configs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, op: i8, value: &str) -> Change {
        Change::new(name.into(), op, value.into()).unwrap()
    }

    #[test]
    fn list_operations_start_from_the_default_and_skip_duplicates() {
        let none = BTreeMap::new();
        let appended = changed(
            &none,
            &[change("cleanup.policy", OP_APPEND, "compact,delete")],
        );
        assert_eq!(appended["cleanup.policy"], "delete,compact");
        let subtracted = changed(
            &appended,
            &[change("cleanup.policy", OP_SUBTRACT, "delete")],
        );
        assert_eq!(subtracted["cleanup.policy"], "compact");
        let deleted = changed(&subtracted, &[change("cleanup.policy", OP_DELETE, "")]);
        assert!(deleted.is_empty());
    }

    #[test]
    fn list_operations_on_other_configs_and_unknown_operations_are_refused() {
        let refused = |name: &str, op: i8| Change::new(name.into(), op, "1".into()).err();
        assert_eq!(
            refused("retention.ms", OP_APPEND).as_deref(),
            Some("Config value append is not allowed for config key: retention.ms")
        );
        assert_eq!(
            refused("retention.ms", OP_SUBTRACT).as_deref(),
            Some("Config value subtract is not allowed for config key: retention.ms")
        );
        assert_eq!(
            refused("cleanup.policy", 7).as_deref(),
            Some("Unknown config operation 7 for config key: cleanup.policy")
        );
        assert_eq!(refused("retention.ms", OP_SET), None);
    }
}
