//! `#[runtimes]`: one end-to-end test body, run once per gateway runtime.
//!
//! ```ignore
//! #[runtimes]
//! async fn get_is_forwarded(rt: Runtime) {
//!     let gw = TestGateway::start(rt, &doc).await;
//!     // ...
//! }
//! ```
//!
//! keeps the body as a plain `async fn` and adds a module of the same name with
//! one `#[tokio::test]` per runtime, so the suite lists `get_is_forwarded::tokio`
//! and `get_is_forwarded::smol` (and `cargo test ::smol` runs one runtime). The
//! tests themselves (clients, backends) run on tokio; the body picks the gateway's
//! runtime from its argument. The attribute's arguments, if any, are passed to
//! `#[tokio::test]` (default: `flavor = "multi_thread", worker_threads = 2`).
//!
//! The runtimes are `crate::common::Runtime::{Tokio, Smol}`: every test crate
//! declares `mod common;` at its root.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, spanned::Spanned, FnArg, ItemFn};

/// Runs the annotated `async fn name(rt: Runtime)` once per runtime, as the tests
/// `name::tokio` and `name::smol`.
#[proc_macro_attribute]
pub fn runtimes(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let body = parse_macro_input!(item as ItemFn);
    if body.sig.asyncness.is_none() {
        return syn::Error::new(body.sig.span(), "#[runtimes] needs an `async fn`")
            .to_compile_error()
            .into();
    }
    if body.sig.inputs.len() != 1 || !matches!(body.sig.inputs.first(), Some(FnArg::Typed(_))) {
        return syn::Error::new(
            body.sig.inputs.span(),
            "#[runtimes] needs exactly one argument, the runtime: `(rt: Runtime)`",
        )
        .to_compile_error()
        .into();
    }
    let name = &body.sig.ident;
    let test_args = if args.is_empty() {
        quote!(flavor = "multi_thread", worker_threads = 2)
    } else {
        args
    };
    quote! {
        #body

        mod #name {
            #[::tokio::test(#test_args)]
            async fn tokio() {
                // Boxed: the test bodies are large state machines and test threads
                // have small stacks.
                ::std::boxed::Box::pin(super::#name(crate::common::Runtime::Tokio)).await
            }

            #[::tokio::test(#test_args)]
            async fn smol() {
                ::std::boxed::Box::pin(super::#name(crate::common::Runtime::Smol)).await
            }
        }
    }
    .into()
}
