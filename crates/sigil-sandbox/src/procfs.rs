//! Reading the host's process table from `/proc`.

/// How far [`is_descendant`] walks up before giving up (longer chains do not occur in practice
/// and a bound keeps a hostile pid table from looping us).
const MAX_DEPTH: usize = 4096;

/// The parent pid and state letter of `pid`, from `/proc/<pid>/stat`.
fn stat(pid: u32) -> Option<(u32, char)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself contain spaces and parentheses; the
    // fields after the last `)` are well formed.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((ppid, state))
}

/// Whether `pid` exists and has not exited (zombies count as gone).
pub(crate) fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(_, state)| state != 'Z' && state != 'X')
}

/// Whether `pid` is `root` or has `root` among its ancestors.
pub(crate) fn is_descendant(pid: u32, root: u32) -> bool {
    let mut current = pid;
    for _ in 0..MAX_DEPTH {
        if current == root {
            return true;
        }
        if current <= 1 {
            return false;
        }
        match stat(current) {
            Some((parent, _)) => current = parent,
            None => return false,
        }
    }
    false
}

/// Every live process below `root` (not `root` itself).
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != root && is_descendant(pid, root))
        .collect()
}
