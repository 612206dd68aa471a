//! A well-behaved process plugin: echo, host access and the whole execution pipeline.

use serde_json::{Value, json};
use sigil_process_kit::{
    Context, Descriptor, HttpRequest, Plugin, Steps, Tool, ToolError, async_trait,
};

/// A tool with every pipeline step. Input `{ "key": K, "fail": "none" | "pre" | "execute" |
/// "post" }`: it stores `K` in kv, fails at the named step, and rollback removes `K` again.
struct Stage;

#[async_trait]
impl Tool for Stage {
    fn descriptor(&self) -> Descriptor {
        Descriptor {
            name: "stage".into(),
            description: "Stores a key, failing where told; rollback removes it.".into(),
            input_schema: json!({
                "type": "object",
                "required": ["key", "fail"],
                "properties": {
                    "key": { "type": "string" },
                    "fail": { "enum": ["none", "pre", "execute", "post"] }
                }
            }),
            output_schema: Some(json!({ "type": "object", "required": ["stored"] })),
            steps: Steps {
                validate_pre: true,
                validate_post: true,
                rollback: true,
            },
        }
    }

    async fn validate_pre(&self, _ctx: &Context, input: &Value) -> Result<(), ToolError> {
        if input["fail"] == "pre" {
            return Err(ToolError::InvalidInput("told to fail validate-pre".into()));
        }
        Ok(())
    }

    async fn invoke(&self, ctx: &Context, input: Value) -> Result<Value, ToolError> {
        let key = input["key"].as_str().unwrap_or_default();
        ctx.kv_set(key, b"staged").await?;
        if input["fail"] == "execute" {
            return Err(ToolError::Failed("told to fail execute".into()));
        }
        Ok(json!({ "stored": key }))
    }

    async fn validate_post(
        &self,
        _ctx: &Context,
        input: &Value,
        output: &Value,
    ) -> Result<(), ToolError> {
        if input["fail"] == "post" {
            return Err(ToolError::Failed(format!(
                "told to fail validate-post of {output}"
            )));
        }
        Ok(())
    }

    async fn rollback(
        &self,
        ctx: &Context,
        input: &Value,
        _output: Option<&Value>,
    ) -> Result<(), ToolError> {
        let key = input["key"].as_str().unwrap_or_default();
        ctx.log_info(&format!("rolling back {key}")).await;
        ctx.kv_delete(key).await
    }
}

fn object() -> Value {
    json!({ "type": "object" })
}

fn main() -> Result<(), sigil_process_kit::KitError> {
    let plugin = Plugin::new()
        .function("echo", "Returns its input.", object(), |_ctx, input| async move {
            Ok(input)
        })
        .tool(Stage)
        .function("config", "Returns the plugin's configuration.", object(), |ctx, _| async move {
            ctx.config().await
        })
        .function("kv", "Gets or sets a key.", object(), |ctx, input| async move {
            let key = input["key"].as_str().unwrap_or_default();
            match input["value"].as_str() {
                Some(value) => {
                    ctx.kv_set(key, value.as_bytes()).await?;
                    Ok(json!({ "set": key }))
                }
                None => {
                    let value = ctx.kv_get(key).await?;
                    Ok(json!({ "value": value.map(|v| String::from_utf8_lossy(&v).into_owned()) }))
                }
            }
        })
        .function("secret", "Returns a secret placeholder.", object(), |ctx, input| async move {
            let name = input["name"].as_str().unwrap_or_default();
            Ok(json!({ "placeholder": ctx.secret_ref(name).await? }))
        })
        .function("fetch", "Fetches a URL through the host, with a secret in a header.", object(), |ctx, input| async move {
            let mut headers = Vec::new();
            if let Some(name) = input["secret"].as_str() {
                let placeholder = ctx.secret_ref(name).await?;
                let header = input["secret_header"].as_str().unwrap_or("authorization");
                headers.push((header.to_string(), format!("Bearer {placeholder}").into_bytes()));
            }
            let response = ctx
                .http(HttpRequest {
                    method: "GET".into(),
                    url: input["url"].as_str().unwrap_or_default().to_string(),
                    headers,
                    body: Vec::new(),
                })
                .await?;
            Ok(json!({
                "status": response.status,
                "body": String::from_utf8_lossy(&response.body),
            }))
        });
    sigil_process_kit::serve(plugin)
}
