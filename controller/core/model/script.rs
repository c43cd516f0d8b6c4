//! Seed script function resolution (SPEC §3), on script text; no I/O.

/// The shell functions a bash script defines at any nesting level, in order of
/// appearance: `name()`, `name ()`, `function name`, `function name()`.
pub fn defined_functions(text: &str) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') {
            continue;
        }
        let name = if let Some(rest) = line.strip_prefix("function ") {
            let rest = rest.trim_start();
            let end = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
            let name = &rest[..end];
            let tail = rest[end..].trim_start();
            (!name.is_empty() && (tail.is_empty() || tail.starts_with(['(', '{']))).then_some(name)
        } else {
            let end = line.find(|c: char| !is_name_char(c)).unwrap_or(line.len());
            let name = &line[..end];
            let tail = line[end..].trim_start();
            (!name.is_empty() && tail.starts_with("()")).then_some(name)
        };
        if let Some(name) = name
            && !found.iter().any(|f| f == name)
        {
            found.push(name.to_string());
        }
    }
    found
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.' || c == ':'
}

/// The names tried for a script file, in order: the file's name, the part
/// after its last `_`, the part before its first `_` (duplicates dropped).
pub fn candidate_functions(file_name: &str) -> Vec<String> {
    let mut out = vec![file_name.to_string()];
    if let Some((_, after)) = file_name.rsplit_once('_') {
        out.push(after.to_string());
    }
    if let Some((before, _)) = file_name.split_once('_') {
        out.push(before.to_string());
    }
    out.retain(|s| !s.is_empty());
    let mut seen = Vec::new();
    out.retain(|s| {
        let new = !seen.contains(s);
        seen.push(s.clone());
        new
    });
    out
}

/// Why no function could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// An explicit `function:` that the script does not define.
    #[error("function {wanted:?} is not defined in the script (it defines: {})", list(.defined))]
    NotDefined {
        /// The name asked for.
        wanted: String,
        /// What the script defines.
        defined: Vec<String>,
    },
    /// None of the candidate names is defined.
    #[error("defines none of the functions {} (it defines: {})", quoted(.tried), list(.defined))]
    NoCandidate {
        /// The names tried.
        tried: Vec<String>,
        /// What the script defines.
        defined: Vec<String>,
    },
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "no functions".to_string()
    } else {
        names.join(", ")
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The function to call for a script named `file_name` whose text defines
/// `defined`, honouring an explicit `function:`.
pub fn resolve_function(
    file_name: &str,
    explicit: Option<&str>,
    defined: &[String],
) -> Result<String, ResolveError> {
    if let Some(wanted) = explicit {
        return if defined.iter().any(|d| d == wanted) {
            Ok(wanted.to_string())
        } else {
            Err(ResolveError::NotDefined {
                wanted: wanted.to_string(),
                defined: defined.to_vec(),
            })
        };
    }
    let tried = candidate_functions(file_name);
    tried
        .iter()
        .find(|c| defined.contains(c))
        .cloned()
        .ok_or_else(|| ResolveError::NoCandidate {
            tried,
            defined: defined.to_vec(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_all_definition_styles() {
        let text = "#!/bin/bash\n# foo() is a comment\ntest()\n{\n  :\n}\nfunction apache {\n}\n  helper () { :; }\nfunction other() {\n}\necho() x\n";
        assert_eq!(
            defined_functions(text),
            ["test", "apache", "helper", "other", "echo"]
        );
    }

    #[test]
    fn resolves_in_seed_order() {
        let defs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            resolve_function("service_test", None, &defs(&["test"])).unwrap(),
            "test"
        );
        assert_eq!(
            resolve_function("apache_webserver", None, &defs(&["apache"])).unwrap(),
            "apache"
        );
        assert_eq!(
            resolve_function(
                "new_application",
                None,
                &defs(&["new_application", "application"])
            )
            .unwrap(),
            "new_application"
        );
        assert_eq!(
            resolve_function("my_db_x", None, &defs(&["x", "my"])).unwrap(),
            "x"
        );
    }

    #[test]
    fn lists_what_the_script_defines_when_nothing_matches() {
        let err = resolve_function("service_test", None, &["helper".to_string()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"defines none of the functions "service_test", "test", "service" (it defines: helper)"#
        );
    }
}
