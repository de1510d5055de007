//! The stand-in used when the gateway was built without libxslt: every
//! stylesheet is refused, so a policy using `xsl-transform` fails to load with
//! the reason instead of the build failing on a machine without the library.

use crate::XsltError;

/// A compiled XSLT 1.0 stylesheet (never made in this build).
#[derive(Debug)]
pub struct Stylesheet {
    _never: (),
}

impl Stylesheet {
    /// Refuses: this build has no XSLT engine.
    pub fn compile(_text: &str) -> Result<Stylesheet, XsltError> {
        Err(XsltError {
            line: None,
            message: "this gateway was built without libxslt, so xsl-transform is not available \
                      (install Debian's libxslt1-dev and rebuild)"
                .into(),
        })
    }

    /// Never called: no stylesheet exists in this build.
    pub fn transform(&self, _input: &[u8], _params: &[(&str, &str)]) -> Result<Vec<u8>, XsltError> {
        Err(XsltError {
            line: None,
            message: "this gateway was built without libxslt".into(),
        })
    }
}
