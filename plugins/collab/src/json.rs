//! Converting between yrs's [`Any`] values and JSON.
//!
//! Numbers follow JavaScript: integers within ±(2^53 − 1) stay integers
//! (Yjs decodes them as numbers), anything else becomes a float. Binary
//! buffers come out as arrays of byte values; `undefined`, NaN and the
//! infinities as `null`.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Number as JsonNumber, Value};
use yrs::any::{F64_MAX_SAFE_INTEGER, F64_MIN_SAFE_INTEGER};
use yrs::{Any, Number};

/// `value` as a JSON value.
pub fn any_to_json(value: &Any) -> Value {
    match value {
        Any::Null | Any::Undefined => Value::Null,
        Any::Bool(flag) => Value::Bool(*flag),
        Any::Number(Number::Int(int)) => Value::from(*int),
        Any::Number(Number::Float(float)) => {
            JsonNumber::from_f64(*float).map_or(Value::Null, Value::Number)
        }
        Any::String(text) => Value::String(text.to_string()),
        Any::Buffer(bytes) => Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
        Any::Array(items) => Value::Array(items.iter().map(any_to_json).collect()),
        Any::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), any_to_json(item)))
                .collect::<Map<String, Value>>(),
        ),
    }
}

/// `value` as a yrs [`Any`], to store in a shared type.
pub fn json_to_any(value: &Value) -> Any {
    match value {
        Value::Null => Any::Null,
        Value::Bool(flag) => Any::Bool(*flag),
        Value::Number(number) => Any::Number(json_number(number)),
        Value::String(text) => Any::String(Arc::from(text.as_str())),
        Value::Array(items) => Any::Array(items.iter().map(json_to_any).collect()),
        Value::Object(entries) => Any::Map(Arc::new(
            entries
                .iter()
                .map(|(key, item)| (key.clone(), json_to_any(item)))
                .collect::<HashMap<String, Any>>(),
        )),
    }
}

fn json_number(number: &JsonNumber) -> Number {
    match number.as_i64() {
        Some(int) if (F64_MIN_SAFE_INTEGER..=F64_MAX_SAFE_INTEGER).contains(&(int as f64)) => {
            Number::Int(int)
        }
        _ => Number::Float(number.as_f64().unwrap_or(f64::NAN)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trip() {
        let value = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -7}});
        assert_eq!(any_to_json(&json_to_any(&value)), value);
    }

    #[test]
    fn unsafe_integers_become_floats() {
        let any = json_to_any(&json!(9_007_199_254_740_993_u64));
        assert!(matches!(any, Any::Number(Number::Float(_))));
        assert!(matches!(
            json_to_any(&json!(42)),
            Any::Number(Number::Int(42))
        ));
    }

    #[test]
    fn odd_values() {
        assert_eq!(any_to_json(&Any::Undefined), Value::Null);
        assert_eq!(
            any_to_json(&Any::Number(Number::Float(f64::NAN))),
            Value::Null
        );
        assert_eq!(
            any_to_json(&Any::Buffer(Arc::from(&[1u8, 2][..]))),
            json!([1, 2])
        );
    }
}
