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
                    }),
                    _ => {
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
