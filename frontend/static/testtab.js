// The Test tab: run one model on an uploaded or example image, draw what it found.
//
// Requests are serial and "latest wins": a slider burst becomes one request after a 500 ms pause,
// and a change while a request is in flight waits for it, then sends only the newest state.
// A video plays with its predictions (video.js); the webcam predicts frame after frame (webcam.js).
// For models that find boxes, "Track objects" asks for track ids: on a video's frames, or through a
// tracking session on the webcam's.
import { api, apiFile, describeError, hasToken, keyForm, session } from "/static/common.js";
import { classColor, colourKey, draw, hitTest, taskOf } from "/static/draw.js";
import { decodeMap, describe, drawScale, metres, valueAt } from "/static/maps.js";
import { VideoView, isVideo } from "/static/video.js";
import { WebcamView } from "/static/webcam.js";

// The server's upload limits (TRIDENT_MAX_UPLOAD_BYTES, TRIDENT_MAX_VIDEO_BYTES), checked here
// before sending; without them the API alone checks.
const LIMITS = await fetch("/limits").then((r) => (r.ok ? r.json() : null)).catch(() => null);
const megabytes = (bytes) => `${+(bytes / 1024 / 1024).toFixed(1)} MB`;
// The formats the server decodes (frontend/serving/imaging.py), told by their bytes as it tells them.
const FORMATS = "JPEG, PNG, WebP, AVIF, HEIC, JP2, TIFF, BMP, DNG, MPO or GIF";
// What this page draws from the browser's own decoding; any other format is shown as the server
// decodes it for predict (POST /api/preview), so the boxes land on the pixels the model saw.
const SHOWN_AS_IS = ["jpeg", "png", "webp", "gif", "bmp"];
const DEBOUNCE_MS = 500;
const TRACKABLE = ["detect", "segment", "pose", "obb"]; // the tasks `track` accepts

const $ = (id) => document.getElementById(id);
const slug = decodeURIComponent(location.pathname.replace(/^\/models\//, "").replace(/\/+$/, ""));
// The page reads the reference page's format; it says so, whatever the server's default (TRIDENT_API_FORMAT).
const endpoint = `/api/models/${slug}/predict?format=seed`;
const stage = $("stage");
const canvas = $("canvas");
if (LIMITS) {
  const images = megabytes(LIMITS.maxImageBytes), videos = megabytes(LIMITS.maxVideoBytes);
  $("limits").textContent = `${FORMATS} up to ${images}; videos up to ${videos}`;
}
const controls = { conf: $("conf"), iou: $("iou"), imgsz: $("imgsz") };
const tracking = { track: $("track"), tracker: $("tracker") };

const state = {
  input: null, // {blob, name, image}: what the next request sends
  shown: null, // {input, result}: what the canvas shows
  task: null, // from the model list; results also say it by their shape
  highlight: -1,
};
let inFlight = false;
let again = false;
let debounce = 0;

const askKey = keyForm(() => {
  loadModels();
  loadExamples();
  if (state.input) run();
});

// --- messages and status -------------------------------------------------------------------

function say(text, kind = "error") {
  const message = $("message");
  message.textContent = text;
  message.className = `message ${kind}`;
  message.hidden = !text;
}

function params() {
  return { conf: Number(controls.conf.value), iou: Number(controls.iou.value), imgsz: Number(controls.imgsz.value) };
}

/** Whether track ids are asked for: the box is ticked and the model's task can be tracked. */
const tracks = () => tracking.track.checked && TRACKABLE.includes(state.task);

/** A video's fields: the sliders', and `track` with its tracker when tracking. */
function videoParams() {
  return tracks() ? { ...params(), track: true, tracker: tracking.tracker.value } : params();
}

/** A webcam frame's fields: the sliders', and the tracker when the frames go to a session. */
function webcamParams() {
  return tracks() ? { ...params(), tracker: tracking.tracker.value } : params();
}

// --- input: files, drops, examples ---------------------------------------------------------

const ascii = (bytes, start, end) => String.fromCharCode(...bytes.subarray(start, end));
const startsWith = (bytes, prefix) => prefix.every((b, i) => bytes[i] === b);
const HEIF_BRANDS = ["heic", "heix", "heim", "heis", "hevc", "hevx", "hevm", "hevs", "heif", "mif1", "msf1", "mif2", "miaf"];

/** The image format a file's first bytes name, as the server's `sniff` reads them; null for none. */
async function imageFormat(blob) {
  const bytes = new Uint8Array(await blob.slice(0, 64).arrayBuffer());
  if (startsWith(bytes, [0xff, 0xd8, 0xff])) return "jpeg";
  if (startsWith(bytes, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return "png";
  if (["GIF87a", "GIF89a"].includes(ascii(bytes, 0, 6))) return "gif";
  if (ascii(bytes, 0, 4) === "RIFF" && ascii(bytes, 8, 12) === "WEBP") return "webp";
  if (["II*\0", "MM\0*"].includes(ascii(bytes, 0, 4))) return "tiff"; // a DNG is a TIFF too
  if (ascii(bytes, 0, 2) === "BM") return "bmp";
  if (startsWith(bytes, [0, 0, 0, 0x0c, 0x6a, 0x50, 0x20, 0x20]) || startsWith(bytes, [0xff, 0x4f, 0xff, 0x51])) return "jp2";
  if (ascii(bytes, 4, 8) === "ftyp") {
    const size = Math.min(new DataView(bytes.buffer).getUint32(0), bytes.length);
    const brands = [ascii(bytes, 8, 12)];
    for (let at = 16; at + 4 <= size; at += 4) brands.push(ascii(bytes, at, at + 4));
    if (brands.some((b) => b === "avif" || b === "avis")) return "avif";
    if (brands.some((b) => HEIF_BRANDS.includes(b))) return "heic";
  }
  return null;
}

/** Why a file cannot be sent, or "" when it can (the server checks again). */
async function rejectReason(blob, name) {
  if (isVideo(blob, name)) {
    const mb = (blob.size / 1024 / 1024).toFixed(1);
    const max = LIMITS?.maxVideoBytes ?? Infinity;
    return blob.size > max ? `"${name}" is ${mb} MB; videos must be ${megabytes(max)} or smaller.` : "";
  }
  if (LIMITS && blob.size > LIMITS.maxImageBytes) {
    const max = megabytes(LIMITS.maxImageBytes);
    return `"${name}" is ${(blob.size / 1024 / 1024).toFixed(1)} MB; images must be ${max} or smaller.`;
  }
  if (!(await imageFormat(blob))) return `"${name}" is not a supported image. Use ${FORMATS}.`;
  return "";
}

/** The picture to draw on: the file itself where the browser shows it as predict reads it, else the
 * server's decoding of it (POST /api/preview). Resolves to an <img>, or to a failed response. */
async function picture(blob, name) {
  let source = blob;
  if (!SHOWN_AS_IS.includes(await imageFormat(blob))) {
    const form = new FormData();
    form.append("file", blob, name);
    const response = await apiFile("/api/preview", { method: "POST", body: form });
    if (!response.ok) return { failure: response };
    source = response.blob;
  }
  const image = new Image();
  image.src = URL.createObjectURL(source);
  try {
    await image.decode();
  } catch {
    return { failure: null };
  }
  return { image };
}

async function useImage(blob, name) {
  const reason = await rejectReason(blob, name);
  if (reason) return say(reason);
  if (webcam.running) {
    webcamShown(false);
    await webcam.stop();
  }
  if (isVideo(blob, name)) return useVideo(blob, name);
  video.hide();
  if (!hasToken() && !SHOWN_AS_IS.includes(await imageFormat(blob))) {
    return askKey("Enter your API key to run the model. It is never stored in this browser.");
  }
  const { image, failure } = await picture(blob, name);
  if (!image) {
    if (failure && failure.status === 401) askKey("That key was not accepted. Paste a valid API key.");
    return say(failure ? describeError(failure) : `"${name}" could not be read as an image.`);
  }
  say("");
  state.input = { blob, name, image };
  state.shown = { input: state.input, result: null };
  render();
  clearTimeout(debounce);
  run();
}

// --- video: plays in a <video>, predictions streamed in and drawn over each frame (video.js) ---

const video = new VideoView(stage, (frame) => {
  if (state.input && state.input.video) renderDetails(frame && { predictions: frame.predictions, speed: frame.speed });
});

function useVideo(blob, name) {
  say("");
  state.input = { blob, name, video: true };
  state.shown = null;
  canvas.hidden = true;
  stage.querySelector(".placeholder").hidden = true;
  $("download").disabled = true;
  clearTimeout(debounce);
  run();
}

async function predictVideo(input) {
  stage.dataset.state = "loading";
  const failure = await video.run(input.blob, input.name, endpoint, videoParams());
  if (state.input !== input) return; // another file was chosen meanwhile
  if (failure) {
    stage.dataset.state = "error";
    stage.dataset.status = String(failure.status);
    say(failure.body ? describeError(failure) : "The video's predictions stopped arriving.");
    if (failure.status === 401) askKey("That key was not accepted. Paste a valid API key.");
    return;
  }
  stage.dataset.status = "200";
  stage.dataset.state = "done";
}

// --- webcam: frames predicted one after the other, drawn live (webcam.js) ---------------------

const webcam = new WebcamView(
  stage,
  $("webcam-status"),
  (result, roundTrip) => renderDetails(result, roundTrip),
  (failure) => {
    webcamShown(false);
    stage.querySelector(".placeholder").hidden = false;
    renderDetails(null);
    const detail = failure.status === 410 && failure.body && failure.body.error && failure.body.error.detail;
    say(`The webcam stopped: ${detail || describeError(failure)}`); // 410: why the server ended the session
    if (failure.status === 401) askKey("That key was not accepted. Paste a valid API key.");
  },
);

/** Show the webcam's controls (or the other sources' again). */
function webcamShown(live) {
  $("webcam-bar").hidden = !live;
  $("webcam-start").disabled = live;
  for (const input of Object.values(tracking)) input.disabled = live; // a session keeps its tracker
}

$("webcam-start").addEventListener("click", async () => {
  if (!hasToken()) return askKey("Enter your API key to run the model. It is never stored in this browser.");
  clearTimeout(debounce);
  state.input = null; // the sliders now apply to the next frame, not to a file
  state.shown = null;
  video.hide();
  canvas.hidden = true;
  stage.querySelector(".placeholder").hidden = true;
  $("download").disabled = true;
  say("");
  webcamShown(true);
  const failure = await webcam.start(endpoint, webcamParams, tracks());
  if (failure) {
    webcamShown(false);
    stage.querySelector(".placeholder").hidden = false;
    say(failure);
  }
});

$("webcam-stop").addEventListener("click", async () => {
  webcamShown(false);
  await webcam.stop();
  stage.querySelector(".placeholder").hidden = false;
  renderDetails(null);
});

$("webcam-capture").addEventListener("click", async () => {
  webcamShown(false);
  const blob = await webcam.capture();
  if (blob) useImage(blob, "webcam.jpg"); // predicted as a still, without the session
});

$("file").addEventListener("change", (event) => {
  const [file] = event.target.files;
  if (file) useImage(file, file.name);
  event.target.value = ""; // choosing the same file again still triggers a run
});

const drop = $("drop");
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") $("file").click();
});
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer && event.dataTransfer.files[0];
  if (file) useImage(file, file.name);
});

/** The model's own examples (stored with it at export), else Ultralytics' bus.jpg and zidane.jpg. */
async function loadExamples() {
  const own = hasToken() ? await api(`/api/models/${slug}/examples`) : null;
  let base = `/api/models/${slug}/examples`;
  let names = own && own.ok ? own.body.examples : [];
  if (!names.length) {
    const response = await fetch("/examples");
    names = response.ok ? await response.json() : [];
    base = "/examples";
  }
  $("examples").dataset.source = base === "/examples" ? "default" : "model";
  $("examples").replaceChildren(
    ...names.map((name) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "example";
      button.dataset.example = name;
      button.title = `Run on ${name}`;
      const thumb = document.createElement("img");
      thumb.src = `${base}/${name}`;
      thumb.alt = name;
      button.append(thumb, name);
      button.addEventListener("click", async () => {
        const image = await fetch(`${base}/${name}`, { credentials: "same-origin" });
        useImage(await image.blob(), name);
      });
      return button;
    }),
  );
}

// --- controls --------------------------------------------------------------------------------

for (const [name, input] of Object.entries(controls)) {
  input.addEventListener("input", () => {
    $(`${name}-value`).textContent = input.value;
    updateCode();
    clearTimeout(debounce);
    debounce = setTimeout(run, DEBOUNCE_MS);
  });
}
for (const input of Object.values(tracking)) {
  input.addEventListener("change", () => {
    updateCode();
    if (!state.input || !state.input.video) return; // an image is never tracked
    clearTimeout(debounce);
    run();
  });
}

// --- requests ----------------------------------------------------------------------------------

async function run() {
  if (!state.input) return;
  if (!hasToken()) return askKey("Enter your API key to run the model. It is never stored in this browser.");
  if (inFlight) {
    again = true; // the running request finishes first; then the newest state goes out once
    return;
  }
  inFlight = true;
  try {
    do {
      again = false;
      await predictOnce();
    } while (again && state.input);
  } finally {
    inFlight = false;
  }
}

async function predictOnce() {
  const input = state.input;
  updateCode();
  if (input.video) return predictVideo(input);
  const sent = params();
  const form = new FormData();
  form.append("file", input.blob, input.name);
  for (const [name, value] of Object.entries(sent)) form.append(name, String(value));
  stage.dataset.state = "loading";
  const started = performance.now();
  const response = await api(endpoint, { method: "POST", body: form });
  const roundTrip = performance.now() - started;
  if (!response.ok) {
    stage.dataset.state = "error";
    stage.dataset.status = String(response.status);
    say(describeError(response));
    if (response.status === 401) askKey("That key was not accepted. Paste a valid API key.");
    return;
  }
  let map = null; // semantic and depth: the decoded map, drawn and hovered
  try {
    map = await decodeMap(response.body);
    say("");
  } catch {
    say("The map in this answer could not be decoded.");
  }
  stage.dataset.status = "200";
  state.shown = { input, result: response.body, roundTrip, map };
  state.highlight = -1;
  render();
  stage.dataset.state = "done";
  stage.dataset.run = String(Number(stage.dataset.run) + 1);
}

// --- output --------------------------------------------------------------------------------

function render() {
  const shown = state.shown;
  if (!shown) return;
  const { image } = shown.input;
  const result = shown.result;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  canvas.hidden = false;
  stage.querySelector(".placeholder").hidden = true;
  const drawn = draw(canvas, image, result, state.highlight, shown.map);
  const counts = { ...drawn, predictions: result ? result.predictions.length : 0 };
  counts.bars = result && taskOf(result, state.task) === "classify" ? result.predictions.length : 0;
  for (const [name, value] of Object.entries(counts)) stage.dataset[name] = String(value);
  if (state.highlight < 0) renderDetails(result, shown.roundTrip);
  $("download").disabled = !result;
}

function renderDetails(result, roundTrip) {
  const rows = $("predictions").tBodies[0];
  const bars = $("bars");
  renderLegend(result);
  if (!result) {
    rows.replaceChildren();
    bars.hidden = true;
    $("json").textContent = "";
    $("speed").replaceChildren();
    return;
  }
  $("json").textContent = JSON.stringify(result, shortMaps, 2);
  const task = taskOf(result, state.task);
  const boxes = task !== "semantic" && task !== "depth";
  rows.replaceChildren(...(boxes ? result.predictions : []).map((p, i) => predictionRow(p, i)));
  $("predictions").hidden = !boxes;
  $("predictions").classList.toggle("no-box", task === "classify");
  bars.hidden = task !== "classify";
  bars.replaceChildren(
    ...(task === "classify" ? result.predictions : []).map((p) => {
      const item = document.createElement("li");
      item.innerHTML = `<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
      item.querySelector(".name").textContent = p.class;
      item.querySelector(".fill").style.width = `${(p.confidence * 100).toFixed(1)}%`;
      item.querySelector(".fill").style.background = classColor(p.class_id);
      item.querySelector(".pct").textContent = `${(p.confidence * 100).toFixed(1)}%`;
      return item;
    }),
  );
  const speed = result.speed || {};
  const entries = [
    ["Preprocess", speed.preprocess],
    ["Inference", speed.inference],
    ["Postprocess", speed.postprocess],
    ["Round trip", roundTrip],
  ];
  $("speed").replaceChildren(
    ...entries.flatMap(([name, ms]) => {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = ms === undefined ? "–" : `${ms.toFixed(1)} ms`;
      dd.dataset.stage = name.toLowerCase().replace(" ", "-");
      return [dt, dd];
    }),
  );
}

/** The JSON view shortens a map's base64 PNG (megabytes for a large image) to its start and length. */
function shortMaps(key, value) {
  if (key !== "data" || typeof value !== "string" || value.length <= 80) return value;
  return `${value.slice(0, 40)}… (${value.length} base64 characters)`;
}

/** Semantic: a swatch, name and pixel share per class present. Depth: the colour scale, min to max. */
function renderLegend(result) {
  const legend = $("legend");
  const classes = result && result.semantic_mask ? result.predictions : [];
  legend.hidden = !classes.length;
  legend.replaceChildren(
    ...classes.map((p) => {
      const item = document.createElement("li");
      item.dataset.classId = String(p.class_id);
      item.innerHTML = `<span class="swatch"></span><span class="name"></span><span class="pct"></span>`;
      item.querySelector(".swatch").style.background = classColor(p.class_id);
      item.querySelector(".name").textContent = p.class;
      item.querySelector(".pct").textContent = `${(p.pixel_ratio * 100).toFixed(1)}%`;
      return item;
    }),
  );
  const depth = result && result.depth;
  $("depth-scale").hidden = !depth;
  if (!depth) return;
  $("depth-min").textContent = metres(depth.min);
  $("depth-max").textContent = metres(depth.max);
  drawScale($("depth-bar"));
}

function predictionRow(p, i) {
  const row = document.createElement("tr");
  row.dataset.index = String(i);
  const box = p.box
    ? ("x4" in p.box ? [1, 2, 3, 4].map((k) => `${p.box[`x${k}`].toFixed(0)},${p.box[`y${k}`].toFixed(0)}`).join(" ")
      : [p.box.x1, p.box.y1, p.box.x2, p.box.y2].map((v) => v.toFixed(0)).join(", "))
    : "";
  row.innerHTML = `<td></td><td><span class="swatch"></span><span class="cls"></span></td><td></td><td class="muted"></td>`;
  row.cells[0].textContent = String(i + 1);
  row.querySelector(".swatch").style.background = classColor(colourKey(p));
  row.querySelector(".cls").textContent = p.track_id === undefined ? p.class : `#${p.track_id} ${p.class}`;
  row.cells[2].textContent = p.confidence.toFixed(3);
  row.cells[3].textContent = box;
  row.addEventListener("mouseenter", () => highlight(i));
  row.addEventListener("mouseleave", () => highlight(-1));
  return row;
}

function highlight(index) {
  if (index === state.highlight) return;
  state.highlight = index;
  for (const row of $("predictions").tBodies[0].rows) row.classList.toggle("hot", Number(row.dataset.index) === index);
  render();
}

function showTooltip(text, event) {
  const tooltip = $("tooltip");
  tooltip.hidden = !text;
  tooltip.textContent = text;
  tooltip.style.left = `${canvas.offsetLeft + event.offsetX + 12}px`; // the stage is its frame, not the canvas
  tooltip.style.top = `${canvas.offsetTop + event.offsetY + 12}px`;
}

canvas.addEventListener("mousemove", (event) => {
  const shown = state.shown;
  if (!shown || !shown.result) return;
  const box = canvas.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * canvas.width; // image pixels, fractional
  const y = ((event.clientY - box.top) / box.height) * canvas.height;
  if (shown.map) {
    const value = valueAt(shown.map, x, y, canvas.width, canvas.height);
    for (const item of $("legend").children) item.classList.toggle("hot", item.dataset.classId === String(value));
    return showTooltip(describe(shown.map, value), event);
  }
  const index = hitTest(shown.result.predictions, x, y);
  highlight(index);
  const p = shown.result.predictions[index];
  showTooltip(p ? `${p.class} ${(p.confidence * 100).toFixed(1)}%` : "", event);
});
canvas.addEventListener("mouseleave", () => {
  $("tooltip").hidden = true;
  for (const item of $("legend").children) item.classList.remove("hot");
  highlight(-1);
});

$("download").addEventListener("click", () => {
  const shown = state.shown;
  if (!shown || !shown.result) return;
  const previous = state.highlight;
  state.highlight = -1;
  render();
  canvas.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    const stem = shown.input.name.replace(/\.[^.]+$/, "");
    link.download = `${stem}-${slug.split("/").pop()}-annotated.png`;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    if (previous >= 0) highlight(previous);
  }, "image/png");
});

// --- tabs and code -------------------------------------------------------------------------

for (const tab of document.querySelectorAll("[data-tab]")) {
  tab.addEventListener("click", () => {
    for (const other of document.querySelectorAll("[data-tab]")) {
      other.setAttribute("aria-selected", String(other === tab));
      $(`tab-${other.dataset.tab}`).hidden = other !== tab;
    }
  });
}

const shellQuote = (text) => `'${text.replace(/'/g, "'\\''")}'`;

function updateCode() {
  const url = `${location.origin}${endpoint}`;
  const { conf, iou, imgsz } = params();
  const name = state.input ? state.input.name : "image.jpg";
  const track = tracks() && state.input && state.input.video ? { track: "true", tracker: tracking.tracker.value } : null;
  $("code-curl").textContent = [
    `curl -X POST ${shellQuote(url)} \\`,
    `  -H "Authorization: Bearer $TRIDENT_API_KEY" \\`,
    `  -F ${shellQuote(`file=@${name}`)} \\`,
    `  -F conf=${conf} -F iou=${iou} -F imgsz=${imgsz}${track ? ` -F track=true -F tracker=${track.tracker}` : ""}`,
  ].join("\n");
  $("code-python").textContent = [
    "import os",
    "",
    "import requests",
    "",
    `url = ${JSON.stringify(url)}`,
    `headers = {"Authorization": f"Bearer {os.environ['TRIDENT_API_KEY']}"}`,
    `data = {"conf": ${conf}, "iou": ${iou}, "imgsz": ${imgsz}${track ? `, "track": "true", "tracker": "${track.tracker}"` : ""}}`,
    `with open(${JSON.stringify(name)}, "rb") as f:`,
    `    response = requests.post(url, headers=headers, data=data, files={"file": f})`,
    "response.raise_for_status()",
    "print(response.json())",
  ].join("\n");
}

for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($(button.dataset.copy).textContent);
      button.textContent = "Copied";
    } catch {
      button.textContent = "Select and copy";
    }
    setTimeout(() => (button.textContent = "Copy"), 1500);
  });
}

// --- the model -----------------------------------------------------------------------------

async function loadModels() {
  if (!hasToken()) return;
  const response = await api("/api/models");
  if (!response.ok) {
    say(describeError(response));
    if (response.status === 401) askKey("That key was not accepted. Paste a valid API key.");
    return;
  }
  const models = response.body.models;
  const select = $("model-select");
  const slugs = models.map((m) => m.slug);
  if (!slugs.includes(slug)) slugs.unshift(slug);
  select.replaceChildren(
    ...slugs.map((s) => {
      const option = document.createElement("option");
      option.value = s;
      option.textContent = s;
      option.selected = s === slug;
      return option;
    }),
  );
  const model = models.find((m) => m.slug === slug);
  if (!model) return say(`There is no model ${slug} on this server. Pick one from the list.`);
  state.task = model.task;
  $("task").textContent = model.task;
  $("task").hidden = false;
  $("track-controls").hidden = !TRACKABLE.includes(model.task);
}

$("model-select").addEventListener("change", (event) => {
  if (event.target.value !== slug) location.assign(`/models/${event.target.value}`);
});

document.title = `${slug} · Test · Trident`;
$("model-select").append(new Option(slug, slug, true, true));
updateCode();
session.then(() => {
  loadModels();
  loadExamples();
});
