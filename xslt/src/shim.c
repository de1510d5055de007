/*
 * The part of Portcullis's XSLT binding that must be C: libxslt reports
 * errors through printf-style variadic callbacks, which stable Rust cannot
 * define. Everything here runs on the calling thread; error text goes to a
 * per-thread buffer that the Rust side reads after each call.
 *
 * Nothing may leave the process: document(), xsl:include and xsl:import go
 * through a loader that refuses every URI, external entities through an
 * entity loader that refuses them, and the security preferences forbid
 * reading and writing files and the network (xsl:document, EXSLT).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlIO.h>
#include <libxslt/documents.h>
#include <libxslt/security.h>
#include <libxslt/transform.h>
#include <libxslt/variables.h>
#include <libxslt/xslt.h>
#include <libxslt/xsltInternals.h>
#include <libxslt/xsltutils.h>

static __thread char errors[4096];
static __thread size_t errors_len;

static void collect(void *ctx, const char *msg, ...) {
    (void)ctx;
    if (errors_len >= sizeof(errors) - 1) {
        return;
    }
    va_list ap;
    va_start(ap, msg);
    int n = vsnprintf(errors + errors_len, sizeof(errors) - errors_len, msg, ap);
    va_end(ap);
    if (n > 0) {
        errors_len += (size_t)n;
        if (errors_len > sizeof(errors) - 1) {
            errors_len = sizeof(errors) - 1;
        }
    }
}

static xmlDocPtr refuse_document(const xmlChar *uri, xmlDictPtr dict, int options,
                                 void *ctxt, xsltLoadType type) {
    (void)dict;
    (void)options;
    (void)ctxt;
    (void)type;
    collect(NULL, "external document '%s' refused: a stylesheet may not load documents\n",
            uri ? (const char *)uri : "");
    return NULL;
}

static xmlParserInputPtr refuse_entity(const char *url, const char *id,
                                       xmlParserCtxtPtr ctxt) {
    (void)id;
    (void)ctxt;
    collect(NULL, "external entity '%s' refused\n", url ? url : "");
    return NULL;
}

/* Once per process, before any other call. */
void pc_xslt_init(void) {
    xmlInitParser();
    xsltInit();
    xsltSetGenericErrorFunc(NULL, collect);
    xsltSetLoaderFunc(refuse_document);
    xmlSetExternalEntityLoader(refuse_entity);
    xsltSecurityPrefsPtr prefs = xsltNewSecurityPrefs();
    if (prefs != NULL) {
        xsltSetSecurityPrefs(prefs, XSLT_SECPREF_READ_FILE, xsltSecurityForbid);
        xsltSetSecurityPrefs(prefs, XSLT_SECPREF_WRITE_FILE, xsltSecurityForbid);
        xsltSetSecurityPrefs(prefs, XSLT_SECPREF_CREATE_DIRECTORY, xsltSecurityForbid);
        xsltSetSecurityPrefs(prefs, XSLT_SECPREF_READ_NETWORK, xsltSecurityForbid);
        xsltSetSecurityPrefs(prefs, XSLT_SECPREF_WRITE_NETWORK, xsltSecurityForbid);
        xsltSetDefaultSecurityPrefs(prefs);
    }
}

/* Starts a call: empties this thread's error text and routes libxml2's
 * (per-thread) error callback to it. */
static void begin(void) {
    errors_len = 0;
    errors[0] = 0;
    xmlSetGenericErrorFunc(NULL, collect);
    xmlSetStructuredErrorFunc(NULL, NULL);
}

/* The error text of this thread's last call. */
const char *pc_xslt_errors(void) {
    errors[errors_len] = 0;
    return errors;
}

static const int PARSE_OPTIONS = XML_PARSE_NONET | XML_PARSE_NOCDATA;

/* Compiles a stylesheet; NULL on error (the reasons in pc_xslt_errors). */
xsltStylesheetPtr pc_xslt_compile(const char *text, int len) {
    begin();
    xmlDocPtr doc = xmlReadMemory(text, len, "stylesheet.xsl", "UTF-8", PARSE_OPTIONS);
    if (doc == NULL) {
        return NULL;
    }
    xsltStylesheetPtr style = xsltParseStylesheetDoc(doc);
    if (style == NULL) {
        /* Whether libxslt freed the document on failure differs between
         * versions: leaking it (once per refused configuration) is the safe
         * choice over a double free. */
        return NULL;
    }
    if (style->errors != 0) {
        xsltFreeStylesheet(style);
        return NULL;
    }
    /* XSLT's default output encoding is UTF-8; without one named, libxslt
     * would write every non-ASCII character as a character reference. */
    if (style->encoding == NULL) {
        style->encoding = xmlStrdup((const xmlChar *)"UTF-8");
    }
    return style;
}

void pc_xslt_free(xsltStylesheetPtr style) {
    xsltFreeStylesheet(style);
}

/* Transforms a document; 0 with the serialised result in *out (free it with
 * pc_xslt_free_result), -1 on error (the reasons in pc_xslt_errors).
 * params: name, value, ..., NULL; values are strings, quoted here. */
int pc_xslt_transform(xsltStylesheetPtr style, const char *in, int in_len,
                      const char **params, xmlChar **out, int *out_len) {
    begin();
    *out = NULL;
    *out_len = 0;
    xmlDocPtr doc = xmlReadMemory(in, in_len, "body.xml", NULL, PARSE_OPTIONS);
    if (doc == NULL) {
        return -1;
    }
    xsltTransformContextPtr ctxt = xsltNewTransformContext(style, doc);
    if (ctxt == NULL) {
        xmlFreeDoc(doc);
        return -1;
    }
    int rc = -1;
    if (xsltQuoteUserParams(ctxt, params) == 0) {
        xmlDocPtr res = xsltApplyStylesheetUser(style, doc, NULL, NULL, NULL, ctxt);
        if (res != NULL) {
            if (ctxt->state == XSLT_STATE_OK &&
                xsltSaveResultToString(out, out_len, res, style) == 0) {
                rc = 0;
            }
            xmlFreeDoc(res);
        }
    }
    xsltFreeTransformContext(ctxt);
    xmlFreeDoc(doc);
    if (rc == 0 && *out == NULL) {
        /* An empty result: libxslt leaves the string unset. */
        *out_len = 0;
    }
    return rc;
}

void pc_xslt_free_result(xmlChar *p) {
    if (p != NULL) {
        xmlFree(p);
    }
}
