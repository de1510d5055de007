//! `System.Text.RegularExpressions.Regex` on the `regex` crate: .NET options,
//! .NET group numbering (unnamed groups first, then named ones), .NET
//! replacement patterns (`$1`, `${name}`, `$$`, `$&`...), `Split` with
//! captured groups, `Escape`/`Unescape`.
//!
//! The `regex` crate guarantees linear-time matching; it has no lookaround,
//! backreferences or atomic groups, which are reported by name.

use std::sync::Arc;

use regex::{Regex, RegexBuilder};

/// `RegexOptions.IgnoreCase`.
pub const IGNORE_CASE: i64 = 1;
/// `RegexOptions.Multiline`.
pub const MULTILINE: i64 = 2;
/// `RegexOptions.ExplicitCapture`.
pub const EXPLICIT_CAPTURE: i64 = 4;
/// `RegexOptions.Compiled` (no effect here).
pub const COMPILED: i64 = 8;
/// `RegexOptions.Singleline`.
pub const SINGLELINE: i64 = 16;
/// `RegexOptions.IgnorePatternWhitespace`.
pub const IGNORE_WHITESPACE: i64 = 32;
/// `RegexOptions.RightToLeft` (unsupported).
pub const RIGHT_TO_LEFT: i64 = 64;
/// `RegexOptions.ECMAScript` (unsupported).
pub const ECMASCRIPT: i64 = 256;
/// `RegexOptions.CultureInvariant` (no effect here).
pub const CULTURE_INVARIANT: i64 = 512;
/// `RegexOptions.NonBacktracking` (what this engine always does).
pub const NON_BACKTRACKING: i64 = 1024;

/// `RegexOptions` members and their .NET values.
pub const OPTIONS: &[(&str, i64)] = &[
    ("None", 0),
    ("IgnoreCase", IGNORE_CASE),
    ("Multiline", MULTILINE),
    ("ExplicitCapture", EXPLICIT_CAPTURE),
    ("Compiled", COMPILED),
    ("Singleline", SINGLELINE),
    ("IgnorePatternWhitespace", IGNORE_WHITESPACE),
    ("RightToLeft", RIGHT_TO_LEFT),
    ("ECMAScript", ECMASCRIPT),
    ("CultureInvariant", CULTURE_INVARIANT),
    ("NonBacktracking", NON_BACKTRACKING),
];

/// Longest pattern accepted from a run-time value.
pub const MAX_RUNTIME_PATTERN: usize = 4096;
/// Compiled-program size limit for patterns from run-time values (bytes).
pub const RUNTIME_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache limit for patterns from run-time values (bytes).
pub const RUNTIME_DFA_LIMIT: usize = 1 << 20;
/// Most matches `Matches` returns and parts `Split` makes (then the evaluation fails).
pub const MAX_MATCHES: usize = 100_000;

/// A compiled .NET regular expression.
#[derive(Debug, Clone)]
pub struct DotnetRegex {
    /// The pattern as written.
    pub pattern: Arc<str>,
    /// The `RegexOptions` bits.
    pub options: i64,
    re: Regex,
    /// .NET group number → the `regex` crate's group index.
    order: Arc<[usize]>,
    /// Group names and their .NET numbers.
    names: Arc<[(Arc<str>, usize)]>,
}

impl PartialEq for DotnetRegex {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.options == other.options
    }
}

/// One group of a match: where it starts (in chars) and its text; `None`
/// when it did not take part.
pub type GroupData = Option<(i64, Arc<str>)>;

/// The result of `Match`: every group in .NET order (group 0 is the whole
/// match; all `None` when the match failed) and the names.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchData {
    /// Groups by .NET number.
    pub groups: Vec<GroupData>,
    /// Group names and their .NET numbers.
    pub names: Arc<[(Arc<str>, usize)]>,
    /// The input, for `Result(...)`'s `` $` ``, `$'` and `$_`.
    pub input: Arc<str>,
    /// Byte range of the whole match in `input`.
    pub range: (usize, usize),
}

impl MatchData {
    /// Whether the regex matched.
    pub fn success(&self) -> bool {
        matches!(self.groups.first(), Some(Some(_)))
    }

    /// `Groups[name]`: a name, or a number given as text. A group that does
    /// not exist is an unsuccessful group, as in .NET.
    pub fn group_by_name(&self, name: &str) -> GroupData {
        if let Some((_, i)) = self.names.iter().find(|(n, _)| &**n == name) {
            return self.groups.get(*i).cloned().flatten();
        }
        match name.parse::<usize>() {
            Ok(i) => self.groups.get(i).cloned().flatten(),
            Err(_) => None,
        }
    }

    /// `Groups[i]`.
    pub fn group(&self, i: i64) -> GroupData {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.groups.get(i).cloned().flatten())
    }
}

fn one_line(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or(s)
            .to_string(),
        regex::Error::CompiledTooBig(n) => {
            format!("the compiled pattern is larger than the {n}-byte limit")
        }
        other => other.to_string(),
    }
}

/// A .NET construct the `regex` crate lacks, named, if the pattern uses one.
fn unsupported_construct(pattern: &str) -> Option<&'static str> {
    let b = pattern.as_bytes();
    let mut i = 0;
    let mut in_class = false;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                match b.get(i + 1) {
                    Some(b'1'..=b'9') if !in_class => return Some("backreferences (\\1)"),
                    Some(b'k') if !in_class => return Some("backreferences (\\k<name>)"),
                    Some(b'Z') if !in_class => return Some("\\Z (use $ or \\z)"),
                    Some(b'G') if !in_class => return Some("\\G"),
                    _ => {}
                }
                i += 2;
                continue;
            }
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            b'(' if !in_class => {
                let rest = &b[i + 1..];
                if rest.starts_with(b"?=") || rest.starts_with(b"?!") {
                    return Some("lookahead (?=...) / (?!...)");
                }
                if rest.starts_with(b"?<=") || rest.starts_with(b"?<!") {
                    return Some("lookbehind (?<=...) / (?<!...)");
                }
                if rest.starts_with(b"?>") {
                    return Some("atomic groups (?>...)");
                }
                if rest.starts_with(b"?'") {
                    return Some("(?'name'...) groups (use (?<name>...))");
                }
                if rest.starts_with(b"?(") {
                    return Some("conditionals (?(...)...)");
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Compiles `pattern` with .NET `options`. `runtime` patterns (from values
/// known only per request) get a length and size limit. The error names the
/// problem.
pub fn compile(pattern: &str, options: i64, runtime: bool) -> Result<DotnetRegex, String> {
    let quoted = if pattern.chars().count() > 60 {
        format!("{}...", pattern.chars().take(60).collect::<String>())
    } else {
        pattern.to_string()
    };
    let bad = |why: &str| format!("invalid regular expression '{quoted}': {why}");
    for (name, bit) in [
        ("RightToLeft", RIGHT_TO_LEFT),
        ("ECMAScript", ECMASCRIPT),
        ("ExplicitCapture", EXPLICIT_CAPTURE),
    ] {
        if options & bit != 0 {
            return Err(format!("RegexOptions.{name} is not supported"));
        }
    }
    let known = OPTIONS.iter().fold(0, |acc, (_, v)| acc | v);
    if options & !known != 0 {
        return Err(format!("invalid RegexOptions value {options}"));
    }
    if runtime && pattern.len() > MAX_RUNTIME_PATTERN {
        return Err(bad(&format!(
            "longer than {MAX_RUNTIME_PATTERN} bytes (a pattern from a run-time value)"
        )));
    }
    if let Some(what) = unsupported_construct(pattern) {
        return Err(bad(&format!(
            "{what} is not supported (the gateway's regex engine has no lookaround, backreferences or atomic groups)"
        )));
    }
    let mut b = RegexBuilder::new(pattern);
    b.case_insensitive(options & IGNORE_CASE != 0)
        .multi_line(options & MULTILINE != 0)
        .dot_matches_new_line(options & SINGLELINE != 0)
        .ignore_whitespace(options & IGNORE_WHITESPACE != 0)
        .nest_limit(100);
    if runtime {
        b.size_limit(RUNTIME_SIZE_LIMIT)
            .dfa_size_limit(RUNTIME_DFA_LIMIT)
            .nest_limit(50);
    }
    let re = b.build().map_err(|e| bad(&one_line(&e)))?;
    // .NET numbers unnamed groups first, then named ones, each left to right.
    let mut order = vec![0];
    let mut named = Vec::new();
    for (i, n) in re.capture_names().enumerate().skip(1) {
        match n {
            None => order.push(i),
            Some(n) => named.push((i, n)),
        }
    }
    let mut names = Vec::new();
    for (i, n) in named {
        names.push((Arc::<str>::from(n), order.len()));
        order.push(i);
    }
    Ok(DotnetRegex {
        pattern: pattern.into(),
        options,
        re,
        order: order.into(),
        names: names.into(),
    })
}

fn char_index(s: &str, byte: usize) -> i64 {
    s.get(..byte).map_or(0, |p| p.chars().count()) as i64
}

impl DotnetRegex {
    /// `IsMatch(input)`.
    pub fn is_match(&self, input: &str) -> bool {
        self.re.is_match(input)
    }

    fn data(&self, input: &Arc<str>, caps: Option<&regex::Captures<'_>>) -> MatchData {
        let groups = self
            .order
            .iter()
            .map(|&i| {
                caps.and_then(|c| c.get(i))
                    .map(|m| (char_index(input, m.start()), Arc::from(m.as_str())))
            })
            .collect();
        let range = caps
            .and_then(|c| c.get(0))
            .map_or((0, 0), |m| (m.start(), m.end()));
        MatchData {
            groups,
            names: self.names.clone(),
            input: input.clone(),
            range,
        }
    }

    /// `Match(input)`: the first match (or an unsuccessful one).
    pub fn find(&self, input: &Arc<str>) -> MatchData {
        let caps = self.re.captures(input);
        self.data(input, caps.as_ref())
    }

    /// `Matches(input)`: every match, at most `limit`.
    pub fn find_all(&self, input: &Arc<str>, limit: usize) -> Result<Vec<MatchData>, String> {
        let mut out = Vec::new();
        for c in self.re.captures_iter(input) {
            if out.len() >= limit {
                return Err(format!("more than {limit} regex matches"));
            }
            out.push(self.data(input, Some(&c)));
        }
        Ok(out)
    }

    /// `Replace(input, replacement)` with .NET's substitutions.
    pub fn replace(
        &self,
        input: &str,
        replacement: &str,
        max_len: usize,
    ) -> Result<String, String> {
        let mut out = String::new();
        let mut last = 0;
        for c in self.re.captures_iter(input) {
            let Some(m) = c.get(0) else { continue };
            out.push_str(input.get(last..m.start()).unwrap_or(""));
            expand(
                replacement,
                &|i| self.rust_group(&c, i),
                self.order.len(),
                &self.names,
                (input, (m.start(), m.end())),
                &mut out,
                max_len,
            );
            last = m.end();
            if out.len() > max_len {
                return Err("the result of Regex.Replace is too long".into());
            }
        }
        out.push_str(input.get(last..).unwrap_or(""));
        Ok(out)
    }

    fn rust_group<'h>(&self, c: &regex::Captures<'h>, net: usize) -> Option<&'h str> {
        self.order
            .get(net)
            .and_then(|&i| c.get(i))
            .map(|m| m.as_str())
    }

    /// `Split(input)`: the text between matches, with the text of captured
    /// groups in between, as .NET does.
    pub fn split(&self, input: &str, limit: usize) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        let mut last = 0;
        for c in self.re.captures_iter(input) {
            let Some(m) = c.get(0) else { continue };
            out.push(input.get(last..m.start()).unwrap_or("").to_string());
            for net in 1..self.order.len() {
                if let Some(g) = self.rust_group(&c, net) {
                    out.push(g.to_string());
                }
            }
            last = m.end();
            if out.len() > limit {
                return Err(format!("more than {limit} parts from Regex.Split"));
            }
        }
        out.push(input.get(last..).unwrap_or("").to_string());
        Ok(out)
    }
}

/// `Match.Result(replacement)` (output cut short past `max_len` bytes: the
/// caller fails then).
pub fn result(m: &MatchData, replacement: &str, max_len: usize) -> String {
    let mut out = String::new();
    if !m.success() {
        return out;
    }
    let get = |i: usize| m.groups.get(i).and_then(|g| g.as_ref()).map(|(_, s)| &**s);
    expand(
        replacement,
        &get,
        m.groups.len(),
        &m.names,
        (&m.input, m.range),
        &mut out,
        max_len,
    );
    out
}

/// .NET substitutions: `$$`, `$&`/`$0`, `$n`, `${name}`/`${n}`, `` $` ``,
/// `$'`, `$+`, `$_`; anything else is literal.
fn expand<'a>(
    rep: &str,
    group: &dyn Fn(usize) -> Option<&'a str>,
    count: usize,
    names: &[(Arc<str>, usize)],
    (input, range): (&str, (usize, usize)),
    out: &mut String,
    max_len: usize,
) {
    let mut rest = rep;
    while let Some(i) = rest.find('$') {
        if out.len() > max_len {
            return;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let mut chars = after.chars();
        match chars.next() {
            Some('$') => {
                out.push('$');
                rest = &after[1..];
            }
            Some('&') => {
                out.push_str(group(0).unwrap_or(""));
                rest = &after[1..];
            }
            Some('`') => {
                out.push_str(input.get(..range.0).unwrap_or(""));
                rest = &after[1..];
            }
            Some('\'') => {
                out.push_str(input.get(range.1..).unwrap_or(""));
                rest = &after[1..];
            }
            Some('_') => {
                out.push_str(input);
                rest = &after[1..];
            }
            Some('+') => {
                let last = (1..count).rev().find(|&g| group(g).is_some());
                out.push_str(last.and_then(group).unwrap_or(""));
                rest = &after[1..];
            }
            Some('{') => {
                let close = after.find('}');
                let name = close.map(|e| &after[1..e]);
                let idx = name.and_then(|n| {
                    names
                        .iter()
                        .find(|(x, _)| &**x == n)
                        .map(|(_, i)| *i)
                        .or_else(|| n.parse::<usize>().ok().filter(|i| *i < count))
                });
                match (idx, close) {
                    (Some(g), Some(e)) => {
                        out.push_str(group(g).unwrap_or(""));
                        rest = &after[e + 1..];
                    }
                    _ => {
                        out.push('$');
                        rest = after;
                    }
                }
            }
            Some(c) if c.is_ascii_digit() => {
                // The longest run of digits naming an existing group.
                let digits = after.bytes().take_while(|b| b.is_ascii_digit()).count();
                let mut done = false;
                for n in (1..=digits).rev() {
                    if let Ok(g) = after[..n].parse::<usize>() {
                        if g < count {
                            out.push_str(group(g).unwrap_or(""));
                            rest = &after[n..];
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    out.push('$');
                    rest = after;
                }
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// `Regex.Escape(s)`.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '*' | '+' | '?' | '|' | '{' | '[' | '(' | ')' | '^' | '$' | '.' | '#' => {
                out.push('\\');
                out.push(c);
            }
            ' ' => out.push_str("\\ "),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            _ => out.push(c),
        }
    }
    out
}

/// `Regex.Unescape(s)`.
pub fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('a') => out.push('\x07'),
            Some('e') => out.push('\x1b'),
            Some('v') => out.push('\x0b'),
            Some(k @ ('x' | 'u')) => {
                let n = if k == 'x' { 2 } else { 4 };
                let mut hex = String::new();
                while hex.len() < n {
                    match it.peek() {
                        Some(h) if h.is_ascii_hexdigit() => {
                            hex.push(*h);
                            it.next();
                        }
                        _ => break,
                    }
                }
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) if hex.len() == n => out.push(ch),
                    _ => {
                        out.push(k);
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}
