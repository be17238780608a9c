//! Key templates and invalidation patterns: `"tenant:<self.tenant>:user:<user.id>"`.
//!
//! Errors point at the string literal (stable Rust cannot point inside it),
//! and say which part is wrong.

use syn::LitStr;

/// Whether the template is a key (`#[cached]`) or a pattern (`#[invalidates]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Key,
    Pattern,
}

/// `<root.field.field>`.
#[derive(Debug, Clone)]
pub(crate) struct Placeholder {
    /// `self` or a parameter name.
    pub(crate) root: String,
    /// Field names or tuple indices after the root.
    pub(crate) fields: Vec<String>,
}

impl Placeholder {
    pub(crate) fn text(&self) -> String {
        let mut s = self.root.clone();
        for f in &self.fields {
            s.push('.');
            s.push_str(f);
        }
        s
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Lit(String),
    Hole(Placeholder),
}

#[derive(Clone)]
pub(crate) struct Template {
    pub(crate) lit: LitStr,
    pub(crate) segments: Vec<Segment>,
}

const GLOB: [char; 5] = ['*', '?', '[', ']', '\\'];

pub(crate) fn parse(lit: &LitStr, mode: Mode) -> syn::Result<Template> {
    let text = lit.value();
    let err = |msg: String| syn::Error::new(lit.span(), msg);
    if text.is_empty() {
        return Err(err("empty template".into()));
    }
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        match c {
            '<' => {
                let Some(end) = rest.find('>') else {
                    return Err(err(format!(
                        "unclosed `<` in `{text}`: placeholders look like `<id>` or `<user.id>`"
                    )));
                };
                let inner = &rest[1..end];
                let placeholder =
                    parse_placeholder(inner).map_err(|m| err(format!("{m} in `{text}`")))?;
                if !literal.is_empty() {
                    segments.push(Segment::Lit(std::mem::take(&mut literal)));
                }
                if let Some(Segment::Hole(prev)) = segments.last() {
                    return Err(err(format!(
                        "placeholders `<{}>` and `<{}>` touch in `{text}`: separate them with literal text such as `:`, or their values could run together",
                        prev.text(),
                        placeholder.text()
                    )));
                }
                segments.push(Segment::Hole(placeholder));
                rest = &rest[end + 1..];
            }
            '>' => return Err(err(format!("unmatched `>` in `{text}`"))),
            '%' | '~' => {
                return Err(err(format!(
                    "`{c}` cannot appear in a template (`{text}`): it marks escaped and hashed values in keys"
                )));
            }
            c if mode == Mode::Key && GLOB.contains(&c) => {
                return Err(err(format!(
                    "a key template cannot contain `{c}` (`{text}`): glob characters belong in `#[invalidates]` patterns"
                )));
            }
            c => {
                literal.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !literal.is_empty() {
        segments.push(Segment::Lit(literal));
    }
    if mode == Mode::Pattern {
        check_widening(&segments).map_err(|m| err(format!("{m} in `{text}`")))?;
    }
    Ok(Template {
        lit: lit.clone(),
        segments,
    })
}

fn parse_placeholder(inner: &str) -> Result<Placeholder, String> {
    if inner.trim().is_empty() {
        return Err("empty placeholder `<>`".into());
    }
    let mut parts = inner.split('.');
    let root = parts.next().unwrap_or_default();
    if !is_ident(root) {
        return Err(format!(
            "`<{inner}>` is not a placeholder: expected a parameter name, `self`, or a field path like `user.id`"
        ));
    }
    let mut fields = Vec::new();
    for f in parts {
        if !(is_ident(f) || (!f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))) {
            return Err(format!(
                "`<{inner}>` is not a placeholder: `{f}` is not a field name"
            ));
        }
        fields.push(f.to_owned());
    }
    Ok(Placeholder {
        root: root.to_owned(),
        fields,
    })
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

/// A wildcard right next to a value would match other values' keys too:
/// `user:<id>*` with id 4 also matches user 42.
fn check_widening(segments: &[Segment]) -> Result<(), String> {
    for (i, seg) in segments.iter().enumerate() {
        let Segment::Hole(p) = seg else { continue };
        let wild = |c: Option<char>| matches!(c, Some('*' | '?' | '[' | ']'));
        if let Some(Segment::Lit(next)) = segments.get(i + 1)
            && wild(next.chars().next())
        {
            return Err(format!(
                "a wildcard right after `<{}>` would also match keys of other values (`4*` matches `42`); put a separator between them, e.g. `<{}>:*`",
                p.text(),
                p.text()
            ));
        }
        if let Some(Segment::Lit(prev)) = i.checked_sub(1).and_then(|j| segments.get(j))
            && wild(prev.chars().last())
        {
            return Err(format!(
                "a wildcard right before `<{}>` would also match keys of other values (`*2` matches `42`); put a separator between them, e.g. `*:<{}>`",
                p.text(),
                p.text()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> LitStr {
        LitStr::new(s, proc_macro2::Span::call_site())
    }

    fn err(s: &str, mode: Mode) -> String {
        match parse(&lit(s), mode) {
            Ok(_) => panic!("expected an error for {s}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_paths() {
        let t = parse(
            &lit("tenant:<self.tenant>:user:<user.id>:<pair.0>"),
            Mode::Key,
        )
        .unwrap();
        let holes: Vec<String> = t
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Hole(p) => Some(p.text()),
                Segment::Lit(_) => None,
            })
            .collect();
        assert_eq!(holes, ["self.tenant", "user.id", "pair.0"]);
    }

    #[test]
    fn rejects() {
        assert!(err("a:<id", Mode::Key).contains("unclosed"));
        assert!(err("a:<>", Mode::Key).contains("empty placeholder"));
        assert!(err("a:<1x>", Mode::Key).contains("not a placeholder"));
        assert!(err("<a><b>", Mode::Key).contains("touch"));
        assert!(err("a:*", Mode::Key).contains("glob"));
        assert!(err("a>b", Mode::Key).contains("unmatched"));
        assert!(err("r:<a>%<b>", Mode::Key).contains("cannot appear"));
        assert!(err("t:<a>~x", Mode::Pattern).contains("cannot appear"));
        assert!(err("u:<id>*", Mode::Pattern).contains("right after"));
        assert!(err("u*<id>:x", Mode::Pattern).contains("right before"));
        assert!(parse(&lit("u:<id>:*"), Mode::Pattern).is_ok());
    }
}
