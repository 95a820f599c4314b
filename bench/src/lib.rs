//! The measurement programs behind `scripts/bench`.

pub mod fleet;
pub mod load;

/// The folder of Elastic's rules whose name starts with `prefix` (`linux-head`,
/// `macos-head`) in the shared test data beside the repository.
pub fn elastic_rules_folder(prefix: &str) -> Result<std::path::PathBuf, String> {
    let shared =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/elastic-rules");
    std::fs::read_dir(&shared)
        .map_err(|e| format!("{}: {e}", shared.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .ok_or_else(|| format!("{}: no {prefix}* rules folder", shared.display()))
}
