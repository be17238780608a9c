//! Redis-compatible glob patterns for invalidation.
//!
//! Hand-written rather than taken from `glob`/`globset`: those implement
//! file-path semantics (separators, `**`, case rules), while invalidation must
//! select exactly the keys Redis's `SCAN MATCH` selects, so the in-process tier
//! and Redis always agree. The grammar is Redis's `stringmatchlen`: `*`, `?`,
//! `[abc]`, `[^a]`, `[a-z]` and `\x`, matched on bytes, case-sensitive.
//! Matching is iterative with a single backtrack point, so it is
//! O(pattern × key) in the worst case (no exponential blow-up on `*a*a*a*b`).

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Byte(u8),
    AnyByte,
    Star,
    Class { negate: bool, ranges: Vec<(u8, u8)> },
}

/// The text of `tokens` if they are all literal bytes (and UTF-8).
fn literal(tokens: &[Token]) -> Option<String> {
    let bytes: Option<Vec<u8>> = tokens
        .iter()
        .map(|t| match t {
            Token::Byte(b) => Some(*b),
            _ => None,
        })
        .collect();
    bytes.and_then(|b| String::from_utf8(b).ok())
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    tokens: Vec<Token>,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Glob {
        let p = pattern.as_bytes();
        let mut tokens = Vec::with_capacity(p.len());
        let mut i = 0;
        while i < p.len() {
            match p[i] {
                b'*' => {
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                    i += 1;
                }
                b'?' => {
                    tokens.push(Token::AnyByte);
                    i += 1;
                }
                b'\\' if i + 1 < p.len() => {
                    tokens.push(Token::Byte(p[i + 1]));
                    i += 2;
                }
                b'[' => {
                    i += 1;
                    let negate = p.get(i) == Some(&b'^');
                    if negate {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    // An unterminated class runs to the end of the pattern, as in Redis.
                    while i < p.len() && p[i] != b']' {
                        if p[i] == b'\\' && i + 1 < p.len() {
                            ranges.push((p[i + 1], p[i + 1]));
                            i += 2;
                        } else if i + 2 < p.len() && p[i + 1] == b'-' {
                            let (a, b) = (p[i], p[i + 2]);
                            ranges.push((a.min(b), a.max(b)));
                            i += 3;
                        } else {
                            ranges.push((p[i], p[i]));
                            i += 1;
                        }
                    }
                    i += 1; // the closing `]`, if any
                    tokens.push(Token::Class { negate, ranges });
                }
                b => {
                    tokens.push(Token::Byte(b));
                    i += 1;
                }
            }
        }
        Glob { tokens }
    }

    /// A pattern matching exactly `key`, whatever characters it holds.
    pub(crate) fn exact_key(key: &str) -> Glob {
        Glob {
            tokens: key.bytes().map(Token::Byte).collect(),
        }
    }

    /// The key this pattern matches if it has no wildcard, else `None`.
    pub(crate) fn exact(&self) -> Option<String> {
        literal(&self.tokens)
    }

    /// The literal text before the first wildcard (all of it for an exact key).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn leading_literal(&self) -> String {
        let bytes: Vec<u8> = self
            .tokens
            .iter()
            .map_while(|t| match t {
                Token::Byte(b) => Some(*b),
                _ => None,
            })
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// `Some(p)` if the pattern is a literal `p` followed by one `*` and
    /// nothing else: it matches exactly the keys that start with `p`.
    pub(crate) fn prefix(&self) -> Option<String> {
        let (last, rest) = self.tokens.split_last()?;
        if *last != Token::Star {
            return None;
        }
        literal(rest)
    }

    pub(crate) fn matches(&self, key: &str) -> bool {
        let s = key.as_bytes();
        let t = &self.tokens;
        let (mut ti, mut si) = (0usize, 0usize);
        // Where to resume after the last `*`: (token after the star, next key byte).
        let mut backtrack: Option<(usize, usize)> = None;
        loop {
            if ti < t.len() {
                match &t[ti] {
                    Token::Star => {
                        backtrack = Some((ti + 1, si));
                        ti += 1;
                        continue;
                    }
                    tok if si < s.len() && single(tok, s[si]) => {
                        ti += 1;
                        si += 1;
                        continue;
                    }
                    _ => {}
                }
            } else if si == s.len() {
                return true;
            }
            match backtrack {
                Some((bt, bs)) if bs < s.len() => {
                    backtrack = Some((bt, bs + 1));
                    ti = bt;
                    si = bs + 1;
                }
                _ => return false,
            }
        }
    }
}

fn single(tok: &Token, b: u8) -> bool {
    match tok {
        Token::Byte(x) => *x == b,
        Token::AnyByte => true,
        Token::Class { negate, ranges } => {
            ranges.iter().any(|&(lo, hi)| lo <= b && b <= hi) != *negate
        }
        Token::Star => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        Glob::new(p).matches(s)
    }

    #[test]
    fn redis_semantics() {
        assert!(m("user:42:*", "user:42:profile"));
        assert!(m("user:42:*", "user:42:"));
        assert!(!m("user:42:*", "user:420:profile"));
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaab"));
        assert!(!m("*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaac"));
        assert!(m("a*", "a"));
        assert!(!m("a", "ab"));
        assert!(!m("x[", "x"), "an unterminated class still needs a byte");
        assert!(m("x[ab", "xb"), "an unterminated class runs to the end");
    }

    #[test]
    fn exact_and_wildcards() {
        assert_eq!(Glob::new("a:b").exact().as_deref(), Some("a:b"));
        assert_eq!(Glob::new("a\\*b").exact().as_deref(), Some("a*b"));
        assert_eq!(Glob::new("a:*").exact(), None);
    }
}
