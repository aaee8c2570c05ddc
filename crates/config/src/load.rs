//! Reading, validating and writing config.yaml.

use std::path::Path;

use serde_yaml::Value;

use crate::error::{ConfigError, Location, Problem, Warning};
use crate::paths::is_absolute_anywhere;
use crate::proxy::redact;
use crate::schema::{Config, KNOWN_KEYS, KNOWN_ROLES, LOGFILE_KEYS};

/// Warning for `roles: [compliance-collector]` while that role does not exist yet. The
/// change that implements the role removes it (and its use in the loader).
pub const WARN_COMPLIANCE_NO_EFFECT: &str = "roles: the compliance-collector role is not \
     implemented yet; it has no effect in this version";

/// The first line [`Config::to_yaml`] writes.
const HEADER: &str = "# Endpoint agent configuration. Keys are documented in docs/config.md.\n";

impl Config {
    /// Reads and validates the config file at `path`. Returns the configuration and the
    /// warnings to show the user (unknown keys, unknown roles, settings that have no effect
    /// in this version).
    pub fn load(path: impl AsRef<Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_str_named(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `name` is the file name used in messages.
    pub fn from_str_named(text: &str, name: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        // Windows editors save UTF-8 with a BOM and CRLF line ends; libyaml misreads that
        // combination as two documents, so the BOM is dropped here.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // First pass: plain YAML, to catch syntax errors and to see every key written
        // (the typed pass ignores unknown keys, which must be reported, not dropped).
        let tree: Value =
            serde_yaml::from_str(text).map_err(|e| match parse_problem(name, &e) {
                ConfigError::Parse(mut p) => {
                    p.message = format!("invalid YAML: {}", p.message);
                    ConfigError::Parse(p)
                }
                other => other,
            })?;
        let config = match &tree {
            // An empty file (or only comments) is the default configuration.
            Value::Null => Config::default(),
            Value::Mapping(_) => {
                serde_yaml::from_str::<Config>(text).map_err(|e| type_problems(text, name, &e))?
            }
            other => {
                return Err(ConfigError::Parse(Problem {
                    file: name.to_owned(),
                    location: Some(Location { line: 1, column: 1 }),
                    message: format!(
                        "the file must be a mapping of keys (`key: value`), found {}",
                        kind(other)
                    ),
                }))
            }
        };
        let problems = validate(&config, text, name);
        if !problems.is_empty() {
            return Err(ConfigError::Invalid(problems));
        }
        let warnings = warnings(&config, &tree, text, name);
        Ok((config, warnings))
    }

    /// The configuration as config.yaml text; [`Config::from_str_named`] reads it back to
    /// an equal `Config`. Comments of a file that was loaded are not preserved.
    pub fn to_yaml(&self) -> Result<String, ConfigError> {
        let body = serde_yaml::to_string(self).map_err(ConfigError::Serialize)?;
        Ok(format!("{HEADER}{body}"))
    }
}

/// Checks an intake key: not empty, no whitespace, only ASCII letters, digits, `-`, `_`
/// and `.`, at most 256 characters. The message never repeats the key.
pub fn validate_intake_key(key: &str) -> Result<(), String> {
    if key.is_empty() {
        return Err("the intake key is empty".into());
    }
    if key.len() > 256 {
        return Err("the intake key is longer than 256 characters".into());
    }
    if let Some((i, c)) = key.char_indices().find(|(_, c)| c.is_whitespace()) {
        return Err(format!(
            "the intake key contains whitespace ({c:?} at position {})",
            i + 1
        ));
    }
    if let Some((i, c)) = key
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "the intake key contains {c:?} at position {}; only letters, digits, `-`, `_` and `.` are allowed",
            i + 1
        ));
    }
    Ok(())
}

/// Most wrong-type problems reported for one file; past that the user has enough to fix.
const MAX_TYPE_PROBLEMS: usize = 50;

/// Every wrong-typed value, not only the first: serde stops at the first one, so the
/// top-level entry that holds it is blanked out (line numbers kept) and the text parsed
/// again, until it parses or nothing more can be blanked. One problem stays a
/// [`ConfigError::Parse`]; several are a [`ConfigError::Invalid`].
fn type_problems(text: &str, name: &str, first: &serde_yaml::Error) -> ConfigError {
    let mut problems: Vec<Problem> = Vec::new();
    let push = |e: &serde_yaml::Error, problems: &mut Vec<Problem>| {
        if let ConfigError::Parse(p) = parse_problem(name, e) {
            problems.push(p);
        }
    };
    push(first, &mut problems);
    let mut text = text.to_owned();
    let mut line = first.location().map(|l| l.line());
    while let Some(at) = line {
        if problems.len() >= MAX_TYPE_PROBLEMS {
            break;
        }
        match blank_top_level_entry(&text, at) {
            Some(blanked) if blanked != text => text = blanked,
            _ => break,
        }
        // Blanking must leave a mapping; otherwise later messages would be artefacts.
        if !matches!(serde_yaml::from_str::<Value>(&text), Ok(Value::Mapping(_))) {
            break;
        }
        match serde_yaml::from_str::<Config>(&text) {
            Ok(_) => break,
            Err(e) => {
                push(&e, &mut problems);
                line = e.location().map(|l| l.line());
            }
        }
    }
    // Errors a custom deserializer raises (an unknown region) point at the start of the
    // enclosing mapping, not at the value: blanking that entry leaves the same error at the
    // next entry's line. A run of the same message is one problem, found where blanking
    // made it go away (the last of the run).
    let mut problems = problems
        .into_iter()
        .rev()
        .fold(Vec::new(), |mut kept: Vec<Problem>, p| {
            if kept.last().is_none_or(|last| last.message != p.message) {
                kept.push(p);
            }
            kept
        });
    problems.reverse();
    match problems.len() {
        1 => ConfigError::Parse(problems.remove(0)),
        0 => parse_problem(name, first),
        _ => ConfigError::Invalid(problems),
    }
}

/// Whether a line starts a top-level key (`key: ...` at column 1).
fn is_top_level_key(line: &str) -> bool {
    line.chars()
        .next()
        .is_some_and(|c| !c.is_whitespace() && !matches!(c, '#' | '-' | '.'))
}

/// `text` with the top-level entry that contains 1-based `line` replaced by empty lines
/// (so every other line keeps its number); `None` if that line is in no such entry.
fn blank_top_level_entry(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let index = line.checked_sub(1)?.min(lines.len().checked_sub(1)?);
    let start = (0..=index).rev().find(|&i| is_top_level_key(lines[i]))?;
    let end = (start + 1..lines.len())
        .find(|&i| is_top_level_key(lines[i]))
        .unwrap_or(lines.len());
    let mut out = String::with_capacity(text.len());
    for (i, l) in lines.iter().enumerate() {
        if (start..end).contains(&i) {
            if l.ends_with("\r\n") {
                out.push_str("\r\n");
            } else if l.ends_with('\n') {
                out.push('\n');
            }
        } else {
            out.push_str(l);
        }
    }
    Some(out)
}

fn parse_problem(name: &str, e: &serde_yaml::Error) -> ConfigError {
    let full = e.to_string();
    // serde_yaml appends " at line L column C"; the location is reported separately.
    let message = match full.rfind(" at line ") {
        Some(i) if e.location().is_some() => full[..i].to_owned(),
        _ => full,
    };
    // serde quotes wrong-typed strings in its message; a proxy URL put under the wrong key
    // must not leak its password that way.
    let message = redact_urls(&message);
    ConfigError::Parse(Problem {
        file: name.to_owned(),
        location: e.location().map(|l| Location {
            line: l.line(),
            column: l.column(),
        }),
        message,
    })
}

/// `text` with the password of every `scheme://user:pass@host` in it replaced by `***`.
fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        // The URL token: back to the scheme's start, forward to a delimiter.
        let start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '`'))
            .map_or(rest.len(), |j| i + j);
        out.push_str(&rest[..start]);
        out.push_str(&redact(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn validate(config: &Config, text: &str, name: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut problem = |location: Option<Location>, message: String| {
        problems.push(Problem {
            file: name.to_owned(),
            location,
            message,
        })
    };

    for (i, lf) in config.logfiles.iter().enumerate() {
        let at = locate_entry(text, "filepath", &lf.filepath);
        let key = format!("logfiles[{i}].filepath");
        if let Err(msg) = validate_filepath(&lf.filepath) {
            problem(at, format!("{key}: {msg}"));
        }
        if let Err(msg) = validate_intake_key(&lf.intakekey) {
            problem(
                locate_entry(text, "intakekey", &lf.intakekey).or(at),
                format!("logfiles[{i}].intakekey: {msg}"),
            );
        }
    }

    if let Err(e) = config.proxy() {
        problem(locate_key(text, "HTTPProxyURL"), e.to_string());
    }

    if let Some(key) = &config.intake_key {
        if let Err(msg) = validate_intake_key(key) {
            problem(locate_key(text, "IntakeKey"), format!("IntakeKey: {msg}"));
        }
    }

    if let Err(e) = config.intake_endpoint() {
        problem(locate_key(text, "IntakeURL"), e.to_string());
    }

    if let Err(e) = config.update_endpoint() {
        problem(locate_key(text, "UpdateURL"), e.to_string());
    }

    for (i, p) in config.hashes_excluded_paths.iter().enumerate() {
        if p.as_os_str().is_empty() {
            problem(
                locate_key(text, "HashesExcludedPaths"),
                format!("HashesExcludedPaths[{i}]: empty path"),
            );
        }
    }
    problems
}

/// A logfiles glob: absolute, non-recursive, and valid glob syntax.
fn validate_filepath(pattern: &str) -> Result<(), String> {
    if pattern.trim().is_empty() {
        return Err("empty file path".into());
    }
    if pattern.contains("**") {
        return Err(format!(
            "`**` is not supported: recursive globs are not supported in `{pattern}`; \
             use `*` for one directory level, or list one entry per directory depth"
        ));
    }
    if !is_absolute_anywhere(pattern) {
        return Err(format!(
            "`{pattern}` is not an absolute path; the agent runs as a service and needs the full path"
        ));
    }
    glob::Pattern::new(pattern)
        .map(|_| ())
        .map_err(|e| format!("invalid glob `{pattern}`: {e}"))
}

fn warnings(config: &Config, tree: &Value, text: &str, name: &str) -> Vec<Warning> {
    let mut out = Vec::new();
    let Value::Mapping(top) = tree else {
        return out;
    };
    let mut unknown = Vec::new();
    let mut first_raw: Option<String> = None;
    for (k, v) in top {
        let key = key_text(k);
        if !KNOWN_KEYS.contains(&key.as_str()) {
            unknown.push(with_hint(&key, &KNOWN_KEYS));
            first_raw.get_or_insert(key.clone());
        }
        if key == "logfiles" {
            if let Value::Sequence(items) = v {
                for (i, item) in items.iter().enumerate() {
                    if let Value::Mapping(m) = item {
                        for k in m.keys() {
                            let key = key_text(k);
                            if !LOGFILE_KEYS.contains(&key.as_str()) {
                                unknown.push(format!(
                                    "logfiles[{i}].{}",
                                    with_hint(&key, &LOGFILE_KEYS)
                                ));
                                first_raw.get_or_insert(key);
                            }
                        }
                    }
                }
            }
        }
    }
    if !unknown.is_empty() {
        out.push(Warning {
            file: name.to_owned(),
            location: first_raw.and_then(|k| locate_key(text, &k)),
            message: format!(
                "unknown keys ignored: {} (known keys: {})",
                unknown.join(", "),
                KNOWN_KEYS.join(", ")
            ),
        });
    }
    if config.roles.iter().any(|r| r == "compliance-collector") {
        out.push(Warning {
            file: name.to_owned(),
            location: locate_value(text, "compliance-collector"),
            message: WARN_COMPLIANCE_NO_EFFECT.to_owned(),
        });
    }
    for role in &config.roles {
        if !KNOWN_ROLES.contains(&role.as_str()) {
            out.push(Warning {
                file: name.to_owned(),
                location: locate_value(text, role),
                message: format!(
                    "roles: unknown role `{role}` ignored (known roles: {})",
                    KNOWN_ROLES.join(", ")
                ),
            });
        }
    }
    out
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml::to_string(other)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into()),
    }
}

/// `key`, plus a "did you mean" when it differs from a known key only by case.
fn with_hint(key: &str, known: &[&str]) -> String {
    match known.iter().find(|k| k.eq_ignore_ascii_case(key)) {
        Some(k) => format!("{key} (did you mean {k}?)"),
        None => key.to_owned(),
    }
}

/// Best-effort position of `key:` (at the start of a line, possibly after `- `).
fn locate_key(text: &str, key: &str) -> Option<Location> {
    text.lines().enumerate().find_map(|(n, line)| {
        let trimmed = line.trim_start();
        let trimmed_dash = trimmed
            .strip_prefix("- ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let rest = trimmed_dash.strip_prefix(key)?;
        if !rest.trim_start().starts_with(':') {
            return None;
        }
        Some(Location {
            line: n + 1,
            column: line.len() - trimmed_dash.len() + 1,
        })
    })
}

/// Best-effort position of `value` on a `key: value` line (possibly after `- `), falling
/// back to its first occurrence anywhere.
fn locate_entry(text: &str, key: &str, value: &str) -> Option<Location> {
    let on_key_line = text.lines().enumerate().find_map(|(n, line)| {
        let trimmed = line.trim_start();
        let trimmed = trimmed
            .strip_prefix("- ")
            .map(str::trim_start)
            .unwrap_or(trimmed);
        let after = trimmed.strip_prefix(key)?.trim_start().strip_prefix(':')?;
        let col = line.len() - after.len() + after.find(value)?;
        Some(Location {
            line: n + 1,
            column: line[..col].chars().count() + 1,
        })
    });
    on_key_line.or_else(|| locate_value(text, value))
}

/// Best-effort position of the first occurrence of a scalar value.
fn locate_value(text: &str, value: &str) -> Option<Location> {
    if value.is_empty() {
        return None;
    }
    text.lines().enumerate().find_map(|(n, line)| {
        line.find(value).map(|col| Location {
            line: n + 1,
            column: line[..col].chars().count() + 1,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::Region;
    use crate::schema::LogFile;

    fn parse(text: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        Config::from_str_named(text, "config.yaml")
    }

    const FULL: &str = r#"
logfiles:
  - filepath: /var/log/nginx/*.log
    intakekey: abcDEF123-x_y
HTTPProxyURL: "http://user:pass@proxy.local:3128"
EnableDNSResolutions: true
HashesExcludedPaths:
  - /data/big
roles: [event-collector, compliance-collector]
IntakeKey: key-1
Region: USA1
AutoUpdate: false
"#;

    #[test]
    fn full_file_parses_with_every_key() {
        let (c, w) = parse(FULL).unwrap();
        let messages: Vec<&str> = w.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(messages, [WARN_COMPLIANCE_NO_EFFECT]);
        assert_eq!(
            c.logfiles,
            vec![LogFile {
                filepath: "/var/log/nginx/*.log".into(),
                intakekey: "abcDEF123-x_y".into()
            }]
        );
        assert!(c.enable_dns_resolutions);
        assert_eq!(c.region, Some(Region::Usa1));
        assert!(!c.auto_update);
        assert!(c.has_role("compliance-collector"));
        let proxy = c.proxy().unwrap().unwrap();
        assert_eq!(proxy.credentials(), Some(("user", "pass")));
        assert_eq!(proxy.authority(), "proxy.local:3128");
        assert_eq!(
            c.intake_endpoint().unwrap().as_str(),
            "https://intake.usa1.sekoia.io/api/v1/intake-http"
        );
    }

    #[test]
    fn yaml_round_trips() {
        let (c, w0) = parse(FULL).unwrap();
        let text = c.to_yaml().unwrap();
        let (back, w) = parse(&text).unwrap();
        assert_eq!(back, c);
        assert_eq!(w.len(), w0.len());
        let mut d = Config {
            intake_url: Some("https://relay.example/x".into()),
            ..Config::default()
        };
        let (back, _) = parse(&d.to_yaml().unwrap()).unwrap();
        assert_eq!(back, d);
        d.auto_update = false;
        let (back, _) = parse(&d.to_yaml().unwrap()).unwrap();
        assert_eq!(back, d);
    }

    #[test]
    fn empty_file_and_null_values_are_defaults() {
        let (c, w) = parse("# nothing yet\n").unwrap();
        assert_eq!(c, Config::default());
        assert!(c.auto_update);
        assert!(w.is_empty());
        let (c, _) = parse("logfiles:\nroles:\nAutoUpdate:\n").unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let err = parse("roles: [a]\nlogfiles: [\n").unwrap_err();
        let p = &err.problems()[0];
        let loc = p.location.unwrap();
        assert_eq!(loc.line, 3, "{err}");
        assert!(
            err.to_string().starts_with("config.yaml: line 3, column"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        let err = parse("roles: []\nHTTPProxyURL: 12\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2, column 15"), "{err}");
        assert!(err.contains("HTTPProxyURL"), "{err}");
        assert!(err.contains("expected a string"), "{err}");
        let err = parse("logfiles:\n  - filepath: [1]\n    intakekey: k\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("logfiles[0].filepath"), "{err}");
        let err = parse("Region: mars1\n").unwrap_err().to_string();
        assert!(err.contains("fra1, fra2"), "{err}");
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn every_wrong_type_is_reported_not_only_the_first() {
        let text = "roles: []\nHTTPProxyURL: 12\nlogfiles:\n  - filepath: [1]\n    intakekey: k\nEnableDNSResolutions: maybe\nAutoUpdate: true\nRegion: mars1\n";
        let err = parse(text).unwrap_err();
        let lines: Vec<usize> = err
            .problems()
            .iter()
            .map(|p| p.location.unwrap().line)
            .collect();
        assert_eq!(lines, [2, 4, 6, 8], "{err}");
        let text = err.to_string();
        assert!(text.contains("HTTPProxyURL"), "{text}");
        assert!(text.contains("logfiles[0].filepath"), "{text}");
        assert!(
            text.contains("EnableDNSResolutions") && text.contains("expected a boolean"),
            "{text}"
        );
        assert!(text.contains("fra1, fra2"), "{text}");
        // One wrong type stays one problem, a syntax error stops at once.
        let one = parse("HTTPProxyURL: 12\nAutoUpdate: true\n").unwrap_err();
        assert!(matches!(one, ConfigError::Parse(_)), "{one}");
        let syntax = parse("HTTPProxyURL: 12\nlogfiles: [\n").unwrap_err();
        assert_eq!(syntax.problems().len(), 1, "{syntax}");
        // CRLF files keep their line numbers too.
        let crlf = parse("HTTPProxyURL: 12\r\nAutoUpdate: 3\r\n").unwrap_err();
        let lines: Vec<usize> = crlf
            .problems()
            .iter()
            .map(|p| p.location.unwrap().line)
            .collect();
        assert_eq!(lines, [1, 2], "{crlf}");
    }

    #[test]
    fn a_proxy_url_under_the_wrong_key_does_not_leak_its_password() {
        let err = parse("EnableDNSResolutions: \"http://u:secret@proxy:3128\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected a boolean"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("http://u:***@proxy:3128"), "{err}");
        assert_eq!(
            redact_urls("a https://x:y@h:1 and `ftp://p:q@r` ok"),
            "a https://x:***@h:1 and `ftp://p:***@r` ok"
        );
    }

    #[test]
    fn recursive_glob_is_rejected_clearly() {
        let err =
            parse("logfiles:\n  - filepath: /var/log/**/x.log\n    intakekey: k\n").unwrap_err();
        let p = &err.problems()[0];
        assert!(p.message.contains("`**` is not supported"), "{err}");
        assert!(p.message.starts_with("logfiles[0].filepath"), "{err}");
        assert_eq!(
            p.location,
            Some(Location {
                line: 2,
                column: 15
            })
        );
    }

    #[test]
    fn problems_point_at_the_entry_not_at_an_earlier_match() {
        let err = parse(
            "# k logs\nlogfiles:\n  - filepath: /a/*.log\n    intakekey: k\n  - intakekey: 'k k'\n    filepath: /b/*.log\n",
        )
        .unwrap_err();
        let p = &err.problems()[0];
        assert!(p.message.starts_with("logfiles[1].intakekey"), "{err}");
        assert_eq!(
            p.location,
            Some(Location {
                line: 5,
                column: 17
            }),
            "{err}"
        );
    }

    #[test]
    fn every_semantic_problem_is_listed() {
        let err = parse(
            "logfiles:\n  - filepath: relative/*.log\n    intakekey: 'bad key'\nHTTPProxyURL: http://u:secret@proxy\nIntakeURL: ftp://x\n",
        )
        .unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems().len(), 4, "{text}");
        assert!(!text.contains("secret"), "{text}");
        assert!(
            text.contains("line 4, column 1: HTTPProxyURL: missing port"),
            "{text}"
        );
    }

    #[test]
    fn settings_without_effect_are_warned_about_where_they_are_written() {
        let (_, w) = parse(
            "roles:\n  - event-collector\n  - compliance-collector\nEnableDNSResolutions: true\n",
        )
        .unwrap();
        // EnableDNSResolutions is implemented (agent-dns): no warning for it.
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].message, WARN_COMPLIANCE_NO_EFFECT);
        assert_eq!(w[0].location, Some(Location { line: 3, column: 5 }));
        assert!(w[0].message.ends_with("has no effect in this version"));
        let (_, w) = parse("EnableDNSResolutions: false\nroles: [event-collector]\n").unwrap();
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn check_refuses_what_the_shipper_cannot_use_with_the_shippers_message() {
        for (text, key, reason) in [
            (
                "HTTPProxyURL: https://proxy:3128\n",
                "HTTPProxyURL",
                "https:// proxy",
            ),
            (
                "IntakeURL: http://relay:8080\n",
                "IntakeURL",
                "plain http://",
            ),
            (
                "IntakeURL: https://relay..corp\n",
                "IntakeURL",
                "not a valid DNS name",
            ),
            ("UpdateURL: http://mirror\n", "UpdateURL", "plain http://"),
        ] {
            let config: Config = serde_yaml::from_str(text).unwrap();
            let at_start = match key {
                "HTTPProxyURL" => config.proxy().unwrap_err(),
                "UpdateURL" => config.update_endpoint().unwrap_err(),
                _ => config.intake_endpoint().unwrap_err(),
            };
            let err = parse(text).unwrap_err();
            let p = &err.problems()[0];
            assert_eq!(p.message, at_start.to_string(), "{text}");
            assert!(p.message.starts_with(&format!("{key}: ")), "{p}");
            assert!(p.message.contains(reason), "{p}");
            assert_eq!(p.location, Some(Location { line: 1, column: 1 }));
        }
        // Empty means unset, for both.
        let (c, _) = parse("IntakeURL: ''\nHTTPProxyURL: ' '\n").unwrap();
        assert_eq!(c.proxy(), Ok(None));
        assert_eq!(
            c.intake_endpoint().unwrap().as_str(),
            "https://intake.sekoia.io"
        );
        // The literal-percent password of docs/config.md loads, and decodes as written.
        let (c, _) = parse("HTTPProxyURL: http://bob:S3cret%zzPW@proxy:3128\n").unwrap();
        assert_eq!(
            c.proxy().unwrap().unwrap().credentials(),
            Some(("bob", "S3cret%zzPW"))
        );
    }

    #[test]
    fn unknown_keys_are_warned_about_with_a_hint() {
        let (_, w) = parse(
            "httpproxyurl: x\nFoo: 1\nlogfiles:\n  - filepath: /a\n    intakekey: k\n    format: json\n",
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        let msg = &w[0].message;
        assert!(
            msg.contains("httpproxyurl (did you mean HTTPProxyURL?)"),
            "{msg}"
        );
        assert!(msg.contains("Foo"), "{msg}");
        assert!(msg.contains("logfiles[0].format"), "{msg}");
        assert_eq!(w[0].location, Some(Location { line: 1, column: 1 }));
    }

    #[test]
    fn load_reads_a_real_file_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "HTTPProxyURL: 12\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        let missing = Config::load(dir.path().join("nope.yaml")).unwrap_err();
        assert!(matches!(missing, ConfigError::Read { .. }), "{missing}");
        std::fs::write(&path, Config::default().to_yaml().unwrap()).unwrap();
        assert_eq!(Config::load(&path).unwrap().0, Config::default());
    }

    #[test]
    fn notepad_files_with_bom_and_crlf_are_read() {
        let (c, w) = parse(
            "\u{feff}HTTPProxyURL: \"http://proxy:3128\"\r\nlogfiles:\r\n  - filepath: C:\\logs\\*.log\r\n    intakekey: abc\r\nFoo: 1\r\n",
        )
        .unwrap();
        assert_eq!(c.logfiles[0].filepath, r"C:\logs\*.log");
        assert_eq!(w[0].location, Some(Location { line: 5, column: 1 }));
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let err = parse("- a\n- b\n").unwrap_err().to_string();
        assert!(err.contains("mapping"), "{err}");
    }

    #[test]
    fn intake_keys_are_checked() {
        assert!(validate_intake_key("AbC-12_3.x").is_ok());
        assert!(validate_intake_key("").is_err());
        assert!(validate_intake_key("ab cd")
            .unwrap_err()
            .contains("whitespace"));
        assert!(validate_intake_key("ab\tcd").is_err());
        assert!(validate_intake_key("ab/cd").unwrap_err().contains("'/'"));
        assert!(validate_intake_key(&"a".repeat(257)).is_err());
    }
}
