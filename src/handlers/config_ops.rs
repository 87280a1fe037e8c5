//! The operations of IncrementalAlterConfigs applied to a topic's config set.

use std::collections::BTreeMap;

use crate::topic_config::{self, list_items};

pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// One change, already checked for shape (known operation, list type for
/// APPEND and SUBTRACT, a value unless DELETE).
pub struct Change {
    pub name: String,
    pub op: i8,
    pub value: String,
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
                let default = topic_config::definition(&change.name).map_or("", |d| d.default);
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
        Change {
            name: name.into(),
            op,
            value: value.into(),
        }
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
}
