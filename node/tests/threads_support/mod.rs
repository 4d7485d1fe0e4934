//! The names of this process's threads, for tests that check which threads a component starts.

/// Names of this process's threads (`/proc/self/task/*/comm`, at most 15 bytes each).
pub fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}
