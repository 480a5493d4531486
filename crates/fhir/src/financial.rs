//! What the Payer-to-Payer exchange leaves out of a claim: provider remittances and member
//! cost-sharing (CMS-0057-F; PDex 2.2 payload, CARIN BB "Basis").

use serde_json::{Map, Value};

/// Removes provider remittances and member cost-sharing from a claim: totals, payment, benefit
/// balances, and every adjudication amount or value (CARIN BB "Basis" keeps none of them).
pub fn strip_financial(eob: &mut Map<String, Value>) {
    eob.remove("total");
    eob.remove("payment");
    eob.remove("benefitBalance");
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Array(adjudications)) = map.get_mut("adjudication") {
                    for adjudication in adjudications.iter_mut() {
                        if let Some(a) = adjudication.as_object_mut() {
                            a.remove("amount");
                            a.remove("value");
                        }
                    }
                }
                for field in ["net", "unitPrice", "factor"] {
                    map.remove(field);
                }
                for child in map.values_mut() {
                    walk(child);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    for field in ["item", "addItem", "adjudication"] {
        if let Some(value) = eob.get_mut(field) {
            walk(value);
        }
    }
}
