//! Compile-time check of `ttl = "..."`: preset names and duration strings.
//!
//! The grammar mirrors `cache_core::parse_duration` (the runtime cannot be a
//! dependency of a proc-macro crate); the `tests` crate checks both agree.

use proc_macro2::TokenStream;
use quote::quote;

/// Preset names and the runtime variant each maps to.
pub(crate) const PRESETS: [(&str, &str); 9] = [
    ("short", "Short"),
    ("medium", "Medium"),
    ("long", "Long"),
    ("very_long", "VeryLong"),
    ("user_context", "UserContext"),
    ("dashboard", "Dashboard"),
    ("report", "Report"),
    ("search", "Search"),
    ("list", "List"),
];

/// A checked TTL.
#[derive(Clone)]
pub(crate) enum Ttl {
    Preset(&'static str),
    Millis(u64),
    /// A preset the application declares (`ttl_presets!`): a path to its
    /// `static`, resolved (and any typo reported) by the compiler.
    Custom(syn::Path),
}

impl Ttl {
    /// `value` is a preset name (in any case: `"USER_CONTEXT"` is the
    /// constant name services ported from Python have) or a duration string.
    pub(crate) fn from_str(value: &str) -> Result<Ttl, String> {
        if let Some((_, variant)) = PRESETS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(value))
        {
            return Ok(Ttl::Preset(variant));
        }
        let looks_like_duration = value.trim_start().starts_with(|c: char| c.is_ascii_digit());
        if looks_like_duration {
            return parse_millis(value).map(Ttl::Millis);
        }
        let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        let hint = match crate::nearest(&value.to_ascii_lowercase(), &names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => String::new(),
        };
        Err(format!(
            "unknown TTL preset `{value}`{hint}\nvalid presets: {}; or a duration such as \"90s\", \"15m\", \"2h\", \"1d\", or whole seconds (`ttl = 90`); \
             or a preset of your own, declared with `cache_core::ttl_presets! {{ pub {} = \"1h\"; }}` and named without quotes: `ttl = {}`",
            names.join(", "),
            value.to_ascii_uppercase(),
            value.to_ascii_uppercase(),
        ))
    }

    pub(crate) fn tokens(&self, krate: &syn::Path) -> TokenStream {
        match self {
            Ttl::Preset(variant) => {
                let v = syn::Ident::new(variant, proc_macro2::Span::call_site());
                quote!(#krate::__private::Ttl::Preset(#krate::__private::Preset::#v))
            }
            Ttl::Millis(ms) => {
                quote!(#krate::__private::Ttl::Fixed(#krate::__private::Duration::from_millis(#ms)))
            }
            Ttl::Custom(path) => quote!(#krate::__private::Ttl::Custom(&#path)),
        }
    }
}

const SYNTAX: &str =
    "expected e.g. \"90s\", \"15m\", \"2h\", \"1d\", \"1h30m\", \"250ms\" or whole seconds";

/// Parses a duration string into milliseconds; zero is refused.
pub(crate) fn parse_millis(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad = || format!("invalid duration `{text}`: {SYNTAX}");
    let too_long = || format!("duration `{text}` is too long");
    let total: u64 = if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1000))
            .ok_or_else(too_long)?
    } else {
        let b = s.as_bytes();
        let (mut i, mut total) = (0usize, 0u64);
        if b.is_empty() {
            return Err(bad());
        }
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(bad());
            }
            let n: u64 = s[start..i].parse().map_err(|_| too_long())?;
            let unit = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let per: u64 = match &s[unit..i] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            total = n
                .checked_mul(per)
                .and_then(|p| total.checked_add(p))
                .ok_or_else(too_long)?;
        }
        total
    };
    if total == 0 {
        return Err(format!(
            "invalid duration `{text}`: a TTL must be longer than zero"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_durations() {
        assert!(matches!(
            Ttl::from_str("very_long"),
            Ok(Ttl::Preset("VeryLong"))
        ));
        assert!(matches!(
            Ttl::from_str("USER_CONTEXT"),
            Ok(Ttl::Preset("UserContext"))
        ));
        assert!(
            Ttl::from_str("USER_CONTXT")
                .err()
                .unwrap_or_default()
                .contains("`user_context`")
        );
        assert!(matches!(Ttl::from_str("1h30m"), Ok(Ttl::Millis(5_400_000))));
        assert!(matches!(Ttl::from_str("90"), Ok(Ttl::Millis(90_000))));
        let e = Ttl::from_str("mediun").err().unwrap_or_default();
        assert!(e.contains("did you mean `medium`?"), "{e}");
        assert!(parse_millis("15x").is_err());
        assert!(parse_millis("0m").is_err());
    }
}
