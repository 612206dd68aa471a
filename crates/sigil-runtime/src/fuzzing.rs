//! Entry points for the fuzz targets under `fuzz/`: the runtime's handling of what a plugin
//! describes about itself. Not part of the crate's API; hidden from its docs.

use serde_json::Value;

use crate::ToolDescriptor;

/// One tool as the manager accepted it, with what a call's argument validation made of an
/// instance.
#[derive(Debug)]
pub struct CheckedTool {
    /// The tool's name.
    pub name: String,
    /// Whether the compiled input schema holds the instance valid.
    pub valid: bool,
    /// The problems argument validation reports for the instance.
    pub errors: Vec<String>,
}

/// Checks and compiles tool descriptors as the manager does at load, then validates
/// `instance` against each tool's input schema as a call's arguments are.
///
/// # Errors
/// Why the manager refuses the plugin's tools.
pub fn check_tools(
    descriptors: Vec<ToolDescriptor>,
    instance: &Value,
) -> Result<Vec<CheckedTool>, String> {
    let tools = crate::manager::compile_tools(descriptors)?;
    Ok(tools
        .iter()
        .map(|tool| CheckedTool {
            name: tool.descriptor.name.clone(),
            valid: tool.input.is_valid(instance),
            errors: crate::runtime::schema_errors(&tool.input, instance),
        })
        .collect())
}
