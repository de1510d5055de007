// The REST API as the console calls it: same endpoints as scripts, with the
// session cookie and the page's CSRF token instead of the bearer token.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";

/** A refused call: the HTTP status and the problem+json body, if any. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }
}

/**
 * Calls the REST API. `body` is sent as JSON unless `type` says otherwise.
 * Resolves to `{ status, etag, data }`; rejects with ApiError for 4xx/5xx.
 */
export async function call(method, path, { body, type, headers = {} } = {}) {
  const init = { method, headers: { Accept: "application/json", ...headers }, credentials: "same-origin" };
  if (method !== "GET" && method !== "HEAD") init.headers["X-CSRF-Token"] = csrf;
  if (body !== undefined) {
    if (type) {
      init.headers["Content-Type"] = type;
      init.body = body;
    } else {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    // The session ended (expired or signed out elsewhere): back to the login page.
    window.location.assign("/admin/login");
    throw new ApiError(401, { detail: "signed out" });
  }
  const text = await response.text();
  let data = text;
  const contentType = response.headers.get("Content-Type") || "";
  if (text && contentType.includes("json")) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) throw new ApiError(response.status, typeof data === "object" ? data : { detail: text });
  return { status: response.status, etag: response.headers.get("ETag"), data };
}

/** GET, resolving to the body. */
export async function get(path) {
  return (await call("GET", path)).data;
}

/** Every item of a paged collection (follows nextLink). */
export async function all(path) {
  const items = [];
  let next = `${path}${path.includes("?") ? "&" : "?"}top=1000`;
  while (next) {
    const page = await get(next);
    items.push(...(page.value || []));
    next = page.nextLink || null;
  }
  return items;
}

/** Reads an entity, changes it with `edit`, and writes it back with If-Match. */
export async function update(path, edit) {
  const current = await call("GET", path);
  const body = edit(structuredClone(current.data));
  return call("PUT", path, { body, headers: current.etag ? { "If-Match": current.etag } : {} });
}

/**
 * Saves a form's entity of `collection`: the existing one (`existingId`) with
 * If-Match, else a new one at `newId` made from `blank`, only if that id is free.
 * Returns the id saved.
 */
export async function save(collection, existingId, newId, apply, blank) {
  if (existingId) {
    await update(`/${collection}/${encodeURIComponent(existingId)}`, apply);
    return existingId;
  }
  await call("PUT", `/${collection}/${encodeURIComponent(newId)}`, { body: apply(blank), headers: { "If-None-Match": "*" } });
  return newId;
}

/** A problem as one sentence, with where a document breaks when the API says. */
export function explain(err) {
  if (!(err instanceof ApiError)) return String(err?.message || err);
  const p = err.problem;
  if (p.policy) return `Line ${p.policy.line}, column ${p.policy.column}: <${p.policy.element}>: ${p.policy.reason}`;
  if (p.document) {
    const d = p.document;
    const where = d.line ? `Line ${d.line}, column ${d.column}` : d.pointer !== undefined ? `At ${d.pointer || "/"}` : "";
    return where ? `${where}: ${d.reason}` : d.reason;
  }
  return p.detail || p.title || `HTTP ${err.status}`;
}
