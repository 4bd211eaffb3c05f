// Video in the Test tab: the upload plays in a <video>, the predict answer streams in as NDJSON
// (one line per processed frame, a progress bar while it arrives), and every frame the player
// shows gets the predictions of the latest processed frame at or before it, drawn on a canvas laid
// over the player, in sync through requestVideoFrameCallback. A per-frame list seeks on click.
// Tracked (`track=true`), each box is labelled with its id, in its id's colour, with a trail of
// its centres over the processed frames up to the one shown.
import { TRAIL, draw, trailsOf } from "/static/draw.js";

const VIDEO_EXTENSIONS = /\.(mp4|m4v|mov|webm|mkv|avi|wmv|asf|mpe?g|ts)$/i;

/** Whether a chosen file is a video (the server decides by its bytes; this only picks the view). */
export const isVideo = (blob, name) => (blob.type || "").startsWith("video/") || VIDEO_EXTENSIONS.test(name);

/** Index of the last processed frame at or before `index` in `frames` (sorted by frame), or -1. */
export function frameAt(frames, index) {
  let low = 0;
  let high = frames.length - 1;
  let found = -1;
  while (low <= high) {
    const mid = (low + high) >> 1;
    if (frames[mid].frame <= index) {
      found = mid;
      low = mid + 1;
    } else {
      high = mid - 1;
    }
  }
  return found;
}

/** Split a text stream into JSON lines; calls `onLine` with each parsed line as soon as it is whole. */
async function readLines(body, onLine) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  if (buffer.trim()) onLine(JSON.parse(buffer));
}

export class VideoView {
  /** `stage` holds the player; `onShow(frame)` is called with the frame entry drawn (or null). */
  constructor(stage, onShow) {
    this.stage = stage;
    this.onShow = onShow;
    this.frames = []; // the seed `frames` entries received so far, in order
    this.fps = 0;
    this.expected = 0;
    this.shown = -2;
    this.controller = null;
    this.wrap = document.createElement("div");
    this.wrap.className = "video-wrap";
    this.wrap.hidden = true;
    this.video = document.createElement("video");
    this.video.id = "video";
    this.video.controls = true;
    this.video.muted = true;
    this.video.playsInline = true;
    this.overlay = document.createElement("canvas");
    this.overlay.id = "video-overlay";
    this.blank = document.createElement("canvas"); // draw() paints an image first: a transparent one
    this.wrap.append(this.video, this.overlay);
    // laid out here (CSSOM, which the page's style-src allows): the overlay covers the picture and
    // lets clicks through to the player's controls
    Object.assign(this.wrap.style, { position: "relative", width: "100%" });
    Object.assign(this.video.style, { display: "block", width: "100%", height: "auto" });
    Object.assign(this.overlay.style, {
      position: "absolute", left: "0", top: "0", width: "100%", height: "100%", pointerEvents: "none",
      maxWidth: "none", maxHeight: "none", // exactly the picture's box, whatever the stage's canvas rule says
    });
    stage.append(this.wrap);
    this.progress = document.createElement("progress");
    this.progress.id = "video-progress";
    this.progress.max = 1;
    this.progress.value = 0;
    this.progress.hidden = true;
    this.list = document.createElement("ol");
    this.list.id = "video-frames";
    this.list.className = "video-frames";
    this.list.hidden = true;
    Object.assign(this.progress.style, { width: "100%" });
    Object.assign(this.list.style, { maxHeight: "12rem", overflowY: "auto", cursor: "pointer" });
    stage.after(this.progress, this.list);
    const tick = (now, meta) => {
      this.showTime(meta.mediaTime);
      this.video.requestVideoFrameCallback(tick);
    };
    this.video.requestVideoFrameCallback(tick);
    this.video.addEventListener("seeked", () => this.showTime(this.video.currentTime));
  }

  /** Hide the player (an image was chosen) and stop any stream in flight. */
  hide() {
    if (this.controller) this.controller.abort();
    this.wrap.hidden = true;
    this.progress.hidden = true;
    this.list.hidden = true;
    this.video.pause();
    this.video.removeAttribute("src");
    this.video.load();
  }

  /** Play `blob` and stream its predictions from `endpoint`; resolves to null on success or to the
   * failed response ({status, headers, body}) for the caller to report. */
  async run(blob, name, endpoint, fields) {
    if (this.controller) this.controller.abort();
    const controller = new AbortController();
    this.controller = controller;
    this.frames = [];
    this.shown = -2;
    this.list.replaceChildren();
    this.video.src = URL.createObjectURL(blob);
    this.wrap.hidden = false;
    this.list.hidden = false;
    this.progress.hidden = false;
    this.progress.value = 0;
    this.stage.dataset.frames = "0";
    this.stage.dataset.progress = "0";
    const form = new FormData();
    form.append("file", blob, name);
    for (const [key, value] of Object.entries(fields)) form.append(key, String(value));
    let response;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        body: form,
        credentials: "same-origin",
        headers: { Accept: "application/x-ndjson" },
        signal: controller.signal,
      });
    } catch {
      return controller.signal.aborted ? null : { status: 0, headers: new Headers(), body: null };
    }
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      return { status: response.status, headers: response.headers, body };
    }
    this.fps = Number(response.headers.get("X-Video-Fps")) || 30;
    const stride = Number(fields.vid_stride) || 1;
    this.expected = Math.floor(Number(response.headers.get("X-Video-Frames")) / stride);
    let failure = null;
    try {
      await readLines(response.body, (line) => {
        if ("frame" in line) return this.add(line);
        if (line.success === false) failure = { status: 200, headers: response.headers, body: line };
        else this.finish(line);
      });
    } catch {
      if (controller.signal.aborted) return null;
      failure = { status: 0, headers: new Headers(), body: null };
    }
    return failure;
  }

  add(frame) {
    this.frames.push(frame);
    const done = this.frames.length;
    this.progress.value = this.expected > 0 ? Math.min(done / this.expected, 1) : 0;
    this.stage.dataset.frames = String(done);
    this.stage.dataset.progress = this.progress.value.toFixed(3);
    const item = document.createElement("li");
    const counts = {};
    for (const p of frame.predictions) counts[p.class] = (counts[p.class] || 0) + 1;
    let summary = Object.entries(counts).map(([cls, n]) => `${n} ${cls}`).join(", ") || "nothing";
    const ids = frame.predictions.filter((p) => p.track_id !== undefined).map((p) => `#${p.track_id}`);
    if (ids.length) summary += ` (${ids.join(" ")})`;
    item.textContent = `frame ${frame.frame} (${(frame.frame / this.fps).toFixed(2)} s): ${summary}`;
    item.dataset.frame = String(frame.frame);
    item.addEventListener("click", () => {
      this.video.pause();
      this.video.currentTime = (frame.frame + 0.5) / this.fps; // inside the frame, not on its edge
    });
    this.list.append(item);
    if (this.video.paused) this.showTime(this.video.currentTime);
  }

  finish(summary) {
    this.progress.value = 1;
    this.stage.dataset.progress = "1";
    if (summary.video && summary.video.fps) this.fps = summary.video.fps;
  }

  /** Draw the predictions of the frame shown at `mediaTime` (seconds) over the player. */
  showTime(mediaTime) {
    // frame k is shown from k / fps on; the epsilon absorbs a presentation time a hair before it
    const at = frameAt(this.frames, Math.floor(mediaTime * this.fps + 1e-3));
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!width || (at === this.shown && this.overlay.width === width)) return;
    this.shown = at;
    for (const c of [this.overlay, this.blank]) {
      c.width = width;
      c.height = height;
    }
    const frame = at >= 0 ? this.frames[at] : null;
    const result = frame ? { predictions: frame.predictions } : null;
    const history = this.frames.slice(Math.max(at - TRAIL + 1, 0), at + 1).map((f) => f.predictions);
    const drawn = draw(this.overlay, this.blank, result, -1, null, frame ? trailsOf(history) : null);
    this.stage.dataset.shownFrame = frame ? String(frame.frame) : "";
    this.stage.dataset.boxes = String(drawn.boxes);
    this.stage.dataset.ids = drawn.ids.join(",");
    this.stage.dataset.trails = String(drawn.trails);
    for (const item of this.list.children) item.classList.toggle("hot", item.dataset.frame === String(frame && frame.frame));
    this.onShow(frame);
  }
}
