//! OpenAPI documents (imported by upload or fetched from a URL): arbitrary bytes
//! through parsing, Swagger 2.0 conversion, the merge into an API, the export and
//! the portal's view never panic, and a syntax error's position is whole.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_management::openapi_import::view::view;
use portcullis_management::openapi_import::{
    export, import_document, merge, ImportError, ImportOptions,
};

fuzz_target!(|data: &[u8]| {
    let (document, imported) = match import_document(data) {
        Ok(parsed) => parsed,
        Err(ImportError::Syntax { line, column, .. }) => {
            // A parser that gives no position says 0 for both; a column needs a
            // line (serde_json says column 0 at the start of a line).
            assert!(line > 0 || column == 0, "a column without a line");
            return;
        }
        Err(_) => return,
    };
    let options = ImportOptions {
        path: Some("fuzz".to_owned()),
        service_url: Some("http://127.0.0.1:1".to_owned()),
    };
    let Ok(api) = merge("fuzz", None, &imported, &options) else {
        return;
    };
    let _ = view(&api, Some(&document));
    let exported = export(&api, Some(&document));
    // What was exported reads back.
    let text = serde_json::to_vec(&exported).expect("an exported document serialises");
    assert!(
        import_document(&text).is_ok(),
        "the export does not import again"
    );
});
