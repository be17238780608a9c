//! The layering of the crates' files (ARCHITECTURE.md): within `cache-core`
//! imports flow one way, leaves → tiers → engine → facade → integrations → macro support;
//! nothing Redis-specific is named above the tier; and no crate's files form
//! an import cycle.
//!
//! The check reads the sources as text: every `crate::…` and `super::…`
//! path outside comments and the trailing `#[cfg(test)] mod tests` block
//! (`use` trees included), resolved to the file of the module it names.
//! A name the crate root re-exports (`crate::Cache`) resolves through the
//! root's `pub use` lines.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// `cache-core`'s layers, lowest first: a module's layer is that of its
/// first path segment.
const CORE_LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "breaker",
            "codec",
            "config",
            "error",
            "glob",
            "id",
            "invalidation",
            "key",
            "observe",
            "options",
            "shape",
            "stats",
            "ttl",
            "value",
        ],
    ),
    ("tiers", &["tier"]),
    ("engine", &["engine"]),
    ("facade", &["builder", "cache", "registry", "warming"]),
    ("integrations", &["admin"]),
    ("macro support", &["private"]),
    ("fuzzing", &["fuzz"]),
];

/// The modules of `cache-core` that may name the Redis crate: the tier, the
/// builder (its public `redis(RedisConfig)` setting), the fuzz entry points
/// (they read what Redis stores as the tier does) and the root (its re-export).
const MAY_NAME_REDIS: &[&str] = &["tier", "builder", "fuzz", ""];

type Module = Vec<String>;

/// One crate's `src/`: each file's module path and text (comments and the
/// trailing test module removed).
struct Crate {
    files: BTreeMap<Module, String>,
    /// Names the root re-exports, and the module each comes from.
    root_exports: BTreeMap<String, Module>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut files = BTreeMap::new();
        collect(src, src, &mut files);
        let root_exports = files
            .get(&Vec::new())
            .map(|root| root_exports(root))
            .unwrap_or_default();
        Crate {
            files,
            root_exports,
        }
    }

    /// The existing module a path names: its longest prefix that is a file,
    /// or, for a root re-export, the module it comes from.
    fn resolve(&self, path: &[String]) -> Option<Module> {
        for n in (1..=path.len()).rev() {
            if self.files.contains_key(&path[..n]) {
                return Some(path[..n].to_vec());
            }
        }
        let first = path.first()?;
        self.root_exports.get(first).cloned()
    }

    /// The modules each file imports (itself and the root left out).
    fn imports(&self) -> BTreeMap<Module, BTreeSet<Module>> {
        self.files
            .iter()
            .map(|(module, text)| {
                let targets = paths(text)
                    .into_iter()
                    .filter_map(|p| self.absolute(module, &p))
                    .filter_map(|p| self.resolve(&p))
                    .filter(|t| t != module && !t.is_empty())
                    .collect();
                (module.clone(), targets)
            })
            .collect()
    }

    /// `crate::a::b` or `super::…::a` from `module`, as a path from the root.
    fn absolute(&self, module: &Module, path: &[String]) -> Option<Module> {
        let (head, rest) = path.split_first()?;
        match head.as_str() {
            "crate" => Some(rest.to_vec()),
            "super" => {
                // A file's own module is its path; `super` is its parent.
                let mut base = module.clone();
                let mut rest = path;
                while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
                    base.pop()?;
                    rest = tail;
                }
                base.extend(rest.iter().cloned());
                Some(base)
            }
            _ => None,
        }
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<Module, String>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.map(|e| e.path()).unwrap_or_default())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).with_extension("");
            let mut module: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(
                module.last().map(String::as_str),
                Some("lib" | "main" | "mod")
            ) {
                module.pop();
            }
            let text = fs::read_to_string(&path).unwrap_or_default();
            files.insert(module, strip(&text));
        }
    }
}

/// The text without comments (line, block and doc), string literals'
/// contents, and the `#[cfg(test)] mod tests` block that ends a file.
fn strip(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if last == '*' && c == '/' {
                        break;
                    }
                    last = c;
                }
            }
            '"' => {
                out.push('"');
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push('"');
            }
            // A char literal holding a double quote is no string.
            '\'' if chars.peek() == Some(&'"') => {
                chars.next();
                out.push_str("'\"");
            }
            c => out.push(c),
        }
    }
    out
}

/// Every `crate::…` / `super::…` path in `text`, `use` trees expanded.
fn paths(text: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let starts = ["crate::", "super::"]
            .iter()
            .any(|k| text[i..].starts_with(k));
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let after_path = i >= 2 && &text[i - 2..i] == "::";
        if starts && boundary && !after_path {
            let (tree, used) = use_tree(&text[i..]);
            out.extend(tree);
            i += used.max(1);
        } else {
            i += text[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    out
}

/// Parses `a::b::{c, d::e}` at the start of `s`: the paths it names and the
/// bytes it took.
fn use_tree(s: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = 0;
    loop {
        let ident: String = s[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            if s[i..].starts_with('{') {
                let mut all = Vec::new();
                i += 1;
                loop {
                    let skip = s[i..].len() - s[i..].trim_start().len();
                    i += skip;
                    if s[i..].starts_with('}') || i >= s.len() {
                        i += 1;
                        break;
                    }
                    let (sub, used) = use_tree(&s[i..]);
                    for p in sub {
                        let mut full = prefix.clone();
                        full.extend(p);
                        all.push(full);
                    }
                    i += used.max(1);
                    let skip = s[i..].len() - s[i..].trim_start().len();
                    i += skip;
                    if s[i..].starts_with(',') {
                        i += 1;
                    }
                }
                return (all, i);
            }
            return (vec![prefix], i);
        }
        i += ident.len();
        if ident != "self" {
            prefix.push(ident);
        }
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The root's `pub use module::{A, B}` lines: each name and its module.
fn root_exports(root: &str) -> BTreeMap<String, Module> {
    let mut map = BTreeMap::new();
    for stmt in root.split(';') {
        let stmt = stmt.trim();
        let Some(tree) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let (paths, _) = use_tree(tree.trim_start_matches("crate::"));
        for p in paths {
            if let (Some(first), Some(last)) = (p.first(), p.last())
                && p.len() > 1
            {
                map.insert(last.clone(), vec![first.clone()]);
            }
        }
    }
    map
}

fn layer(module: &Module) -> Option<(usize, &'static str)> {
    let first = module.first()?;
    CORE_LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&first.as_str()))
        .map(|(i, (name, _))| (i, *name))
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "lib".to_owned()
    } else {
        module.join("/")
    }
}

/// Imports from a higher layer, and modules in no layer, as messages.
fn layer_violations(krate: &Crate) -> Vec<String> {
    let mut found = Vec::new();
    for (module, targets) in krate.imports() {
        if module.is_empty() {
            continue;
        }
        let Some((own, own_name)) = layer(&module) else {
            found.push(format!(
                "{} is in no layer: add it to CORE_LAYERS and ARCHITECTURE.md",
                name(&module)
            ));
            continue;
        };
        for t in targets {
            if let Some((theirs, their_name)) = layer(&t)
                && theirs > own
            {
                found.push(format!(
                    "{} ({own_name}) imports {} ({their_name}), a higher layer",
                    name(&module),
                    name(&t)
                ));
            }
        }
    }
    for (module, text) in &krate.files {
        let allowed = MAY_NAME_REDIS.contains(&module.first().map_or("", String::as_str));
        if !allowed && text.contains("cache_redis") {
            found.push(format!(
                "{} names cache_redis: Redis belongs to the tier",
                name(module)
            ));
        }
    }
    found
}

/// The import cycles among a crate's files (strongly connected sets of two or more).
fn cycles(krate: &Crate) -> Vec<Vec<String>> {
    let graph = krate.imports();
    let nodes: Vec<&Module> = graph.keys().collect();
    let reach = |from: &Module| -> BTreeSet<Module> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for t in graph.get(&m).into_iter().flatten() {
                if seen.insert(t.clone()) {
                    stack.push(t.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&Module, BTreeSet<Module>> =
        nodes.iter().map(|m| (*m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in &nodes {
        if done.contains(*m) || !reachable[m].contains(*m) {
            continue;
        }
        let members: Vec<String> = nodes
            .iter()
            .filter(|o| reachable[m].contains(**o) && reachable[*o].contains(*m))
            .map(|o| {
                done.insert((*o).clone());
                name(o)
            })
            .collect();
        out.push(members);
    }
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

#[test]
fn cache_core_imports_flow_one_way() {
    let krate = Crate::read(&workspace().join("cache-core/src"));
    assert!(
        krate.files.len() > 20,
        "read {} files: is the path right?",
        krate.files.len()
    );
    let found = layer_violations(&krate);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

#[test]
fn no_crate_has_an_import_cycle() {
    for c in ["cache-core", "cache-redis", "cache-macros"] {
        let krate = Crate::read(&workspace().join(c).join("src"));
        let found = cycles(&krate);
        assert!(found.is_empty(), "{c}: import cycles: {found:?}");
    }
}

/// The check itself finds what it must: a tier naming the engine, a leaf
/// naming the facade through a root re-export, a cycle through `super`.
#[test]
fn the_check_catches_a_broken_tree() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let p = src.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    };
    write(
        "lib.rs",
        "mod cache; mod engine; mod tier; mod ttl;\npub use cache::Cache;\n",
    );
    write(
        "cache.rs",
        "use crate::engine::Engine;\npub struct Cache;\n",
    );
    write("engine.rs", "use crate::tier::{memory::L1, Read};\n");
    write(
        "tier.rs",
        "mod memory;\n// use crate::engine::Engine; (a comment: not an import)\n",
    );
    write(
        "tier/memory.rs",
        "use super::super::engine::Engine;\nfn f() { let _ = \"crate::cache::Cache\"; }\n",
    );
    write("ttl.rs", "fn f(c: &crate::Cache) {}\n");
    let krate = Crate::read(src);
    let found = layer_violations(&krate);
    assert_eq!(
        found,
        [
            "tier/memory (tiers) imports engine (engine), a higher layer",
            "ttl (leaves) imports cache (facade), a higher layer",
        ],
    );
    assert_eq!(cycles(&krate), [["engine", "tier/memory"]]);
}
