//! How each part of the model is read from and written to JSON without losing anything.
//!
//! The dialect is open: events carry fields this model has no name for, and known fields
//! sometimes arrive with another JSON type than ours (a string `pid`, a scalar
//! `event.category`). Reading therefore goes through a `serde_json::Value`: each known key
//! is converted only if the typed value writes back *exactly* the same JSON; otherwise the
//! raw value is kept in the struct's `other` map under the same key. Writing skips empty
//! fields. Together this makes deserialize → serialize the identity on JSON values.
//!
//! (serde's `#[serde(flatten)]` is avoided on purpose: it buffers values and loses
//! `arbitrary_precision` numbers such as `18446744073709551615`.)

use serde::Serialize;
use serde_json::{Map, Number, Value};

use crate::timestamp::Timestamp;

/// A part of the model: knows when it is empty (and then not written) and how to read
/// itself from a JSON value exactly.
pub trait Node: Serialize + Sized {
    /// Nothing to write.
    fn is_empty(&self) -> bool;
    /// The typed value, if `v` converts without any change of its JSON form.
    fn from_json(v: &Value) -> Option<Self>;
    /// Like [`Node::from_json`], consuming `v` (no copy of strings and objects); gives
    /// `v` back when it does not convert.
    fn from_json_owned(v: Value) -> Result<Self, Value> {
        Self::from_json(&v).ok_or(v)
    }
    /// Appends the dotted path of every value kept in an `other` map (fields the model
    /// does not type), under `prefix`. Shows what a producer sends beyond the model.
    fn untyped_paths(&self, prefix: &str, out: &mut Vec<String>) {
        let _ = (prefix, out);
    }
}

/// Stores `v` in `slot` if it converts exactly and is not empty; else keeps it raw in `other`.
pub(crate) fn put<T: Node>(slot: &mut T, key: String, v: Value, other: &mut Map<String, Value>) {
    match T::from_json_owned(v) {
        Ok(t) if !t.is_empty() => *slot = t,
        // Only empty values land here, so re-creating them is cheap.
        Ok(t) => {
            let raw = serde_json::to_value(&t).unwrap_or(Value::Null);
            other.insert(key, raw);
        }
        Err(raw) => {
            other.insert(key, raw);
        }
    }
}

impl Node for String {
    fn is_empty(&self) -> bool {
        String::is_empty(self)
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_str().map(str::to_owned)
    }
    fn from_json_owned(v: Value) -> Result<Self, Value> {
        match v {
            Value::String(s) => Ok(s),
            other => Err(other),
        }
    }
}

impl Node for bool {
    fn is_empty(&self) -> bool {
        false
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_bool()
    }
}

/// Integers convert only when their JSON text is the canonical one (`7`, not `7.0` or `7e0`).
macro_rules! integer_node {
    ($($t:ty),*) => {$(
        impl Node for $t {
            fn is_empty(&self) -> bool {
                false
            }
            fn from_json(v: &Value) -> Option<Self> {
                let Value::Number(n) = v else { return None };
                let text = n.to_string();
                let parsed: $t = text.parse().ok()?;
                (parsed.to_string() == text).then_some(parsed)
            }
        }
    )*};
}
integer_node!(u16, u32, u64, i32, i64);

impl Node for f64 {
    fn is_empty(&self) -> bool {
        false
    }
    /// Only when `f64` writes the number back with the same digits.
    fn from_json(v: &Value) -> Option<Self> {
        let Value::Number(n) = v else { return None };
        let f = n.as_f64()?;
        (Number::from_f64(f).as_ref() == Some(n)).then_some(f)
    }
}

impl Node for Value {
    fn is_empty(&self) -> bool {
        self.is_null()
    }
    fn from_json(v: &Value) -> Option<Self> {
        Some(v.clone())
    }
}

impl Node for Map<String, Value> {
    fn is_empty(&self) -> bool {
        Map::is_empty(self)
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_object().cloned()
    }
    fn from_json_owned(v: Value) -> Result<Self, Value> {
        match v {
            Value::Object(m) => Ok(m),
            other => Err(other),
        }
    }
}

impl Node for Timestamp {
    fn is_empty(&self) -> bool {
        false
    }
    fn from_json(v: &Value) -> Option<Self> {
        let s = v.as_str()?;
        let t: Timestamp = s.parse().ok()?;
        (t.to_string() == s).then_some(t)
    }
}

impl<T: Node> Node for Option<T> {
    fn is_empty(&self) -> bool {
        self.as_ref().is_none_or(Node::is_empty)
    }
    fn from_json(v: &Value) -> Option<Self> {
        T::from_json(v).map(Some)
    }
    fn from_json_owned(v: Value) -> Result<Self, Value> {
        T::from_json_owned(v).map(Some)
    }
    fn untyped_paths(&self, prefix: &str, out: &mut Vec<String>) {
        if let Some(t) = self {
            t.untyped_paths(prefix, out);
        }
    }
}

impl<T: Node> Node for Box<T> {
    fn is_empty(&self) -> bool {
        (**self).is_empty()
    }
    fn from_json(v: &Value) -> Option<Self> {
        T::from_json(v).map(Box::new)
    }
    fn from_json_owned(v: Value) -> Result<Self, Value> {
        T::from_json_owned(v).map(Box::new)
    }
    fn untyped_paths(&self, prefix: &str, out: &mut Vec<String>) {
        (**self).untyped_paths(prefix, out);
    }
}

/// Lists convert only when every element converts; elements are written even when empty.
impl<T: Node> Node for Vec<T> {
    fn is_empty(&self) -> bool {
        Vec::is_empty(self)
    }
    fn from_json(v: &Value) -> Option<Self> {
        v.as_array()?.iter().map(T::from_json).collect()
    }
    fn untyped_paths(&self, prefix: &str, out: &mut Vec<String>) {
        for (i, t) in self.iter().enumerate() {
            t.untyped_paths(&format!("{prefix}[{i}]"), out);
        }
    }
}

/// Declares a model struct: typed fields with their JSON key, plus `other` for the rest.
/// Generates `Default`, `Node`, `Serialize` and `Deserialize`.
macro_rules! node_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[$fmeta:meta])*
                $field:ident : $ty:ty = $key:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $(
                $(#[$fmeta])*
                pub $field: $ty,
            )*
            /// Fields this model has no name for, or that arrived in a form it does not
            /// type (kept as received and written back unchanged).
            pub other: serde_json::Map<String, serde_json::Value>,
        }

        impl $crate::node::Node for $name {
            fn is_empty(&self) -> bool {
                true $(&& $crate::node::Node::is_empty(&self.$field))* && self.other.is_empty()
            }
            fn from_json(v: &serde_json::Value) -> Option<Self> {
                Self::from_json_owned(v.clone()).ok()
            }
            fn from_json_owned(v: serde_json::Value) -> Result<Self, serde_json::Value> {
                let map = match v {
                    serde_json::Value::Object(map) => map,
                    other => return Err(other),
                };
                let mut out = $name::default();
                for (k, v) in map {
                    match k.as_str() {
                        $( $key => $crate::node::put(&mut out.$field, k, v, &mut out.other), )*
                        _ => {
                            out.other.insert(k, v);
                        }
                    }
                }
                Ok(out)
            }
            fn untyped_paths(&self, prefix: &str, out: &mut Vec<String>) {
                let join = |key: &str| {
                    if prefix.is_empty() {
                        key.to_owned()
                    } else {
                        format!("{prefix}.{key}")
                    }
                };
                $( $crate::node::Node::untyped_paths(&self.$field, &join($key), out); )*
                out.extend(self.other.keys().map(|k| join(k)));
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeMap;
                let mut map = serializer.serialize_map(None)?;
                $(
                    if !$crate::node::Node::is_empty(&self.$field) {
                        map.serialize_entry($key, &self.$field)?;
                    }
                )*
                for (k, v) in &self.other {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = serde_json::Value::deserialize(deserializer)?;
                <$name as $crate::node::Node>::from_json_owned(value).map_err(|_| {
                    serde::de::Error::custom(concat!("expected a JSON object for ", stringify!($name)))
                })
            }
        }
    };
}
pub(crate) use node_struct;
