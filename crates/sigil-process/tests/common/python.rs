//! Python plugins for the process tier's tests: a plugin directory installed into a fresh data
//! directory, opened with the process tier running the host's Python in the real sandbox.

use std::path::{Path, PathBuf};

use sigil_process::RestartPolicy;

use super::World;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name == "__pycache__" || name == ".pytest_cache" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &to.join(name));
        } else {
            std::fs::copy(entry.path(), to.join(name)).unwrap();
        }
    }
}

/// Installs the plugin directory `source` as `id` (its `plugin.toml` passed through `edit`
/// with `<root>` standing for the world's folder), consents to `consent`, gives it `config`
/// (a TOML inline table's body), and opens the home with the process tier.
pub fn open_python(
    source: &Path,
    id: &str,
    edit: &dyn Fn(String) -> String,
    consent: &[String],
    config: &str,
) -> World {
    let dir = super::world_dir();
    let root = dir.path().canonicalize().unwrap();
    // The directories the plugins are granted; a bind must exist at load.
    std::fs::create_dir_all(root.join("notes")).unwrap();
    std::fs::create_dir_all(root.join("writable")).unwrap();
    let plugin_dir = root.join("home/plugins").join(id);
    copy_dir(source, &plugin_dir);
    let manifest = std::fs::read_to_string(plugin_dir.join("plugin.toml")).unwrap();
    let manifest = edit(manifest).replace("<root>", &root.display().to_string());
    std::fs::write(plugin_dir.join("plugin.toml"), manifest).unwrap();
    let consent: Vec<String> = consent
        .iter()
        .map(|c| format!("\"{}\"", c.replace("<root>", &root.display().to_string())))
        .collect();
    let config = config.replace("<root>", &root.display().to_string());
    std::fs::write(
        root.join("home/sigil.toml"),
        format!(
            r#"
[defaults]
user = "alice"
workspace = "home"

[workspaces.home]
allow = ["*"]

[users.alice]
permissions = ["*"]

[plugins.{id}]
consent = [{consent}]
config = {{ {config} }}
"#,
            consent = consent.join(", "),
        ),
    )
    .unwrap();
    let world = super::open_home(dir, root, id, RestartPolicy::DEFAULT);
    let entry = world.sigil.manager().get(id).unwrap();
    let error = entry.lifecycle().error();
    assert_eq!(
        entry.lifecycle().state(),
        sigil_runtime::State::Running,
        "{error:?}\n(the process tier runs Python plugins with the host's Python and the Sigil Python kit: install it with scripts/install-python-kit)"
    );
    world
}

/// Closes the world's runtime and opens the same data directory again, as a restart would.
pub fn reopen(world: World) -> World {
    let World {
        dir,
        root,
        sigil,
        rt,
        id,
    } = world;
    drop(sigil);
    drop(rt);
    super::open_home(dir, root, &id, RestartPolicy::DEFAULT)
}
