// Client-side routes under /admin: links are followed without reloading, and
// the address bar always names the screen shown (so reloads and bookmarks work).

const routes = [];
let cleanup = null;
let main = null;

/** Adds a route: `pattern` like `/admin/apis/:id`; `view(main, ...params)`. */
export function route(pattern, view) {
  const names = [];
  const source = pattern.replace(/:[a-z]+/g, (m) => {
    names.push(m.slice(1));
    return "([^/]+)";
  });
  routes.push({ regex: new RegExp(`^${source}/?$`), view });
}

async function show(path) {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  for (const r of routes) {
    const m = r.regex.exec(path);
    if (!m) continue;
    const params = m.slice(1).map(decodeURIComponent);
    main.replaceChildren();
    try {
      const stop = await r.view(main, ...params);
      if (typeof stop === "function") cleanup = stop;
    } catch (err) {
      const p = document.createElement("p");
      p.className = "status error";
      p.setAttribute("role", "alert");
      p.textContent = `This page could not be loaded: ${err?.message || err}`;
      main.replaceChildren(p);
    }
    markCurrent(path);
    return;
  }
  const h1 = document.createElement("h1");
  h1.textContent = "Not found";
  main.replaceChildren(h1);
}

function markCurrent(path) {
  for (const a of document.querySelectorAll("#nav a")) {
    const href = a.getAttribute("href");
    const current = href === "/admin" ? path === "/admin" || path === "/admin/" : path.startsWith(href);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

/** Shows the screen at `url` and records it in the history. */
export function navigate(url) {
  window.history.pushState(null, "", url);
  const path = new URL(url, window.location.href).pathname;
  show(path).then(() => main.focus());
}

/** Starts routing in `mainElement`. */
export function start(mainElement) {
  main = mainElement;
  document.addEventListener("click", (e) => {
    const a = e.target.closest("a[href]");
    if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || a.hasAttribute("download")) return;
    const url = new URL(a.href);
    if (url.origin !== window.location.origin || !url.pathname.startsWith("/admin") || url.pathname.startsWith("/admin/assets")) return;
    e.preventDefault();
    navigate(url.pathname + url.search);
  });
  window.addEventListener("popstate", () => show(window.location.pathname));
  return show(window.location.pathname);
}
