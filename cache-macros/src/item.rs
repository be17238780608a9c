//! What the attributes need to know about the function they annotate.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Stmt};

use crate::attr::Errors;

/// A non-receiver parameter.
pub(crate) struct Param {
    /// The name placeholders and default keys use.
    pub(crate) ident: Ident,
    /// True if the user named it (a destructuring pattern gets a generated name).
    pub(crate) named: bool,
    pub(crate) ty_span: Span,
    /// For a pattern (`Path(id): Path<u64>`): the pattern with `mut` and
    /// `ref` removed, to match against a reference to the argument, and the
    /// names it binds, which placeholders may use.
    pub(crate) pattern: Option<(Pat, Vec<Ident>)>,
}

pub(crate) struct FnInfo {
    /// The span of the `self` token, if there is a receiver.
    pub(crate) receiver: Option<Span>,
    pub(crate) params: Vec<Param>,
    pub(crate) ret_ty: TokenStream,
    pub(crate) ret_span: Span,
    /// `let PATTERN = __cache_argN;` for destructured parameters, run first in the body.
    pub(crate) rebinds: Vec<Stmt>,
    /// Receivers and parameters taken by reference (`&self`, `id: &str`).
    pub(crate) borrowed: Vec<Span>,
}

/// Checks the function is `async` and gives destructured parameters names.
pub(crate) fn analyze(item: &mut ItemFn, attr: &str, errors: &mut Errors) -> FnInfo {
    if item.sig.asyncness.is_none() {
        errors.at(
            item.sig.fn_token.span,
            format!("`#[{attr}]` applies to `async fn` only: make the function `async`"),
        );
    }
    let mut receiver = None;
    let mut params = Vec::new();
    let mut rebinds = Vec::new();
    let mut borrowed = Vec::new();
    for (i, arg) in item.sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(r) => {
                receiver = Some(r.self_token.span);
                if r.reference.is_some() || matches!(&*r.ty, syn::Type::Reference(_)) {
                    borrowed.push(r.span());
                }
            }
            FnArg::Typed(pt) => {
                let ty_span = pt.ty.span();
                if matches!(&*pt.ty, syn::Type::Reference(_)) {
                    borrowed.push(pt.span());
                }
                match &*pt.pat {
                    Pat::Ident(pi) if pi.subpat.is_none() => params.push(Param {
                        ident: pi.ident.clone(),
                        named: true,
                        ty_span,
                        pattern: None,
                    }),
                    _ => {
                        let mut bindings = Vec::new();
                        let mut borrowing = (*pt.pat).clone();
                        bind(&mut borrowing, &mut bindings);
                        let ident = format_ident!("__cache_arg{}", i);
                        let pat = std::mem::replace(
                            &mut *pt.pat,
                            Pat::Ident(syn::PatIdent {
                                attrs: Vec::new(),
                                by_ref: None,
                                mutability: None,
                                ident: ident.clone(),
                                subpat: None,
                            }),
                        );
                        rebinds.push(syn::parse_quote!(let #pat = #ident;));
                        params.push(Param {
                            ident,
                            named: false,
                            ty_span,
                            pattern: Some((borrowing, bindings)),
                        });
                    }
                }
            }
        }
    }
    let (ret_ty, ret_span) = match &item.sig.output {
        ReturnType::Default => (quote!(()), item.sig.ident.span()),
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
    };
    FnInfo {
        receiver,
        params,
        ret_ty,
        ret_span,
        rebinds,
        borrowed,
    }
}

/// Collects the names `pat` binds, and removes `mut` and `ref` from them so
/// the pattern can match a reference to the argument (each name then binds
/// a reference). Or-patterns bind the same names in every alternative.
fn bind(pat: &mut Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(pi) => {
            pi.by_ref = None;
            pi.mutability = None;
            out.push(pi.ident.clone());
            if let Some((_, sub)) = &mut pi.subpat {
                bind(sub, out);
            }
        }
        Pat::Tuple(t) => t.elems.iter_mut().for_each(|p| bind(p, out)),
        Pat::TupleStruct(t) => t.elems.iter_mut().for_each(|p| bind(p, out)),
        Pat::Struct(s) => s.fields.iter_mut().for_each(|f| bind(&mut f.pat, out)),
        Pat::Slice(s) => s.elems.iter_mut().for_each(|p| bind(p, out)),
        Pat::Reference(r) => {
            r.mutability = None;
            bind(&mut r.pat, out);
        }
        Pat::Paren(p) => bind(&mut p.pat, out),
        Pat::Type(t) => bind(&mut t.pat, out),
        Pat::Or(o) => {
            if let Some(mut first) = o.cases.first().cloned() {
                bind(&mut first, out);
                *pat = first;
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_of_patterns() {
        let mut pat: Pat = syn::parse_quote!(Path((ref org, mut id)));
        let mut names = Vec::new();
        bind(&mut pat, &mut names);
        let names: Vec<String> = names.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["org", "id"]);
        assert_eq!(pat.to_token_stream().to_string(), "Path ((org , id))");
        let mut pat: Pat = syn::parse_quote!(Query(Filter { team, page: p, .. }));
        let mut names = Vec::new();
        bind(&mut pat, &mut names);
        assert_eq!(names.len(), 2);
        assert_eq!(names[1].to_string(), "p");
    }
}
