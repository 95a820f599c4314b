//! Where in the file a problem is: line:column and the dotted key, for toml's own errors and
//! for the value checks that run after parsing.

use std::path::Path;

use super::ConfigError;

/// Turns a toml error into one naming the file, the key and line:column.
pub(super) fn from_toml(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    let offset = e.span().map(|s| s.start).unwrap_or(0).min(text.len());
    let message = e.message().trim().to_string();
    let key = unknown_field(&message)
        .map(|field| qualify(text, offset, field))
        .unwrap_or_else(|| key_at(text, offset));
    ConfigError::Invalid {
        path: path.to_path_buf(),
        at: Some(line_col(text, offset)),
        key,
        message,
    }
}

/// Line and column of the place where `dotted` (`rules.block`, `ring_capacity_bytes`) is
/// assigned, when it is written as `key = value` under its `[table]` header or as a dotted key;
/// for a key that is absent (a required one), its table's header.
pub(super) fn of_key(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let parent = dotted.rsplit_once('.').map(|(table, _)| table);
    let mut header = None;
    let mut table = String::new();
    let mut offset = 0usize;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.starts_with('[') {
            table = header_name(trimmed);
            if header.is_none() && parent == Some(table.as_str()) {
                header = Some(line_col(text, start + indent));
            }
            continue;
        }
        let Some((name, _)) = trimmed.split_once('=') else {
            continue;
        };
        let name: String = name
            .trim()
            .split('.')
            .map(|part| part.trim().trim_matches('"').trim_matches('\''))
            .collect::<Vec<_>>()
            .join(".");
        let full = if table.is_empty() {
            name
        } else {
            format!("{table}.{name}")
        };
        if full == dotted {
            return Some(line_col(text, start + indent));
        }
    }
    header
}

fn header_name(line: &str) -> String {
    line.trim_start_matches('[')
        .split(']')
        .next()
        .unwrap_or("")
        .split('.')
        .map(|part| part.trim().trim_matches('"').trim_matches('\''))
        .collect::<Vec<_>>()
        .join(".")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..floor_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn floor_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// serde reports an unknown key as "unknown field `name`, expected ...".
fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// The dotted key whose value or name sits at `offset`: the `[table]` header above it plus
/// the name left of `=` on its line.
fn key_at(text: &str, offset: usize) -> String {
    let offset = floor_boundary(text, offset);
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    match line.split_once('=') {
        Some((name, _)) => qualify(text, offset, name.trim()),
        None => table_at(text, offset).unwrap_or_else(|| line.trim().to_string()),
    }
}

fn qualify(text: &str, offset: usize, name: &str) -> String {
    match table_at(text, offset) {
        Some(table) if !name.starts_with(&format!("{table}.")) => format!("{table}.{name}"),
        _ => name.to_string(),
    }
}

/// The `[table]` header in force at `offset`, if any.
fn table_at(text: &str, offset: usize) -> Option<String> {
    let offset = floor_boundary(text, offset);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    text[..line_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(header_name)
}
