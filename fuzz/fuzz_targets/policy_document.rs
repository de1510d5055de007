//! Policy documents: arbitrary text through the XML reader and the policy
//! compiler never panics, and an error always names a position.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::policy::compile::{compile_document, CompileEnv};
use portcullis_core::policy::program::Level;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env = CompileEnv::default();
    env.named_values.insert("nv", ("value", false));
    env.fragments
        .insert("frag", "<fragment><set-header name=\"x\" exists-action=\"override\"><value>1</value></set-header></fragment>");
    // As a whole document, and wrapped into one so policy elements get reached.
    for doc in [
        text.to_string(),
        format!("<policies><inbound>{text}</inbound><outbound>{text}</outbound></policies>"),
    ] {
        if let Err(e) = compile_document(&doc, Level::Api, &env) {
            assert!(e.pos.line >= 1, "error without a line: {e}");
            assert!(!e.message.is_empty());
        }
    }
});
