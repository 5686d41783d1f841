//! Stage 6, pack: trainer-ready shards and the trainer's `data.yaml`.

use std::path::Path;

use crate::config::Code;
use crate::error::Result;
use crate::manifest::Manifest;

/// `OUT/data.yaml`: every packed scenario under its trainer group, paths relative to the
/// folder the trainer is started from being OUT's parent is not assumed: they are relative to OUT.
pub fn write_data_yaml(out: &Path, manifest: &Manifest) -> Result<()> {
    let mut groups: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (code, entry) in &manifest.scenarios {
        if !entry.stages.contains_key("pack") {
            continue;
        }
        let group = serde_json::from_value::<Code>(serde_json::Value::String(code.clone()))
            .map(Code::data_group)
            .unwrap_or("IMAGE_TEXT");
        let mut parts: Vec<&str> = entry.stages["pack"]
            .outputs
            .iter()
            .map(|o| o.path.as_str())
            .filter(|p| p.ends_with(".parquet") && !p.contains("/rejects/"))
            .collect();
        parts.sort();
        let images = if parts.len() == 1 {
            parts[0].to_string()
        } else {
            format!("{code}/{code}-*.parquet")
        };
        groups.entry(group).or_default().push(format!(
            "  {code}:\n    mimicit_path: {code}/{code}_instructions.json\n    images_path: {images}\n    train_config_path: {code}/{code}_train.json\n    num_samples: -1\n"
        ));
    }
    let mut yaml =
        String::from("# Training data for Otter-style loaders; paths are relative to this file.\n");
    for (group, entries) in groups {
        yaml.push_str(group);
        yaml.push_str(":\n");
        for e in entries {
            yaml.push_str(&e);
        }
    }
    crate::atomic::write(&out.join("data.yaml"), yaml.as_bytes())
}
