//! Attribute arguments, parsed as tokens (not re-parsed strings), each option
//! set at most once, every mistake collected and reported at its own span.

use proc_macro2::Span;
use syn::ext::IdentExt as _;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, LitBool, LitFloat, LitInt, LitStr, Path, Token};

use crate::ttl::Ttl;

mod kw {
    syn::custom_keyword!(ttl);
    syn::custom_keyword!(key);
    syn::custom_keyword!(cache);
    syn::custom_keyword!(cache_none);
    syn::custom_keyword!(unless);
    syn::custom_keyword!(format);
    syn::custom_keyword!(version);
    syn::custom_keyword!(compress);
    syn::custom_keyword!(l1_ttl);
    syn::custom_keyword!(lock);
    syn::custom_keyword!(stale_if_error);
    syn::custom_keyword!(timeout);
    syn::custom_keyword!(refresh);
    syn::custom_keyword!(ignore);
    syn::custom_keyword!(ttl_from);
    syn::custom_keyword!(tags);
}

/// `refresh = ...`: when a value is refreshed in the background.
pub(crate) enum Refresh {
    /// After this fraction of the TTL.
    After(f64),
    XFetch,
}

/// Value formats and the runtime variant each maps to.
const FORMATS: [(&str, &str); 4] = [
    ("postcard", "Postcard"),
    ("json", "Json"),
    ("msgpack", "MessagePack"),
    ("bincode", "Bincode"),
];
const COMPRESSION: [(&str, &str); 3] = [("auto", "Auto"), ("always", "Always"), ("never", "Never")];

/// A string option with a fixed set of names: the runtime variant, or an
/// error at the literal that lists the names and suggests the nearest.
fn one_of(
    lit: &LitStr,
    what: &str,
    table: &[(&str, &'static str)],
    errors: &mut Errors,
) -> Option<(&'static str, Span)> {
    let value = lit.value();
    if let Some((_, variant)) = table.iter().find(|(n, _)| *n == value) {
        return Some((variant, lit.span()));
    }
    let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
    let hint = match crate::nearest(&value, &names) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    };
    errors.at(
        lit.span(),
        format!(
            "unknown {what} `{value}`{hint}\nvalid: {}",
            names.join(", ")
        ),
    );
    None
}

/// `"90s"`-style strings or whole seconds, in milliseconds.
fn duration_ms(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<Option<u64>> {
    if input.peek(LitInt) {
        let lit: LitInt = input.parse()?;
        return Ok(match lit.base10_parse::<u64>() {
            Ok(0) => {
                errors.at(lit.span(), "a TTL must be longer than zero");
                None
            }
            Ok(secs) => secs.checked_mul(1000).or_else(|| {
                errors.at(lit.span(), "TTL is too long");
                None
            }),
            Err(e) => {
                errors.push(e);
                None
            }
        });
    }
    let lit: LitStr = input.parse()?;
    Ok(match crate::ttl::parse_millis(&lit.value()) {
        Ok(ms) => Some(ms),
        Err(msg) => {
            errors.at(lit.span(), msg);
            None
        }
    })
}

/// Collects errors so all of them are reported at once.
#[derive(Default)]
pub(crate) struct Errors(Vec<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        self.0.push(e);
    }

    pub(crate) fn at(&mut self, span: Span, msg: impl std::fmt::Display) {
        self.0.push(syn::Error::new(span, msg));
    }

    pub(crate) fn combine(self) -> Option<syn::Error> {
        self.0.into_iter().reduce(|mut a, b| {
            a.combine(b);
            a
        })
    }
}

/// An option that may be given once (`serde_derive`'s `Attr<T>`).
pub(crate) struct Once<T> {
    name: &'static str,
    value: Option<(Span, T)>,
}

impl<T> Once<T> {
    fn new(name: &'static str) -> Self {
        Once { name, value: None }
    }

    fn set(&mut self, span: Span, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.at(span, format!("duplicate `{}` option", self.name));
        } else {
            self.value = Some((span, value));
        }
    }

    pub(crate) fn get(&self) -> Option<&T> {
        self.value.as_ref().map(|(_, v)| v)
    }

    pub(crate) fn span(&self) -> Option<Span> {
        self.value.as_ref().map(|(s, _)| *s)
    }

    pub(crate) fn take(&mut self) -> Option<T> {
        self.value.take().map(|(_, v)| v)
    }
}

/// `crate = "path"`: where the runtime is, for renamed dependencies.
fn parse_crate(
    input: ParseStream<'_>,
    slot: &mut Once<Path>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let tok: Token![crate] = input.parse()?;
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    match lit.parse_with(Path::parse_mod_style) {
        Ok(mut path) => {
            if path.leading_colon.is_none() {
                path.leading_colon = Some(Token![::](lit.span()));
            }
            slot.set(tok.span, path, errors);
        }
        Err(_) => errors.at(lit.span(), format!("`{}` is not a crate path", lit.value())),
    }
    Ok(())
}

fn parse_cache_name(
    input: ParseStream<'_>,
    slot: &mut Once<LitStr>,
    errors: &mut Errors,
) -> syn::Result<()> {
    let tok: kw::cache = input.parse()?;
    input.parse::<Token![=]>()?;
    let lit: LitStr = input.parse()?;
    if lit.value().trim().is_empty() {
        errors.at(lit.span(), "a cache name cannot be empty");
    }
    slot.set(tok.span, lit, errors);
    Ok(())
}

/// Reports an unknown option and skips its value, so later options are still checked.
fn unknown_option(input: ParseStream<'_>, valid: &[&str], errors: &mut Errors) -> syn::Result<()> {
    let ident: syn::Ident = syn::ext::IdentExt::parse_any(input)?;
    let name = ident.to_string();
    let hint = match crate::nearest(&name, valid) {
        Some(n) => format!("; did you mean `{n}`?"),
        None => String::new(),
    };
    errors.at(
        ident.span(),
        format!(
            "unknown option `{name}`{hint}\nvalid options: {}",
            valid.join(", ")
        ),
    );
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        input.parse::<Expr>()?;
    }
    Ok(())
}

fn comma(input: ParseStream<'_>) -> syn::Result<bool> {
    if input.is_empty() {
        return Ok(false);
    }
    input.parse::<Token![,]>()?;
    Ok(!input.is_empty())
}

/// `#[cached(...)]`.
pub(crate) struct CachedArgs {
    pub(crate) ttl: Once<Ttl>,
    pub(crate) key: Once<LitStr>,
    pub(crate) cache: Once<LitStr>,
    pub(crate) cache_none: Once<bool>,
    pub(crate) unless: Once<Expr>,
    pub(crate) ttl_from: Once<Expr>,
    pub(crate) krate: Once<Path>,
    /// Runtime variant name and the literal's span.
    pub(crate) format: Once<(&'static str, Span)>,
    pub(crate) compress: Once<(&'static str, Span)>,
    pub(crate) version: Once<u32>,
    pub(crate) l1_ttl: Once<u64>,
    pub(crate) lock: Once<bool>,
    pub(crate) stale_if_error: Once<u64>,
    pub(crate) timeout: Once<u64>,
    pub(crate) refresh: Once<Refresh>,
    /// Parameters that do not change the result, left out of the key.
    pub(crate) ignore: Once<Vec<syn::Ident>>,
    /// Tag templates: `tags = ["tenant:<tenant>"]`.
    pub(crate) tags: Once<Vec<LitStr>>,
    pub(crate) errors: Errors,
}

const CACHED_OPTIONS: &[&str] = &[
    "ttl",
    "key",
    "cache",
    "cache_none",
    "unless",
    "ttl_from",
    "format",
    "compress",
    "version",
    "l1_ttl",
    "lock",
    "stale_if_error",
    "timeout",
    "refresh",
    "ignore",
    "tags",
    "crate",
];

impl Parse for CachedArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = CachedArgs {
            ttl: Once::new("ttl"),
            key: Once::new("key"),
            cache: Once::new("cache"),
            cache_none: Once::new("cache_none"),
            unless: Once::new("unless"),
            ttl_from: Once::new("ttl_from"),
            krate: Once::new("crate"),
            format: Once::new("format"),
            compress: Once::new("compress"),
            version: Once::new("version"),
            l1_ttl: Once::new("l1_ttl"),
            lock: Once::new("lock"),
            stale_if_error: Once::new("stale_if_error"),
            timeout: Once::new("timeout"),
            refresh: Once::new("refresh"),
            ignore: Once::new("ignore"),
            tags: Once::new("tags"),
            errors: Errors::default(),
        };
        let errors = &mut args.errors;
        if input.is_empty() {
            return Ok(args);
        }
        loop {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::ttl_from) {
                let tok: kw::ttl_from = input.parse()?;
                input.parse::<Token![=]>()?;
                let expr: Expr = input.parse()?;
                args.ttl_from.set(tok.span, expr, errors);
            } else if lookahead.peek(kw::ttl) {
                let tok: kw::ttl = input.parse()?;
                input.parse::<Token![=]>()?;
                if input.peek(LitInt) {
                    if let Some(ms) = duration_ms(input, errors)? {
                        args.ttl.set(tok.span, Ttl::Millis(ms), errors);
                    }
                } else if !input.peek(LitStr) {
                    let path: Path = input.parse()?;
                    args.ttl.set(tok.span, Ttl::Custom(path), errors);
                } else {
                    let lit: LitStr = input.parse()?;
                    match Ttl::from_str(&lit.value()) {
                        Ok(ttl) => args.ttl.set(tok.span, ttl, errors),
                        Err(msg) => errors.at(lit.span(), msg),
                    }
                }
            } else if lookahead.peek(kw::key) {
                let tok: kw::key = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                args.key.set(tok.span, lit, errors);
            } else if lookahead.peek(kw::cache_none) {
                let tok: kw::cache_none = input.parse()?;
                let value = if input.peek(Token![=]) {
                    input.parse::<Token![=]>()?;
                    input.parse::<LitBool>()?.value
                } else {
                    true
                };
                args.cache_none.set(tok.span, value, errors);
            } else if lookahead.peek(kw::cache) {
                parse_cache_name(input, &mut args.cache, errors)?;
            } else if lookahead.peek(kw::unless) {
                let tok: kw::unless = input.parse()?;
                input.parse::<Token![=]>()?;
                let expr: Expr = input.parse()?;
                args.unless.set(tok.span, expr, errors);
            } else if lookahead.peek(Token![crate]) {
                parse_crate(input, &mut args.krate, errors)?;
            } else if lookahead.peek(kw::format) {
                let tok: kw::format = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                if let Some(v) = one_of(&lit, "format", &FORMATS, errors) {
                    args.format.set(tok.span, v, errors);
                }
            } else if lookahead.peek(kw::compress) {
                let tok: kw::compress = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitStr = input.parse()?;
                if let Some(v) = one_of(&lit, "compression mode", &COMPRESSION, errors) {
                    args.compress.set(tok.span, v, errors);
                }
            } else if lookahead.peek(kw::version) {
                let tok: kw::version = input.parse()?;
                input.parse::<Token![=]>()?;
                let lit: LitInt = input.parse()?;
                match lit.base10_parse::<u32>() {
                    Ok(v) => args.version.set(tok.span, v, errors),
                    Err(e) => errors.push(e),
                }
            } else if lookahead.peek(kw::l1_ttl) {
                let tok: kw::l1_ttl = input.parse()?;
                input.parse::<Token![=]>()?;
                if let Some(ms) = duration_ms(input, errors)? {
                    args.l1_ttl.set(tok.span, ms, errors);
                }
            } else if lookahead.peek(kw::lock) {
                let tok: kw::lock = input.parse()?;
                input.parse::<Token![=]>()?;
                let value = input.parse::<LitBool>()?.value;
                args.lock.set(tok.span, value, errors);
            } else if lookahead.peek(kw::stale_if_error) {
                let tok: kw::stale_if_error = input.parse()?;
                input.parse::<Token![=]>()?;
                if let Some(ms) = duration_ms(input, errors)? {
                    args.stale_if_error.set(tok.span, ms, errors);
                }
            } else if lookahead.peek(kw::timeout) {
                let tok: kw::timeout = input.parse()?;
                input.parse::<Token![=]>()?;
                if let Some(ms) = duration_ms(input, errors)? {
                    args.timeout.set(tok.span, ms, errors);
                }
            } else if lookahead.peek(kw::refresh) {
                let tok: kw::refresh = input.parse()?;
                input.parse::<Token![=]>()?;
                const HOW: &str = "`refresh` takes the fraction of the TTL after which the value is \
                     refreshed, between 0 and 1 (e.g. `refresh = 0.8`), or `\"xfetch\"`";
                if input.peek(LitFloat) {
                    let lit: LitFloat = input.parse()?;
                    match lit.base10_parse::<f64>() {
                        Ok(f) if f > 0.0 && f < 1.0 => {
                            args.refresh.set(tok.span, Refresh::After(f), errors);
                        }
                        _ => errors.at(lit.span(), HOW),
                    }
                } else if input.peek(LitStr) {
                    let lit: LitStr = input.parse()?;
                    if lit.value() == "xfetch" {
                        args.refresh.set(tok.span, Refresh::XFetch, errors);
                    } else {
                        errors.at(lit.span(), HOW);
                    }
                } else {
                    let e: Expr = input.parse()?;
                    errors.at(syn::spanned::Spanned::span(&e), HOW);
                }
            } else if lookahead.peek(kw::tags) {
                let tok: kw::tags = input.parse()?;
                input.parse::<Token![=]>()?;
                let list = tag_list(input, tok.span, errors)?;
                args.tags.set(tok.span, list, errors);
            } else if lookahead.peek(kw::ignore) {
                let tok: kw::ignore = input.parse()?;
                input.parse::<Token![=]>()?;
                let content;
                syn::bracketed!(content in input);
                let names = content.parse_terminated(syn::Ident::parse_any, Token![,])?;
                if names.is_empty() {
                    errors.at(tok.span, "`ignore` lists parameters, e.g. `ignore = [db]`");
                }
                args.ignore
                    .set(tok.span, names.into_iter().collect(), errors);
            } else if input.peek(syn::Ident) {
                unknown_option(input, CACHED_OPTIONS, errors)?;
            } else {
                return Err(lookahead.error());
            }
            if !comma(input)? {
                break;
            }
        }
        Ok(args)
    }
}

/// `["tenant:<tenant>", ...]`: tag templates.
fn tag_list(input: ParseStream<'_>, span: Span, errors: &mut Errors) -> syn::Result<Vec<LitStr>> {
    let content;
    syn::bracketed!(content in input);
    let list: Vec<LitStr> = content
        .parse_terminated(|i: ParseStream<'_>| i.parse::<LitStr>(), Token![,])?
        .into_iter()
        .collect();
    if list.is_empty() {
        errors.at(
            span,
            "`tags` lists tag templates, e.g. `tags = [\"tenant:<tenant>\"]`",
        );
    }
    Ok(list)
}

/// `#[invalidates("pattern", ..., tags = [...], cache = "...", crate = "...")]`.
pub(crate) struct InvalidatesArgs {
    pub(crate) patterns: Vec<LitStr>,
    pub(crate) tags: Once<Vec<LitStr>>,
    pub(crate) cache: Once<LitStr>,
    pub(crate) krate: Once<Path>,
    pub(crate) errors: Errors,
}

const INVALIDATES_OPTIONS: &[&str] = &["tags", "cache", "crate"];

impl Parse for InvalidatesArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = InvalidatesArgs {
            patterns: Vec::new(),
            tags: Once::new("tags"),
            cache: Once::new("cache"),
            krate: Once::new("crate"),
            errors: Errors::default(),
        };
        let errors = &mut args.errors;
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(LitStr) {
                args.patterns.push(input.parse()?);
            } else if lookahead.peek(kw::tags) {
                let tok: kw::tags = input.parse()?;
                input.parse::<Token![=]>()?;
                let list = tag_list(input, tok.span, errors)?;
                args.tags.set(tok.span, list, errors);
            } else if lookahead.peek(kw::cache) {
                parse_cache_name(input, &mut args.cache, errors)?;
            } else if lookahead.peek(Token![crate]) {
                parse_crate(input, &mut args.krate, errors)?;
            } else if input.peek(syn::Ident) {
                unknown_option(input, INVALIDATES_OPTIONS, errors)?;
            } else {
                return Err(lookahead.error());
            }
            if !comma(input)? {
                break;
            }
        }
        Ok(args)
    }
}
