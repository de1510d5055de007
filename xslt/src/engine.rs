//! The libxslt engine: calls into the C shim (`src/shim.c`).

#![allow(unsafe_code)]

use crate::XsltError;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr::NonNull;
use std::sync::{Mutex, Once};

extern "C" {
    fn pc_xslt_init();
    fn pc_xslt_errors() -> *const c_char;
    fn pc_xslt_compile(text: *const c_char, len: c_int) -> *mut c_void;
    fn pc_xslt_free(style: *mut c_void);
    fn pc_xslt_transform(
        style: *mut c_void,
        input: *const c_char,
        in_len: c_int,
        params: *const *const c_char,
        out: *mut *mut u8,
        out_len: *mut c_int,
    ) -> c_int;
    fn pc_xslt_free_result(p: *mut u8);
}

static INIT: Once = Once::new();

fn init() {
    // SAFETY: pc_xslt_init only sets up libxml2/libxslt's process state; Once
    // runs it exactly once, before any other call of this crate.
    INIT.call_once(|| unsafe { pc_xslt_init() });
}

impl XsltError {
    fn from_thread(fallback: &str) -> XsltError {
        // SAFETY: pc_xslt_errors returns this thread's NUL-terminated buffer,
        // valid until this thread's next call into the shim; it is copied here.
        let text = unsafe { CStr::from_ptr(pc_xslt_errors()) }
            .to_string_lossy()
            .into_owned();
        let message = tidy(&text);
        XsltError {
            line: first_line_number(&text),
            message: if message.is_empty() {
                fallback.to_string()
            } else {
                message
            },
        }
    }
}

/// libxml2's messages repeat the offending source line and a caret under it;
/// keep the sentences only.
fn tidy(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let mut echo = false;
    for l in text.lines().map(str::trim) {
        if echo {
            // libxml2's "file:line: parser error : reason" is followed by the
            // source line and a caret line.
            echo = false;
            continue;
        }
        if l.is_empty() || l.chars().all(|c| c == '^' || c == ' ') {
            continue;
        }
        echo = l.contains(" error : ") || l.contains(" warning : ");
        out.push(l);
    }
    out.join("; ")
}

/// The first "line N" or "file:N:" in libxslt's or libxml2's text.
fn first_line_number(text: &str) -> Option<u32> {
    let number = |rest: &str| -> Option<u32> {
        let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
        n.parse().ok()
    };
    for l in text.lines() {
        // libxml2: "stylesheet.xsl:3: parser error : ... line 2 ..." (the
        // error's own line first); libxslt: "... file stylesheet.xsl line 3 ...".
        let found = ["stylesheet.xsl:", "body.xml:"]
            .iter()
            .find_map(|name| l.split(name).nth(1).and_then(number))
            .or_else(|| l.split("line ").nth(1).and_then(number));
        if found.is_some() {
            return found;
        }
    }
    None
}

struct Compiled(NonNull<c_void>);

// SAFETY: a compiled xsltStylesheet is plain heap data owned by this value; it
// may move between threads, and the mutex in `Stylesheet` keeps it to one
// thread at a time.
unsafe impl Send for Compiled {}

impl Drop for Compiled {
    fn drop(&mut self) {
        // SAFETY: the pointer came from pc_xslt_compile and is freed once.
        unsafe { pc_xslt_free(self.0.as_ptr()) }
    }
}

/// A compiled XSLT 1.0 stylesheet.
pub struct Stylesheet {
    compiled: Mutex<Compiled>,
}

impl std::fmt::Debug for Stylesheet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stylesheet")
    }
}

fn c_len(len: usize) -> Result<c_int, XsltError> {
    c_int::try_from(len).map_err(|_| XsltError {
        line: None,
        message: "the document is larger than 2 GiB".into(),
    })
}

impl Stylesheet {
    /// Compiles `text` (a whole `xsl:stylesheet` document).
    pub fn compile(text: &str) -> Result<Stylesheet, XsltError> {
        init();
        let len = c_len(text.len())?;
        // SAFETY: text is valid for len bytes during the call; the shim does
        // not keep the pointer (libxml2 copies what it parses).
        let raw = unsafe { pc_xslt_compile(text.as_ptr().cast(), len) };
        match NonNull::new(raw) {
            Some(p) => Ok(Stylesheet {
                compiled: Mutex::new(Compiled(p)),
            }),
            None => Err(XsltError::from_thread("the stylesheet does not compile")),
        }
    }

    /// Transforms the XML document `input`, with string parameters `params`
    /// (`<xsl:param>`s of the stylesheet), into the serialised result.
    pub fn transform(&self, input: &[u8], params: &[(&str, &str)]) -> Result<Vec<u8>, XsltError> {
        let in_len = c_len(input.len())?;
        let mut owned = Vec::with_capacity(params.len() * 2);
        for (name, value) in params {
            for s in [*name, *value] {
                owned.push(CString::new(s).map_err(|_| XsltError {
                    line: None,
                    message: format!("parameter '{name}' contains a NUL character"),
                })?);
            }
        }
        let mut ptrs: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        let compiled = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: *mut u8 = std::ptr::null_mut();
        let mut out_len: c_int = 0;
        // SAFETY: the stylesheet is alive and locked to this thread; input is
        // valid for in_len bytes; ptrs is a NULL-terminated array of C strings
        // that outlive the call; out and out_len are written by the shim.
        let rc = unsafe {
            pc_xslt_transform(
                compiled.0.as_ptr(),
                input.as_ptr().cast(),
                in_len,
                ptrs.as_ptr(),
                &mut out,
                &mut out_len,
            )
        };
        drop(compiled);
        if rc != 0 {
            return Err(XsltError::from_thread("the transformation failed"));
        }
        if out.is_null() {
            return Ok(Vec::new());
        }
        let n = usize::try_from(out_len).unwrap_or(0);
        // SAFETY: on success the shim set out to a buffer of out_len bytes
        // allocated by libxml2, which is copied, then freed once.
        let result = unsafe { std::slice::from_raw_parts(out, n) }.to_vec();
        unsafe { pc_xslt_free_result(out) };
        Ok(result)
    }
}
