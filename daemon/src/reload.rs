//! What a reload changes: which checks keep running untouched, which start
//! afresh, which stop.
//!
//! A check is kept when nothing about it changed: the same settings, the
//! same plugin section, and the very same loaded library (a plugin file
//! replaced on disk is a new library). Kept checks keep their schedule,
//! rise/fall state and history; every other check starts pending.

use std::sync::Arc;

use crate::config::{CheckConfig, Config};
use crate::plugin::Catalog;

/// The difference between the running and the new set of checks.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CheckPlan {
    /// Unchanged checks, left alone.
    pub keep: Vec<String>,
    /// New or changed checks, (re)started.
    pub start: Vec<String>,
    /// Checks no longer configured, or replaced by a changed one.
    pub stop: Vec<String>,
}

/// Whether two configured checks are the same apart from where they stand
/// in the file.
fn same_settings(a: &CheckConfig, b: &CheckConfig) -> bool {
    a.name == b.name
        && a.plugin == b.plugin
        && a.interval == b.interval
        && a.timeout == b.timeout
        && a.critical == b.critical
        && a.fall == b.fall
        && a.rise == b.rise
        && a.stale_after == b.stale_after
        && a.isolation == b.isolation
        && a.config == b.config
}

/// Compares the running config and catalog with the new ones.
pub fn plan(old: &Config, old_catalog: &Catalog, new: &Config, new_catalog: &Catalog) -> CheckPlan {
    let mut plan = CheckPlan::default();
    for check in &new.checks {
        let unchanged = old.check(&check.name).is_some_and(|before| {
            same_settings(before, check)
                && match (
                    old_catalog.get(&before.plugin),
                    new_catalog.get(&check.plugin),
                ) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                }
        });
        if unchanged {
            plan.keep.push(check.name.clone());
        } else {
            if old.check(&check.name).is_some() {
                plan.stop.push(check.name.clone());
            }
            plan.start.push(check.name.clone());
        }
    }
    for check in &old.checks {
        if new.check(&check.name).is_none() {
            plan.stop.push(check.name.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Origin;

    fn config(text: &str) -> Config {
        Config::parse(text, Origin::File("t.toml".into())).unwrap()
    }

    #[test]
    fn unchanged_checks_are_kept_and_the_rest_restarted() {
        let old = config(
            "[[check]]\nname = \"a\"\nplugin = \"x\"\n\n[[check]]\nname = \"b\"\nplugin = \"x\"\n\n\
             [[check]]\nname = \"gone\"\nplugin = \"x\"\n",
        );
        let new = config(
            "[[check]]\nname = \"b\"\nplugin = \"x\"\ninterval = \"5s\"\n\n\
             [[check]]\nname = \"a\"\nplugin = \"x\"\n\n[[check]]\nname = \"new\"\nplugin = \"x\"\n",
        );
        // No plugin libraries: nothing can be proven unchanged.
        let empty = Catalog::default();
        let plan = plan(&old, &empty, &new, &empty);
        assert_eq!(plan.keep, Vec::<String>::new());
        assert_eq!(plan.start, ["b", "a", "new"]);
        assert_eq!(plan.stop, ["b", "a", "gone"]);
        assert!(same_settings(
            old.check("a").unwrap(),
            new.check("a").unwrap()
        ));
        assert!(!same_settings(
            old.check("b").unwrap(),
            new.check("b").unwrap()
        ));
    }
}
