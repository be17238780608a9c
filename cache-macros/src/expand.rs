//! Code generation. The output is a thin call into `::cache_core::__private`
//! (or the `crate = "..."` path); all behaviour lives in the runtime.
//!
//! The function body moves, unchanged, into an `async move` block whose value
//! is annotated with the declared return type, so `?` and `return` keep their
//! meaning and type errors stay on the user's code.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn, LitStr, Path};

use crate::attr::{CachedArgs, Errors, InvalidatesArgs, Refresh};
use crate::item::{self, FnInfo};
use crate::template::{self, Mode, Placeholder, Segment, Template};

/// On error, emit the function unchanged next to the errors, so users see
/// the real mistakes and not a cascade of "cannot find function".
fn with_error(error: syn::Error, original: TokenStream) -> TokenStream {
    let compile_errors = error.to_compile_error();
    quote!(#compile_errors #original)
}

/// The annotated function and the attribute's arguments; on a syntax
/// error, that error beside the function unchanged.
fn parse<A: syn::parse::Parse>(
    attr: &str,
    args: TokenStream,
    input: TokenStream,
) -> Result<(ItemFn, A), TokenStream> {
    let original = input.clone();
    let func: ItemFn = syn::parse2(input).map_err(|e| {
        let msg = syn::Error::new(e.span(), format!("`#[{attr}]` applies to `async fn` items"));
        with_error(msg, original.clone())
    })?;
    let args: A = syn::parse2(args).map_err(|e| with_error(e, original))?;
    Ok((func, args))
}

pub(crate) fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    let original = input.clone();
    let (mut func, mut args) = match parse::<CachedArgs>("cached", args, input) {
        Ok(parsed) => parsed,
        Err(tokens) => return tokens,
    };
    let mut errors = std::mem::take(&mut args.errors);
    let info = item::analyze(&mut func, "cached", &mut errors);
    let krate = krate(args.krate.take());

    let ignore_span = args.ignore.span();
    let ignore = args.ignore.take().unwrap_or_default();
    if let (Some(span), None) = (ignore_span, args.key.get()) {
        errors.at(
            span,
            "`ignore` applies to a `key` template: without one, the key holds every argument",
        );
    }
    let (key_code, label) = match args.key.get() {
        Some(lit) => match template::parse(lit, Mode::Key) {
            Ok(t) => {
                check_coverage(&t, &info, &ignore, &mut errors);
                (build_key(&t, &info, &krate, &mut errors), lit.value())
            }
            Err(e) => {
                errors.push(e);
                (TokenStream::new(), String::new())
            }
        },
        None => default_key(&func, &info, &krate),
    };
    if let (Some(span), None) = (args.timeout.span(), args.stale_if_error.get()) {
        errors.at(
            span,
            "`timeout` cuts a slow call short only to serve a stale value: add `stale_if_error = \"...\"`",
        );
    }
    if args.refresh.get().is_some() {
        for span in &info.borrowed {
            errors.at(
                *span,
                "`refresh` calls the function again in the background, after this call has \
                 returned, so its arguments cannot be borrowed: take this one by value \
                 (e.g. `self: Arc<Self>`, `String`), or remove `refresh`",
            );
        }
    }
    let tags = build_tags(args.tags.get(), &info, &krate, &mut errors);
    if let Some(e) = errors.combine() {
        return with_error(e, original);
    }

    let fn_path_item = fn_path_item(&krate);
    let ttl = match args.ttl.get() {
        Some(t) => t.tokens(&krate),
        None => quote!(#krate::__private::Ttl::Default),
    };
    let cache = option_str(args.cache.get());
    let cache_none = args.cache_none.get().copied().unwrap_or(false);
    let mut site_options = value_options(&args, &krate);
    if let Some(lock) = args.lock.get() {
        site_options.extend(quote!(.lock(#lock)));
    }
    if let Some(ms) = args.stale_if_error.get() {
        site_options.extend(quote!(.stale_if_error(#krate::__private::Duration::from_millis(#ms))));
    }
    if let Some(ms) = args.timeout.get() {
        site_options.extend(quote!(.timeout(#krate::__private::Duration::from_millis(#ms))));
    }
    let refresh = args.refresh.get().is_some();
    match args.refresh.get() {
        Some(Refresh::After(f)) => {
            site_options.extend(quote!(.refresh(#krate::__private::Refresh::After(#f))));
        }
        Some(Refresh::XFetch) => {
            site_options.extend(quote!(.refresh(#krate::__private::Refresh::XFetch)));
        }
        None => {}
    }
    let unless = match args.unless.take() {
        Some(expr) => quote!(#expr),
        None => quote!(#krate::__private::never),
    };
    let ttl_from = match args.ttl_from.take() {
        Some(expr) => quote!(#expr),
        None => quote!(#krate::__private::no_ttl_from),
    };
    let kind = kind_probe(&krate, &info);
    // `cache_none` on a return type that is not an `Option` (through any alias)
    // is a type error pointing at the option.
    let cache_none_check = match (args.cache_none.get(), args.cache_none.span()) {
        (Some(true), Some(span)) => {
            let ret = &info.ret_ty;
            respan(
                quote!(const _: () = #krate::__private::kind::assert_option::<#ret>();),
                span,
            )
        }
        _ => TokenStream::new(),
    };
    // The kind decides what must be cacheable: point "cannot be cached" at the return type.
    let kind_arg = Ident::new("__cache_kind", Span::call_site().located_at(info.ret_span));
    let body = async_body(&func, &info);
    // Every token of the callee carries the return type's span, so "cannot be
    // cached" points at the return type rather than at the attribute.
    let run = respan(quote!(#krate::__private::run), info.ret_span);

    // With `refresh`, a hit whose refresh is due hands the function's own
    // future, built from the arguments it owns, to a background task.
    let hit_path = if refresh {
        let spawn = respan(quote!(#krate::__private::refresh), info.ret_span);
        quote! {
            let mut __cache_due = ::core::option::Option::None;
            if let ::core::option::Option::Some(__cache_k) = &__cache_key {
                match #krate::__private::hit_or_refresh(__cache_kind, &__cache_handle, &__CACHE_SITE, __cache_k) {
                    #krate::__private::Refreshing::Hit(__cache_hit) => return __cache_hit,
                    #krate::__private::Refreshing::Due(__cache_hit) => __cache_due = ::core::option::Option::Some(__cache_hit),
                    #krate::__private::Refreshing::Miss => {}
                }
            }
            let __cache_tags = #tags;
            let __cache_body = #body;
            // `unless` and `ttl_from` are written at each call (one runs), so
            // closures get their parameter types from the callee.
            if let ::core::option::Option::Some(__cache_hit) = __cache_due {
                if let ::core::option::Option::Some(__cache_k) = __cache_key {
                    #spawn(#kind_arg, __cache_handle, &__CACHE_SITE, __cache_k, __cache_body, #unless, #ttl_from, __cache_tags);
                }
                return __cache_hit;
            }
            #krate::__private::slow_path(#run(#kind_arg, __cache_handle, &__CACHE_SITE, __cache_key, move || __cache_body, #unless, #ttl_from, __cache_tags)).await
        }
    } else {
        quote! {
            if let ::core::option::Option::Some(__cache_k) = &__cache_key {
                if let ::core::option::Option::Some(__cache_hit) =
                    #krate::__private::hit(__cache_kind, &__cache_handle, &__CACHE_SITE, __cache_k)
                {
                    return __cache_hit;
                }
            }
            // The slow path lives in a heap allocation made when the
            // in-process tier misses: the function's own future stays a few
            // words, so in-process hits do not pay for moving a large state
            // machine. The body's future is made only when the origin is
            // called (`move ||`, boxed apart by the engine): a call answered
            // from Redis holds the arguments, not the body's state.
            let __cache_tags = #tags;
            #krate::__private::slow_path(#run(#kind_arg, __cache_handle, &__CACHE_SITE, __cache_key, move || #body, #unless, #ttl_from, __cache_tags)).await
        }
    };

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    quote! {
        #(#attrs)*
        #vis #sig {
            #fn_path_item
            static __CACHE_SITE: #krate::__private::Site = #krate::__private::Site::new(
                __cache_fn_path,
                #label,
                #ttl,
                #cache,
                #cache_none,
            )#site_options;
            #cache_none_check
            let __cache_kind = #kind;
            let __cache_handle = #krate::__private::resolve(&__CACHE_SITE);
            let __cache_key = if __cache_handle.enabled() {
                ::core::option::Option::Some(#key_code)
            } else {
                ::core::option::Option::None
            };
            #hit_path
        }
    }
}

pub(crate) fn cache_put(args: TokenStream, input: TokenStream) -> TokenStream {
    let original = input.clone();
    let (mut func, mut args) = match parse::<CachedArgs>("cache_put", args, input) {
        Ok(parsed) => parsed,
        Err(tokens) => return tokens,
    };
    let mut errors = std::mem::take(&mut args.errors);
    let info = item::analyze(&mut func, "cache_put", &mut errors);
    let krate = krate(args.krate.take());
    // Options about reading or computing have no meaning for a write.
    let reads = [
        ("unless", args.unless.span()),
        ("ttl_from", args.ttl_from.span()),
        ("lock", args.lock.span()),
        ("stale_if_error", args.stale_if_error.span()),
        ("timeout", args.timeout.span()),
        ("refresh", args.refresh.span()),
        ("ignore", args.ignore.span()),
    ];
    for (name, span) in reads {
        if let Some(span) = span {
            errors.at(
                span,
                format!(
                    "`{name}` does not apply to `#[cache_put]`, which writes its result; \
                     valid options: key, ttl, tags, cache, cache_none, format, compress, version, l1_ttl, crate"
                ),
            );
        }
    }
    let tags = build_tags(args.tags.get(), &info, &krate, &mut errors);
    let (key_code, label) = match args.key.get() {
        Some(lit) => match template::parse(lit, Mode::Key) {
            Ok(t) => (build_key(&t, &info, &krate, &mut errors), lit.value()),
            Err(e) => {
                errors.push(e);
                (TokenStream::new(), String::new())
            }
        },
        None => {
            errors.at(
                Span::call_site(),
                "`#[cache_put]` needs the key it writes, the one the reading function's \
                 `#[cached]` uses: e.g. `#[cache_put(key = \"employee:<id>\")]`",
            );
            (TokenStream::new(), String::new())
        }
    };
    if let Some(e) = errors.combine() {
        return with_error(e, original);
    }

    let fn_path_item = fn_path_item(&krate);
    let ttl = match args.ttl.get() {
        Some(t) => t.tokens(&krate),
        None => quote!(#krate::__private::Ttl::Default),
    };
    let cache = option_str(args.cache.get());
    let cache_none = args.cache_none.get().copied().unwrap_or(false);
    let site_options = value_options(&args, &krate);
    let kind = kind_probe(&krate, &info);
    let kind_arg = Ident::new("__cache_kind", Span::call_site().located_at(info.ret_span));
    let put = respan(quote!(#krate::__private::put_after), info.ret_span);
    let ret_ty = &info.ret_ty;
    let body = async_body(&func, &info);

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    quote! {
        #(#attrs)*
        #vis #sig {
            #fn_path_item
            static __CACHE_SITE: #krate::__private::Site = #krate::__private::Site::new(
                __cache_fn_path,
                #label,
                #ttl,
                #cache,
                #cache_none,
            ).put()#site_options;
            let __cache_kind = #kind;
            let __cache_handle = #krate::__private::resolve(&__CACHE_SITE);
            // Built before the body, which owns the arguments.
            let __cache_key = if __cache_handle.enabled() {
                ::core::option::Option::Some((#key_code, #tags))
            } else {
                ::core::option::Option::None
            };
            let __cache_ret: #ret_ty = #body.await;
            #put(#kind_arg, __cache_handle, &__CACHE_SITE, __cache_key, &__cache_ret).await;
            __cache_ret
        }
    }
}

/// The `Site` builder calls for the options that decide how a value is
/// stored (`format`, `compress`, `version`, `l1_ttl`).
fn value_options(args: &CachedArgs, krate: &Path) -> TokenStream {
    let mut site_options = TokenStream::new();
    if let Some((variant, span)) = args.format.get() {
        let v = Ident::new(variant, *span);
        site_options.extend(quote!(.format(#krate::__private::Format::#v)));
    }
    if let Some((variant, span)) = args.compress.get() {
        let v = Ident::new(variant, *span);
        site_options.extend(quote!(.compress(#krate::__private::Compression::#v)));
    }
    if let Some(version) = args.version.get() {
        site_options.extend(quote!(.version(#version)));
    }
    if let Some(ms) = args.l1_ttl.get() {
        site_options.extend(quote!(.l1_ttl(#krate::__private::Duration::from_millis(#ms))));
    }
    site_options
}

pub(crate) fn invalidates(args: TokenStream, input: TokenStream) -> TokenStream {
    let original = input.clone();
    let (mut func, mut args) = match parse::<InvalidatesArgs>("invalidates", args, input) {
        Ok(parsed) => parsed,
        Err(tokens) => return tokens,
    };
    let mut errors = std::mem::take(&mut args.errors);
    let info = item::analyze(&mut func, "invalidates", &mut errors);
    let krate = krate(args.krate.take());
    if args.patterns.is_empty() && args.tags.get().is_none() {
        errors.at(
            Span::call_site(),
            "`#[invalidates]` needs at least one key, pattern or tag, e.g. `#[invalidates(\"user:<id>:*\")]` or `#[invalidates(tags = [\"tenant:<tenant>\"])]`",
        );
    }
    let tags = build_tags(args.tags.get(), &info, &krate, &mut errors);
    let mut patterns = Vec::new();
    for lit in &args.patterns {
        match template::parse(lit, Mode::Pattern) {
            Ok(t) => patterns.push(build_key(&t, &info, &krate, &mut errors)),
            Err(e) => errors.push(e),
        }
    }
    if let Some(e) = errors.combine() {
        return with_error(e, original);
    }

    let fn_path_item = fn_path_item(&krate);
    let label = args
        .patterns
        .iter()
        .map(LitStr::value)
        .chain(
            args.tags
                .get()
                .into_iter()
                .flatten()
                .map(|t| format!("tag {}", t.value())),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let cache = option_str(args.cache.get());
    let kind = kind_probe(&krate, &info);
    let ret_ty = &info.ret_ty;
    let body = async_body(&func, &info);

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    quote! {
        #(#attrs)*
        #vis #sig {
            #fn_path_item
            static __CACHE_SITE: #krate::__private::InvalidateSite = #krate::__private::InvalidateSite::new(
                __cache_fn_path,
                #label,
                #cache,
            );
            let __cache_kind = #kind;
            let __cache_handle = #krate::__private::resolve_invalidate(&__CACHE_SITE);
            let __cache_patterns = if __cache_handle.enabled() {
                ::core::option::Option::Some(([#(#patterns),*], #tags))
            } else {
                ::core::option::Option::None
            };
            let __cache_ret: #ret_ty = #body.await;
            #krate::__private::invalidate_after(
                __cache_kind,
                __cache_handle,
                &__CACHE_SITE,
                __cache_patterns,
                &__cache_ret,
            )
            .await;
            __cache_ret
        }
    }
}

/// A nested function that returns the annotated function's path, with its
/// `impl` type and trait (`app::Repo::employee`): the type name of a closure
/// defined in it, read at the function's first registration with a cache.
fn fn_path_item(krate: &Path) -> TokenStream {
    quote! {
        fn __cache_fn_path() -> &'static str {
            #krate::__private::site_path(::core::any::type_name_of_val(&|| ()))
        }
    }
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tt| {
            if let proc_macro2::TokenTree::Group(g) = &tt {
                let mut group = proc_macro2::Group::new(g.delimiter(), respan(g.stream(), span));
                group.set_span(span);
                tt = proc_macro2::TokenTree::Group(group);
            } else {
                tt.set_span(span);
            }
            tt
        })
        .collect()
}

fn krate(path: Option<Path>) -> Path {
    path.unwrap_or_else(|| syn::parse_quote!(::cache_core))
}

fn option_str(lit: Option<&LitStr>) -> TokenStream {
    match lit {
        Some(l) => quote!(::core::option::Option::Some(#l)),
        None => quote!(::core::option::Option::None),
    }
}

/// An expression whose type tells the runtime how the return type is cached
/// (`Result`, `Option` or plain), decided by trait resolution so that type
/// aliases are seen through.
fn kind_probe(krate: &Path, info: &FnInfo) -> TokenStream {
    let ret = &info.ret_ty;
    quote!({
        #[allow(unused_imports)]
        use #krate::__private::kind::{OptionProbe as _, PlainProbe as _, ResultProbe as _};
        (&&#krate::__private::kind::Probe::<#ret>::new()).cache_kind()
    })
}

/// The body as an `async move` block typed with the declared return type.
fn async_body(func: &ItemFn, info: &FnInfo) -> TokenStream {
    let stmts = &func.block.stmts;
    let rebinds = &info.rebinds;
    let ret_ty = &info.ret_ty;
    quote! {
        async move {
            #(#rebinds)*
            let __cache_ret: #ret_ty = { #(#stmts)* };
            #[allow(unreachable_code)]
            __cache_ret
        }
    }
}

/// Code that builds the key (or pattern) from a checked template.
fn build_key(t: &Template, info: &FnInfo, krate: &Path, errors: &mut Errors) -> TokenStream {
    build_template(t, info, krate, quote!(__cache_handle.key_builder()), errors)
}

/// Code that builds the tags (`tags = [...]`), as a `Vec<String>`: like
/// keys, without the cache's prefix.
fn build_tags(
    lits: Option<&Vec<LitStr>>,
    info: &FnInfo,
    krate: &Path,
    errors: &mut Errors,
) -> TokenStream {
    let mut tags = Vec::new();
    for lit in lits.into_iter().flatten() {
        match template::parse(lit, Mode::Key) {
            Ok(t) => tags.push(build_template(
                &t,
                info,
                krate,
                quote!(#krate::KeyBuilder::new()),
                errors,
            )),
            Err(e) => errors.push(syn::Error::new(
                lit.span(),
                e.to_string().replace("a key template", "a tag").replace(
                    "glob characters belong in `#[invalidates]` patterns",
                    "a tag is matched whole, never as a pattern",
                ),
            )),
        }
    }
    quote!(::std::vec![#(#tags),*])
}

fn build_template(
    t: &Template,
    info: &FnInfo,
    krate: &Path,
    builder: TokenStream,
    errors: &mut Errors,
) -> TokenStream {
    let span = t.lit.span();
    let mut stmts = Vec::new();
    for seg in &t.segments {
        match seg {
            Segment::Lit(text) => stmts.push(quote!(__cache_kb.push_lit(#text);)),
            Segment::Hole(p) => match value_expr(p, info, span) {
                Ok(expr) => {
                    let at = Span::call_site().located_at(span);
                    stmts.push(quote_spanned!(at=> {
                        #[allow(unused_imports)]
                        use #krate::__private::placeholder::{DisplayProbe as _, SerdeProbe as _};
                        let __cache_v = &(#expr);
                        (&#krate::__private::placeholder::Placeholder(__cache_v)).how().push(&mut __cache_kb, __cache_v);
                    }));
                }
                Err(msg) => errors.at(span, msg),
            },
        }
    }
    quote!({
        let mut __cache_kb = #builder;
        #(#stmts)*
        __cache_kb.build()
    })
}

/// The expression a placeholder reads, or why it names nothing.
fn value_expr(p: &Placeholder, info: &FnInfo, span: Span) -> Result<TokenStream, String> {
    // Reuse the signature's own tokens (their hygiene), located at the literal.
    let root = if p.root == "self" {
        let Some(self_span) = info.receiver else {
            return Err(format!(
                "`<{}>` uses `self`, but this function has no `self` receiver",
                p.text()
            ));
        };
        let s = Ident::new("self", self_span.located_at(span));
        quote!(#s)
    } else if let Some(param) = info.params.iter().find(|x| x.named && x.ident == p.root) {
        let mut id = param.ident.clone();
        id.set_span(param.ident.span().located_at(span));
        quote!(#id)
    } else if let Some((param, pat, binding)) = info.params.iter().find_map(|x| {
        let (pat, names) = x.pattern.as_ref()?;
        Some((x, pat, names.iter().find(|n| **n == p.root)?))
    }) {
        // A name bound inside a pattern parameter (`Path(id): Path<u64>`):
        // match the pattern against a reference to the argument.
        let arg = &param.ident;
        quote!(({
            #[allow(unused_variables)]
            let #pat = &#arg;
            #binding
        }))
    } else {
        let available = names(info);
        let names: Vec<&str> = available.iter().map(String::as_str).collect();
        let hint = match crate::nearest(&p.root, &names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => String::new(),
        };
        let listed = if names.is_empty() {
            if info.params.is_empty() {
                "the function has no parameters".to_owned()
            } else {
                "its parameters are patterns that bind no names".to_owned()
            }
        } else {
            format!(
                "available: {}",
                names
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(format!(
            "`<{}>` names no parameter{hint}\n{listed}",
            p.text()
        ));
    };
    let fields = p.fields.iter().map(|f| match f.parse::<u32>() {
        Ok(index) => {
            let idx = syn::Index { index, span };
            quote!(#idx)
        }
        Err(_) => {
            // `<e.type>` names a field declared `r#type`.
            let id = if syn::parse_str::<Ident>(f).is_ok() {
                Ident::new(f, span)
            } else {
                Ident::new_raw(f, span)
            };
            quote!(#id)
        }
    });
    Ok(quote!(#root #(. #fields)*))
}

/// What a placeholder may name: `self`, named parameters, and the names
/// bound inside pattern parameters.
fn names(info: &FnInfo) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    if info.receiver.is_some() {
        names.push("self".into());
    }
    for param in &info.params {
        match &param.pattern {
            None => names.push(param.ident.to_string()),
            Some((_, bound)) => names.extend(bound.iter().map(ToString::to_string)),
        }
    }
    names
}

/// A key that leaves out a parameter serves one caller's value to another
/// (`key = "profile"` on `profile(user_id)`): every parameter, and every
/// name a pattern parameter binds, must appear in the template, unless it is
/// listed in `ignore` or its name starts with `_`. The receiver is exempt
/// (a service or repository handle).
fn check_coverage(t: &Template, info: &FnInfo, ignore: &[Ident], errors: &mut Errors) {
    let used: Vec<&str> = t
        .segments
        .iter()
        .filter_map(|s| match s {
            Segment::Hole(p) => Some(p.root.as_str()),
            Segment::Lit(_) => None,
        })
        .collect();
    let all = names(info);
    if used.iter().any(|u| !all.iter().any(|n| n == u)) {
        // A placeholder that names nothing has its own error; a list of
        // left-out parameters would only repeat the typo.
        return;
    }
    for name in ignore {
        let text = name.to_string();
        if !all.contains(&text) || text == "self" {
            let candidates: Vec<&str> = all
                .iter()
                .map(String::as_str)
                .filter(|n| *n != "self")
                .collect();
            let hint = match crate::nearest(&text, &candidates) {
                Some(n) => format!("; did you mean `{n}`?"),
                None => String::new(),
            };
            errors.at(
                name.span(),
                format!("`ignore` lists `{text}`, which names no parameter{hint}"),
            );
        } else if used.contains(&text.as_str()) {
            errors.at(
                name.span(),
                format!(
                    "`{text}` is in the key (`<{text}>`) and in `ignore`: remove it from one of them"
                ),
            );
        }
    }
    let left_out: Vec<String> = all
        .into_iter()
        .filter(|n| n != "self" && !n.starts_with('_'))
        .filter(|n| !used.contains(&n.as_str()) && !ignore.iter().any(|i| i == n))
        .collect();
    if left_out.is_empty() {
        return;
    }
    let list = left_out
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (them, they_do, their) = if left_out.len() == 1 {
        ("it", "it does", "its name")
    } else {
        ("them", "they do", "their names")
    };
    errors.at(
        t.lit.span(),
        format!(
            "the key `{}` leaves out {list}: calls that differ only in {them} would share one entry, \
             and one caller would be served another's value\n\
             add {} to the key, or, if {they_do} not change the result, list {them} in \
             `ignore = [{}]` or start {their} with `_`",
            t.lit.value(),
            left_out
                .iter()
                .map(|n| format!("`<{n}>`"))
                .collect::<Vec<_>>()
                .join(", "),
            left_out.join(", "),
        ),
    );
}

/// Without `key`: the function's full path (with its `impl` type, trait and
/// generic arguments, from the type name of a closure defined in the body),
/// then every argument (serde-encoded).
fn default_key(func: &ItemFn, info: &FnInfo, krate: &Path) -> (TokenStream, String) {
    let mut label = func.sig.ident.to_string();
    let mut args = Vec::new();
    for p in &info.params {
        let id = &p.ident;
        label.push_str(&format!(":<{id}>"));
        let at = Span::call_site().located_at(p.ty_span);
        args.push(quote_spanned!(at=> __cache_kb.push_lit(":"); __cache_kb.push_arg(&(#id));));
    }
    let code = quote!({
        let mut __cache_kb = __cache_handle.key_builder();
        __cache_kb.push_lit(#krate::__private::fn_path(::core::any::type_name_of_val(&|| ())));
        #(#args)*
        __cache_kb.build()
    });
    (code, label)
}
