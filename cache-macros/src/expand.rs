//! Code generation. The output is a thin call into `::cache_core::__private`
//! (or the `crate = "..."` path); all behaviour lives in the runtime.
//!
//! The function body moves, unchanged, into an `async move` block whose value
//! is annotated with the declared return type, so `?` and `return` keep their
//! meaning and type errors stay on the user's code.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{Ident, ItemFn, LitStr, Path};

use crate::attr::{CachedArgs, Errors, InvalidatesArgs};
use crate::item::{self, FnInfo, ReturnKind};
use crate::template::{self, Mode, Placeholder, Segment, Template};

/// On error, emit the function unchanged next to the errors, so users see
/// the real mistakes and not a cascade of "cannot find function".
fn with_error(error: syn::Error, original: TokenStream) -> TokenStream {
    let compile_errors = error.to_compile_error();
    quote!(#compile_errors #original)
}

pub(crate) fn cached(args: TokenStream, input: TokenStream) -> TokenStream {
    let original = input.clone();
    let mut func: ItemFn = match syn::parse2(input) {
        Ok(f) => f,
        Err(e) => {
            let msg = syn::Error::new(e.span(), "`#[cached]` applies to `async fn` items");
            return with_error(msg, original);
        }
    };
    let mut args: CachedArgs = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return with_error(e, original),
    };
    let mut errors = std::mem::take(&mut args.errors);
    let info = item::analyze(&mut func, "cached", &mut errors);
    let krate = krate(args.krate.take());

    let (key_code, label) = match args.key.get() {
        Some(lit) => match template::parse(lit, Mode::Key) {
            Ok(t) => (build_key(&t, &info, &mut errors), lit.value()),
            Err(e) => {
                errors.push(e);
                (TokenStream::new(), String::new())
            }
        },
        None => default_key(&func, &info),
    };
    if let (Some(true), Some(span)) = (args.cache_none.get(), args.cache_none.span())
        && info.kind != ReturnKind::Option
    {
        errors.at(
            span,
            "`cache_none` applies to functions returning `Option<T>`",
        );
    }
    if let Some(e) = errors.combine() {
        return with_error(e, original);
    }

    let name = func.sig.ident.to_string();
    let ttl = match args.ttl.get() {
        Some(t) => t.tokens(&krate),
        None => quote!(#krate::__private::Ttl::Default),
    };
    let cache = option_str(args.cache.get());
    let cache_none = args.cache_none.get().copied().unwrap_or(false);
    let unless = match args.unless.take() {
        Some(expr) => quote!(#expr),
        None => quote!(#krate::__private::never),
    };
    let kind = kind_ident(info.kind);
    let body = async_body(&func, &info);
    // Every token of the callee carries the return type's span, so "cannot be
    // cached" points at the return type rather than at the attribute.
    let run = respan(
        quote!(#krate::__private::run::<#krate::__private::#kind, _, _, _>),
        info.ret_span,
    );

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    quote! {
        #(#attrs)*
        #vis #sig {
            static __CACHE_SITE: #krate::__private::Site = #krate::__private::Site::new(
                ::core::concat!(::core::module_path!(), "::", #name),
                #label,
                #ttl,
                #cache,
                #cache_none,
            );
            let __cache_handle = #krate::__private::resolve(&__CACHE_SITE);
            let __cache_key = if __cache_handle.enabled() {
                ::core::option::Option::Some(#key_code)
            } else {
                ::core::option::Option::None
            };
            if let ::core::option::Option::Some(__cache_k) = &__cache_key {
                if let ::core::option::Option::Some(__cache_hit) =
                    #krate::__private::hit::<#krate::__private::#kind, _>(&__cache_handle, &__CACHE_SITE, __cache_k)
                {
                    return __cache_hit;
                }
            }
            #run(__cache_handle, &__CACHE_SITE, __cache_key, #body, #unless).await
        }
    }
}

pub(crate) fn invalidates(args: TokenStream, input: TokenStream) -> TokenStream {
    let original = input.clone();
    let mut func: ItemFn = match syn::parse2(input) {
        Ok(f) => f,
        Err(e) => {
            let msg = syn::Error::new(e.span(), "`#[invalidates]` applies to `async fn` items");
            return with_error(msg, original);
        }
    };
    let mut args: InvalidatesArgs = match syn::parse2(args) {
        Ok(a) => a,
        Err(e) => return with_error(e, original),
    };
    let mut errors = std::mem::take(&mut args.errors);
    let info = item::analyze(&mut func, "invalidates", &mut errors);
    let krate = krate(args.krate.take());
    if args.patterns.is_empty() {
        errors.at(
            Span::call_site(),
            "`#[invalidates]` needs at least one key or pattern, e.g. `#[invalidates(\"user:<id>:*\")]`",
        );
    }
    let mut patterns = Vec::new();
    for lit in &args.patterns {
        match template::parse(lit, Mode::Pattern) {
            Ok(t) => patterns.push(build_key(&t, &info, &mut errors)),
            Err(e) => errors.push(e),
        }
    }
    if let Some(e) = errors.combine() {
        return with_error(e, original);
    }

    let name = func.sig.ident.to_string();
    let label = args
        .patterns
        .iter()
        .map(LitStr::value)
        .collect::<Vec<_>>()
        .join(", ");
    let cache = option_str(args.cache.get());
    let kind = kind_ident(info.kind);
    let ret_ty = &info.ret_ty;
    let body = async_body(&func, &info);

    let ItemFn {
        attrs, vis, sig, ..
    } = &func;
    quote! {
        #(#attrs)*
        #vis #sig {
            static __CACHE_SITE: #krate::__private::InvalidateSite = #krate::__private::InvalidateSite::new(
                ::core::concat!(::core::module_path!(), "::", #name),
                #label,
                #cache,
            );
            let __cache_handle = #krate::__private::resolve_invalidate(&__CACHE_SITE);
            let __cache_patterns = if __cache_handle.enabled() {
                ::core::option::Option::Some([#(#patterns),*])
            } else {
                ::core::option::Option::None
            };
            let __cache_ret: #ret_ty = #body.await;
            #krate::__private::invalidate_after::<#krate::__private::#kind, _, _>(
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

fn kind_ident(kind: ReturnKind) -> Ident {
    let name = match kind {
        ReturnKind::Result => "ResultKind",
        ReturnKind::Option => "OptionKind",
        ReturnKind::Plain => "PlainKind",
    };
    Ident::new(name, Span::call_site())
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
fn build_key(t: &Template, info: &FnInfo, errors: &mut Errors) -> TokenStream {
    let span = t.lit.span();
    let mut stmts = Vec::new();
    for seg in &t.segments {
        match seg {
            Segment::Lit(text) => stmts.push(quote!(__cache_kb.push_lit(#text);)),
            Segment::Hole(p) => match value_expr(p, info, span) {
                Ok(expr) => stmts.push(quote_spanned!(span=> __cache_kb.push_value(&(#expr));)),
                Err(msg) => errors.at(span, msg),
            },
        }
    }
    quote!({
        let mut __cache_kb = __cache_handle.key_builder();
        #(#stmts)*
        __cache_kb.finish()
    })
}

/// The expression a placeholder reads, or why it names nothing.
fn value_expr(p: &Placeholder, info: &FnInfo, span: Span) -> Result<TokenStream, String> {
    let root = if p.root == "self" {
        if !info.receiver {
            return Err(format!(
                "`<{}>` uses `self`, but this function has no `self` receiver",
                p.text()
            ));
        }
        let s = Ident::new("self", span);
        quote!(#s)
    } else if info.params.iter().any(|x| x.named && x.ident == p.root) {
        let id = Ident::new(&p.root, span);
        quote!(#id)
    } else {
        let mut available: Vec<String> = Vec::new();
        if info.receiver {
            available.push("self".into());
        }
        available.extend(
            info.params
                .iter()
                .filter(|x| x.named)
                .map(|x| x.ident.to_string()),
        );
        let names: Vec<&str> = available.iter().map(String::as_str).collect();
        let hint = match crate::nearest(&p.root, &names) {
            Some(n) => format!("; did you mean `{n}`?"),
            None => String::new(),
        };
        let listed = if names.is_empty() {
            "the function has no parameters".to_owned()
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
            let id = Ident::new(f, span);
            quote!(#id)
        }
    });
    Ok(quote!(#root #(. #fields)*))
}

/// Without `key`: the function path, then every argument (serde-encoded).
fn default_key(func: &ItemFn, info: &FnInfo) -> (TokenStream, String) {
    let name = func.sig.ident.to_string();
    let mut label = name.clone();
    let args = info.params.iter().map(|p| {
        let id = &p.ident;
        label.push_str(&format!(":<{id}>"));
        quote_spanned!(p.ty_span=> __cache_kb.push_lit(":"); __cache_kb.push_arg(&(#id));)
    });
    let args: Vec<TokenStream> = args.collect();
    let code = quote!({
        let mut __cache_kb = __cache_handle.key_builder();
        __cache_kb.push_lit(::core::concat!(::core::module_path!(), "::", #name));
        #(#args)*
        __cache_kb.finish()
    });
    (code, label)
}
