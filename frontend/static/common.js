// What both pages share: the API key (kept in this browser), API calls, and human error messages.

const KEY_STORAGE = "trident.apiKey";

export const getKey = () => localStorage.getItem(KEY_STORAGE) || "";
export const setKey = (key) => localStorage.setItem(KEY_STORAGE, key.trim());
export const forgetKey = () => localStorage.removeItem(KEY_STORAGE);

/** fetch() with the Bearer key; never throws: network failures come back as {ok: false, status: 0}. */
export async function api(path, options = {}) {
  const headers = { ...(options.headers || {}), Authorization: `Bearer ${getKey()}` };
  try {
    const response = await fetch(path, { ...options, headers });
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
  const error = (body && body.error) || {};
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
 * Wire the API-key form: shown when there is no key (or it was rejected), hidden once saved.
 * `onSaved` runs after a key is stored.
 */
export function keyForm(onSaved) {
  const dialog = document.getElementById("key-panel");
  const form = document.getElementById("key-form");
  const input = document.getElementById("key-input");
  const note = document.getElementById("key-note");
  const show = (message) => {
    note.textContent = message || "Paste an API key. It is kept in this browser only (localStorage).";
    input.value = "";
    dialog.hidden = false;
    input.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!input.value.trim()) return;
    setKey(input.value);
    dialog.hidden = true;
    onSaved();
  });
  document.getElementById("key-change").addEventListener("click", () => show());
  document.getElementById("key-cancel").addEventListener("click", () => {
    if (getKey()) dialog.hidden = true;
  });
  if (!getKey()) show("Enter your API key to use this page. It is kept in this browser only (localStorage).");
  return show;
}
