//! Serves {{name}}'s tools on the Unix socket Sigil names in `SIGIL_PLUGIN_SOCKET`, until Sigil
//! shuts the plugin down. Stdout and stderr are free for diagnostics.

fn main() -> Result<(), sigil_process_kit::KitError> {
    sigil_process_kit::serve({{crate}}::plugin())
}
