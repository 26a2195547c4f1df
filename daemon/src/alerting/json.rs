//! The `/alerts` answer: every pending and firing alert with its state,
//! start time (RFC 3339), value, labels and annotations.

use serde_json::{Value, json};

use super::Alert;
use crate::status::rfc3339;

/// `{"alerts": [...]}` in rule order.
pub fn alerts_json(alerts: &[Alert]) -> Value {
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "name": a.name(),
                "state": a.state,
                "since": rfc3339(a.active_at),
                "fired_at": a.fired_at.map(rfc3339),
                "value": a.value,
                "labels": a.labels,
                "annotations": a.annotations,
                "fingerprint": format!("{:016x}", a.fingerprint()),
            })
        })
        .collect();
    json!({ "alerts": items })
}
