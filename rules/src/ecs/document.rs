//! The view as a nested ECS JSON document: what alerts carry, and the input of the naive
//! interpreter the compiled matcher is tested against.

use serde_json::{Map, Value as Json, json};

use super::{EcsEvent, Field, Value};

impl EcsEvent<'_> {
    /// The whole view as nested ECS JSON (`event`, `host`, `process`, `user`, `group`,
    /// `file`).
    /// Absent fields are left out.
    pub fn document(&self) -> Map<String, Json> {
        let mut doc = Map::new();
        for field in Field::all() {
            let value = match self.value(field) {
                Value::Missing => continue,
                Value::Str(s) => json!(s),
                Value::Args(a) => Json::Array(a.iter().map(|s| json!(s)).collect()),
                Value::Joined(a) => json!(a.iter().collect::<Vec<_>>().join(" ")),
                Value::Id(n) => json!(n.to_string()),
                Value::Shared(s) => json!(&*s),
                Value::Entity(id) => json!(id.as_str()),
                Value::Long(n) => json!(n),
                Value::Bool(b) => json!(b),
            };
            let value = match field {
                Field::EventCategory | Field::EventType => Json::Array(vec![value]),
                _ => value,
            };
            insert_path(&mut doc, field.name(), value);
        }
        doc
    }
}

fn insert_path(doc: &mut Map<String, Json>, path: &str, value: Json) {
    match path.split_once('.') {
        None => {
            doc.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = doc
                .entry(head.to_owned())
                .or_insert_with(|| Json::Object(Map::new()));
            if let Json::Object(map) = child {
                insert_path(map, rest, value);
            }
        }
    }
}
