// The Streams page: the key's camera streams with their status, and one shown live: its annotated
// preview (an <img> on /api/streams/{id}/preview, MJPEG) and its events counted (Server-Sent
// Events). Both ride on the session cookie (common.js): an <img> or an EventSource cannot send an
// Authorization header, and the key is never kept in the page.
import { api, describeError, hasToken, keyForm, session } from "/static/common.js";

const list = document.getElementById("streams");
const message = document.getElementById("message");
const live = document.getElementById("live");
const preview = document.getElementById("live-preview");
const askKey = keyForm(load);
let watching = null; // {id, events: EventSource}
let timer = null;

function say(text) {
  message.textContent = text;
  message.hidden = !text;
}

async function load() {
  if (!hasToken()) return;
  const response = await api("/api/streams");
  if (!response.ok) {
    say(describeError(response));
    if (response.status === 401) askKey(message.textContent);
    return;
  }
  const streams = response.body.streams;
  say(streams.length ? "" : "This key has no streams yet.");
  list.replaceChildren(
    ...streams.map((s) => {
      const item = document.createElement("li");
      item.dataset.stream = s.id;
      const link = document.createElement("a");
      link.href = `#${s.id}`;
      link.textContent = s.id;
      link.addEventListener("click", (event) => {
        event.preventDefault();
        watch(s);
      });
      const status = document.createElement("span");
      status.className = "badge";
      status.dataset.status = s.status;
      status.textContent = s.status;
      const info = document.createElement("span");
      info.className = "muted";
      const processed = s.frames ? ` · ${s.frames.processed} frames` : "";
      info.textContent = `${s.model} · ${s.source} · ${s.max_fps} fps${processed}${s.error ? ` · ${s.error}` : ""}`;
      item.append(link, status, info);
      return item;
    }),
  );
  if (watching) {
    const shown = streams.find((s) => s.id === watching.id);
    document.getElementById("live-status").textContent = shown ? shown.status : "deleted";
  }
  clearTimeout(timer);
  timer = setTimeout(load, 3000);
}

function watch(stream) {
  if (watching) watching.events.close();
  const events = new EventSource(`/api/streams/${encodeURIComponent(stream.id)}/events`);
  watching = { id: stream.id, events, count: 0 };
  const counter = document.getElementById("live-events");
  counter.textContent = "0 events";
  events.addEventListener("frame", () => {
    watching.count += 1;
    counter.textContent = `${watching.count} events`;
    counter.dataset.count = String(watching.count);
  });
  events.addEventListener("status", (event) => {
    document.getElementById("live-status").textContent = JSON.parse(event.data).status;
  });
  document.getElementById("live-title").textContent = `${stream.id} · ${stream.model}`;
  document.getElementById("live-status").textContent = stream.status;
  preview.src = `/api/streams/${encodeURIComponent(stream.id)}/preview`;
  live.hidden = false;
}

session.then(load);
