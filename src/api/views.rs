//! How resources look in API answers, where the view is more than the stored row.

use serde_json::{json, Value};

use crate::store::apps::ToolRow;
use crate::tools::ToolDef;

/// The tool as the dashboard shows it: curation over the generated definition.
pub fn tool_json(t: &ToolRow, with_schema: bool) -> Value {
    let def: Option<ToolDef> = serde_json::from_str(&t.def_json).ok();
    let generated_description = def.as_ref().map(|d| d.description.clone()).unwrap_or_default();
    let mut v = json!({
        "id": t.id,
        "name": t.name,
        "generated_name": t.generated_name,
        "operation_key": t.operation_key,
        "method": t.method,
        "path": t.path,
        "tags": t.tags,
        "enabled": t.enabled,
        "title": def.as_ref().and_then(|d| d.title.clone()),
        "description": t.description.clone().unwrap_or(generated_description.clone()),
        "generated_description": generated_description,
        "description_curated": t.description.is_some(),
        "annotations": def.as_ref().map(|d| json!(d.annotations)),
        "deprecated": def.as_ref().is_some_and(|d| d.deprecated),
        "updated_at": t.updated_at,
    });
    if with_schema {
        if let (Some(d), Some(obj)) = (def.as_ref(), v.as_object_mut()) {
            obj.insert("input_schema".into(), d.input_schema.clone());
            obj.insert("output_schema".into(), d.output_schema.clone().unwrap_or(Value::Null));
        }
    }
    v
}
