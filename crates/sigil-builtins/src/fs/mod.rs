//! `fs`: read text files and list directories.
//!
//! # Security
//! What is checked is what is opened. A path is made absolute and normalised lexically (`.`
//! and `..` resolved as text), and `fs.read:<path>` is asked of the enforcer for it. Then the
//! path is walked by handle (`walk.rs`): from `/`, each component is looked up in the directory
//! opened before it with `O_PATH | O_NOFOLLOW`, so nothing is resolved by name twice and no
//! link is followed by the kernel. A symbolic link met on the way is read from its own handle
//! and replaced by what it points to; that new path is asked for (`fs.read:<target>`) before
//! the walk starts again on it, at most [`MAX_LINKS`] times. So the walk is anchored at `/`
//! rather than at the granted directory: every path it walks through has been authorised, a
//! link inside a grant that leads inside it works, and one that leads out is a denial recorded
//! under the path it leads to. A directory swapped for a link during a read is seen as a link
//! and decided, never followed unchecked.
//!
//! The object reached is opened for reading only if it is a regular file (`read_text`) or a
//! directory (`list_dir`), and only the very object walked to (same device and inode, opened
//! with `O_NOFOLLOW | O_NONBLOCK`). FIFOs, sockets and devices are refused without being
//! opened: a FIFO cannot make a call wait for a writer, a device is never read. The refusal is
//! the call's error, in its audited outcome.
//!
//! File work runs on the blocking pool (`spawn_blocking`), never on the runtime's worker
//! threads; the runtime's deadline ends a call whose file work does not return.

mod walk;

use std::path::Path;

use serde_json::{Value, json};
use sigil_runtime::{Builtin, Call, Steps, ToolDescriptor, ToolError, ToolPlugin, async_trait};

use walk::{Opened, Step};

const MAX_BYTES: u64 = 256 * 1024;

/// The most symbolic links one path may pass through, as the kernel's own limit.
pub const MAX_LINKS: usize = 40;

/// The `fs` builtin.
pub fn plugin() -> Builtin {
    Builtin {
        manifest: include_str!("plugin.toml"),
        plugin: std::sync::Arc::new(Files),
    }
}

#[derive(Debug)]
struct Files;

#[async_trait]
impl ToolPlugin for Files {
    fn tools(&self) -> Vec<ToolDescriptor> {
        vec![
            ToolDescriptor {
                name: "read_text".into(),
                description: "Read a UTF-8 text file. Relative paths are resolved against the working directory.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string", "minLength": 1, "description": "file to read" },
                        "max_bytes": { "type": "integer", "minimum": 1, "maximum": MAX_BYTES, "description": "read at most this many bytes (default 65536)" }
                    },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {
                        "path": { "type": "string" },
                        "text": { "type": "string" },
                        "bytes": { "type": "integer" },
                        "truncated": { "type": "boolean" }
                    },
                    "required": ["path", "text", "bytes", "truncated"]
                })),
                steps: Steps::default(),
            },
            ToolDescriptor {
                name: "list_dir".into(),
                description: "List a directory's entries with their kind and size.".into(),
                input_schema: json!({
                    "type": "object",
                    "properties": { "path": { "type": "string", "minLength": 1 } },
                    "required": ["path"],
                    "additionalProperties": false
                }),
                output_schema: None,
                steps: Steps::default(),
            },
        ]
    }

    async fn invoke(&self, call: &Call, input: Value) -> Result<Value, ToolError> {
        let path = input
            .get("path")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let opened = open(call, path).await?;
        match call.tool() {
            "read_text" => {
                let max = input
                    .get("max_bytes")
                    .and_then(Value::as_u64)
                    .unwrap_or(64 * 1024);
                blocking(move || read_text(&opened, max)).await
            }
            "list_dir" => blocking(move || list_dir(&opened)).await,
            other => Err(ToolError::Failed(format!("no tool `{other}`"))),
        }
    }
}

/// Authorises `fs.read` for `raw` and reaches it by handle, authorising where each symbolic
/// link on the way leads before going on (see the module's Security section).
async fn open(call: &Call, raw: &str) -> Result<Opened, ToolError> {
    let absolute = std::path::absolute(raw)
        .map_err(|e| ToolError::InvalidInput(format!("path `{raw}`: {e}")))?;
    let mut path = walk::normalised(&absolute);
    call.authorize(&read_capability(&path)?).await?;
    for _ in 0..=MAX_LINKS {
        let walking = path.clone();
        match blocking(move || walk::walk(&walking)).await? {
            Step::Reached(opened) => return Ok(opened),
            Step::Link { target } => {
                call.authorize(&read_capability(&target)?).await?;
                path = target;
            }
        }
    }
    Err(ToolError::Failed(format!(
        "{raw}: passes through more than {MAX_LINKS} symbolic links"
    )))
}

/// Runs file work on the blocking pool: it may wait on the disk for as long as it likes
/// without holding one of the runtime's worker threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ToolError> + Send + 'static,
) -> Result<T, ToolError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ToolError::Failed(format!("file work did not finish: {e}")))?
}

fn read_capability(path: &Path) -> Result<String, ToolError> {
    path.to_str()
        .map(|text| format!("fs.read:{text}"))
        .ok_or_else(|| ToolError::InvalidInput(format!("path {} is not UTF-8", path.display())))
}

fn read_text(opened: &Opened, max: u64) -> Result<Value, ToolError> {
    use std::io::Read;
    let shown = opened.path().display();
    let file = opened.open_file()?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bytes = Vec::new();
    file.take(max.min(MAX_BYTES))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed(format!("{shown}: {e}")))?;
    let truncated = size > bytes.len() as u64;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        // A cut may fall inside a character; keep what is valid.
        Err(e) if truncated => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
        Err(_) => return Err(ToolError::Failed(format!("{shown} is not UTF-8 text"))),
    };
    Ok(json!({ "path": shown.to_string(), "bytes": size, "truncated": truncated, "text": text }))
}

fn list_dir(opened: &Opened) -> Result<Value, ToolError> {
    let listed: Vec<Value> = opened
        .entries()?
        .into_iter()
        .map(|(name, kind, size)| json!({ "name": name, "kind": kind.name(), "bytes": size }))
        .collect();
    Ok(json!({ "path": opened.path().display().to_string(), "entries": listed }))
}
