// The model picker: every model the API lists, each linking to its Test tab.
import { api, describeError, hasToken, keyForm, session } from "/static/common.js";

const list = document.getElementById("models");
const message = document.getElementById("message");
const askKey = keyForm(load);

async function load() {
  if (!hasToken()) return;
  const response = await api("/api/models");
  if (!response.ok) {
    message.textContent = describeError(response);
    message.hidden = false;
    if (response.status === 401) askKey(message.textContent);
    return;
  }
  message.hidden = true;
  const models = response.body.models;
  list.replaceChildren(
    ...models.map((m) => {
      const item = document.createElement("li");
      const link = document.createElement("a");
      link.href = `/models/${m.slug}`;
      link.textContent = m.slug;
      const info = document.createElement("span");
      info.className = "muted";
      info.textContent = `${m.task} · ${m.classes} classes · ${m.imgsz.join("×")}`;
      item.append(link, info);
      return item;
    }),
  );
  if (!models.length) {
    message.textContent = "No models yet. Export one with `trident export weights.pt --slug owner/project/model`.";
    message.hidden = false;
  }
}

session.then(load);
