// What both pages share: the session (a token made from the pasted key), API calls, and human
// error messages.
//
// The pasted key is sent once, to POST /api/tokens, and forgotten: the server answers with a
// 15-minute token in an HttpOnly, SameSite=Strict cookie that scripts cannot read and the browser
// sends with every /api call. The key is never kept in localStorage, sessionStorage, a cookie or a URL.

localStorage.removeItem("trident.apiKey"); // where earlier versions kept the key: never again

let signedIn = null; // unknown until `session` answers; a 401 later says the token is gone

/** Whether the page may have a token (it cannot read the HttpOnly cookie; the server can). */
export const hasToken = () => signedIn !== false;

/** Resolves to whether this browser holds a good token (GET /api/tokens never answers 401). */
export const session = request("/api/tokens").then((r) => {
  signedIn = Boolean(r.ok && r.body && r.body.active);
  return signedIn;
});

/** Trade a pasted key for the token cookie; resolves to the response (ok or not). */
async function exchange(key) {
  const response = await request("/api/tokens", {
    method: "POST",
    headers: { Authorization: `Bearer ${key.trim()}` },
  });
  signedIn = response.ok;
  return response;
}

/** fetch() with the session cookie; never throws: network failures come back as {ok: false, status: 0}. */
export async function api(path, options = {}) {
  const response = await request(path, options);
  if (response.status === 401) signedIn = false;
  return response;
}

/** Like `api`, for a call answered with a file: `blob` when ok, else the JSON error in `body`. */
export async function apiFile(path, options = {}) {
  try {
    const response = await fetch(path, { ...options, credentials: "same-origin" });
    if (response.status === 401) signedIn = false;
    const { ok, status, headers } = response;
    if (ok) return { ok, status, headers, body: null, blob: await response.blob() };
    return { ok, status, headers, body: await response.json().catch(() => null), blob: null };
  } catch {
    return { ok: false, status: 0, headers: new Headers(), body: null, blob: null };
  }
}

async function request(path, options) {
  try {
    const response = await fetch(path, { ...options, credentials: "same-origin" });
    const body = await response.json().catch(() => null);
    return { ok: response.ok, status: response.status, headers: response.headers, body };
  } catch {
    return { ok: false, status: 0, headers: new Headers(), body: null };
  }
}

/** Seconds to wait, from a Retry-After header (seconds or an HTTP date); null when absent. */
export function retryAfterSeconds(headers) {
  const value = headers.get("Retry-After");
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const when = Date.parse(value);
  return Number.isNaN(when) ? null : Math.max(0, Math.ceil((when - Date.now()) / 1000));
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** What to tell a person about a failed call. */
export function describeError({ status, headers, body }) {
  const raw = (body && body.error) || {};
  const error = typeof raw === "string" ? { message: raw } : raw; // the Platform's {"error": "..."}
  const wait = retryAfterSeconds(headers);
  if (status === 0) return "Could not reach the Trident server. Check that it is running, then try again.";
  if (status === 401) return "Your API key was not accepted. Enter a valid key to continue.";
  if (status === 429) {
    const when = wait === null ? "in a moment" : `in ${plural(wait, "second")}`;
    return `Too many requests: this key has reached its rate limit. Try again ${when}.`;
  }
  if (status === 503) {
    const when = wait === null ? "shortly" : `in ${plural(wait, "second")}`;
    return `The model is not available right now. Try again ${when}.`;
  }
  const message = error.message || `HTTP ${status}`;
  return error.detail && error.detail !== message ? `${message}: ${error.detail}` : message;
}

/**
 * Wire the API-key form: shown when there is no token (or it was refused), hidden once the key
 * was exchanged for one. `onSaved` runs after that.
 */
const NOTE = "Paste an API key. It is exchanged once for a 15-minute session and never stored in this browser.";

export function keyForm(onSaved) {
  const dialog = document.getElementById("key-panel");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const note = document.getElementById("key-note");
  const show = (message) => {
    note.textContent = message || NOTE;
    input.value = "";
    dialog.hidden = false;
    input.focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value;
    input.value = ""; // the key leaves the page with this one request
    if (!key.trim()) return;
    const response = await exchange(key);
    if (!response.ok) return show(describeError(response));
    dialog.hidden = true;
    onSaved();
  });
  document.getElementById("key-change").addEventListener("click", () => show());
  document.getElementById("key-cancel").addEventListener("click", () => {
    if (signedIn) dialog.hidden = true;
  });
  session.then((active) => active || show());
  return show;
}
