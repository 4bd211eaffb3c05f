// The Webcam source of the Test tab: the browser's camera plays in a <video>; its frames are
// grabbed into a canvas, encoded as JPEG and sent one after the other (the next only once the
// previous answer is in: nothing queues, and no picture is sent twice), and each answer is drawn
// with the picture it was made from on a canvas laid over the camera: boxes never lag behind the
// picture they belong to. For a model that finds boxes, with Track on, the frames go to a
// tracking session (`track_session=<id>`, a random id made here) that keeps the tracker between
// requests: boxes carry ids, drawn with their trails. A session is bound to the options it started
// with (the server answers 409 to others): a slider moved ends it and the next frame starts a new
// one. Stopping the camera ends the session (DELETE), and so does leaving the page (a keepalive
// request). Capture hands the current frame over as a still image.
import { api } from "/static/common.js";
import { TRAIL, draw, trailsOf } from "/static/draw.js";
import { decodeMap } from "/static/maps.js";

const JPEG_QUALITY = 0.9;
const FRAME_WAIT_MS = 500; // the longest wait for a new picture (a camera that stalls sends its last)

/** A random session id: 24 hex digits from the browser's cryptographic generator. */
export function sessionId() {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `cam-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

const round = (v) => Math.round(v * 10) / 10;

export class WebcamView {
  /**
   * `stage` holds the camera; `status` is the element the session, frame and answer time go in.
   * `onAnswer(result, roundTrip)` is called with each answer drawn; `onFailure(response)` with the
   * failed answer that stopped the loop (the camera is stopped by then).
   */
  constructor(stage, status, onAnswer, onFailure) {
    this.stage = stage;
    this.status = status;
    this.onAnswer = onAnswer;
    this.onFailure = onFailure;
    this.live = null; // {stream, session, history, frames, sent, inFlight}: the running camera
    this.starts = 0; // counts start() and stop() calls: a camera opened after a stop is closed again
    this.wrap = document.createElement("div");
    this.wrap.className = "video-wrap";
    this.wrap.hidden = true;
    this.video = document.createElement("video");
    this.video.id = "webcam";
    this.video.muted = true;
    this.video.playsInline = true;
    this.overlay = document.createElement("canvas");
    this.overlay.id = "webcam-overlay";
    this.grabber = document.createElement("canvas");
    this.wrap.append(this.video, this.overlay);
    Object.assign(this.wrap.style, { position: "relative", width: "100%" });
    Object.assign(this.video.style, { display: "block", width: "100%", height: "auto" });
    Object.assign(this.overlay.style, {
      position: "absolute", left: "0", top: "0", width: "100%", height: "100%", pointerEvents: "none",
      maxWidth: "none", maxHeight: "none", // exactly the picture's box, whatever the stage's canvas rule says
    });
    stage.append(this.wrap);
    this.pictures = 0; // pictures the camera has shown (requestVideoFrameCallback's count)
    this.waiting = null; // resolves nextPicture()'s wait
    const tick = (now, meta) => {
      this.pictures = meta.presentedFrames;
      if (this.waiting) this.waiting();
      this.video.requestVideoFrameCallback(tick);
    };
    this.video.requestVideoFrameCallback(tick);
    // leaving the page ends the session; the request outlives the page (keepalive)
    addEventListener("pagehide", () => this.stop({ wait: false }));
  }

  get running() {
    return this.live !== null;
  }

  /** Open the camera and start predicting. `fields()` gives the form fields of each frame (read
   * per frame: a slider moved applies to the next one, in a new session); `track` asks for
   * tracking sessions.
   * Resolves to an error message, or "" once the camera runs. */
  async start(endpoint, fields, track) {
    await this.stop();
    const start = ++this.starts;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      return "This browser cannot open a camera here (it needs HTTPS or localhost).";
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      if (error && error.name === "NotAllowedError") return "The camera was not allowed. Allow it to use the webcam.";
      return `No camera could be opened (${error && error.name}).`;
    }
    if (start !== this.starts) {
      for (const t of stream.getTracks()) t.stop(); // stopped while the browser was asking
      return "";
    }
    const live = { stream, session: track ? sessionId() : "", bound: "", history: [], frames: 0, sent: 0, inFlight: null };
    this.live = live;
    this.video.srcObject = stream;
    this.wrap.hidden = false;
    for (const key of ["camEnded", "camStatus", "camTrack", "camMs", "camBoxes"]) delete this.stage.dataset[key];
    this.stage.dataset.cam = "live";
    this.stage.dataset.camSession = live.session;
    this.stage.dataset.camFrame = "0";
    this.stage.dataset.camAnswers = "0";
    this.stage.dataset.camIds = "";
    this.stage.dataset.camTracks = "[]";
    this.stage.dataset.camTrails = "0";
    this.showStatus(null);
    try {
      await this.video.play();
    } catch {
      // play() is refused only when the stream ended meanwhile (stopped): nothing to do
    }
    this.loop(live, endpoint, fields);
    return "";
  }

  async loop(live, endpoint, fields) {
    while (this.live === live) {
      if (live.frames) await this.nextPicture(live.sent);
      live.sent = this.pictures;
      const blob = await this.grab();
      if (this.live !== live) return;
      if (!blob) {
        await new Promise((resolve) => setTimeout(resolve, 50)); // no picture yet
        continue;
      }
      const sent = fields();
      if (live.session && live.frames && JSON.stringify(sent) !== live.bound) await this.renew(live);
      if (this.live !== live) return;
      live.bound = JSON.stringify(sent);
      const form = new FormData();
      form.append("file", blob, "webcam.jpg");
      for (const [name, value] of Object.entries(sent)) form.append(name, String(value));
      if (live.session) form.append("track_session", live.session);
      const started = performance.now();
      live.inFlight = api(endpoint, { method: "POST", body: form });
      const response = await live.inFlight;
      live.inFlight = null;
      const roundTrip = performance.now() - started;
      if (this.live !== live) return; // stopped while the frame was out: its answer is not drawn
      if (!response.ok) {
        // a session ended by the server (410) or an unknown one needs no DELETE
        await this.stop({ forget: response.status === 410 || response.status === 404 || response.status === 401 });
        this.stage.dataset.cam = "error";
        this.stage.dataset.camStatus = String(response.status);
        this.onFailure(response);
        return;
      }
      live.frames += 1;
      const frame = Number(response.headers.get("Trident-Track-Frame")) || live.frames;
      live.history.push(response.body.predictions);
      if (live.history.length > TRAIL) live.history.shift();
      const map = await decodeMap(response.body).catch(() => null); // semantic and depth
      if (this.live !== live) return;
      this.show(response.body, map, frame, roundTrip, response.headers.get("Trident-Track-Session-Evicted"));
    }
  }

  /** Until the camera shows a picture after the `sent` one (at most FRAME_WAIT_MS). */
  nextPicture(sent) {
    if (this.pictures > sent) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiting = null;
        resolve();
      };
      const timer = setTimeout(done, FRAME_WAIT_MS);
      this.waiting = done;
    });
  }

  /** End the session (its options changed) and go on in a new one: ids and trails start again. */
  async renew(live) {
    await this.end(live.session);
    live.session = sessionId();
    live.history = [];
    live.frames = 0;
    this.stage.dataset.camSession = live.session;
  }

  /** DELETE a session (keepalive: it outlives the page); the answer's status. */
  async end(session) {
    const path = `/api/track-sessions/${encodeURIComponent(session)}`;
    const response = await api(path, { method: "DELETE", keepalive: true });
    this.stage.dataset.camEnded = String(response.status);
    return response.status;
  }

  /** The camera's current picture as a JPEG blob (null before the first frame arrives). */
  grab() {
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!width || !height) return Promise.resolve(null);
    this.grabber.width = width;
    this.grabber.height = height;
    this.grabber.getContext("2d").drawImage(this.video, 0, 0, width, height);
    return new Promise((resolve) => this.grabber.toBlob(resolve, "image/jpeg", JPEG_QUALITY));
  }

  show(result, map, frame, roundTrip, evicted) {
    const live = this.live;
    this.overlay.width = this.grabber.width; // the picture sent, still in the grabber
    this.overlay.height = this.grabber.height;
    const drawn = draw(this.overlay, this.grabber, result, -1, map, live.session ? trailsOf(live.history) : null);
    const tracks = result.predictions
      .filter((p) => p.track_id !== undefined && p.box && "x1" in p.box && !("x4" in p.box))
      .map((p) => [p.track_id, round(p.box.x1), round(p.box.y1), round(p.box.x2), round(p.box.y2)]);
    Object.assign(this.stage.dataset, {
      camFrame: String(frame),
      camAnswers: String(live.frames),
      camBoxes: String(drawn.boxes + drawn.obb),
      camIds: drawn.ids.join(","),
      camTracks: JSON.stringify(tracks),
      camTrails: String(drawn.trails),
      camMs: roundTrip.toFixed(0),
    });
    this.showStatus({ frame, roundTrip, evicted });
    this.onAnswer(result, roundTrip);
  }

  showStatus(answer) {
    const live = this.live;
    if (!live) {
      this.status.textContent = "";
      return;
    }
    const parts = [live.session ? `Tracking session ${live.session}` : "Predicting frame by frame"];
    if (answer) {
      parts.push(`frame ${answer.frame}`, `answered in ${answer.roundTrip.toFixed(0)} ms`);
      if (answer.evicted) parts.push(`(ended your older session ${answer.evicted})`);
    } else {
      parts.push("starting…");
    }
    this.status.textContent = parts.join(" · ");
  }

  /** The current picture, then the camera stopped: a still for the image view. */
  async capture() {
    const blob = await this.grab();
    await this.stop();
    return blob;
  }

  /**
   * Stop the camera and end its session. `wait`: let a frame still out come back first, so that
   * the session is ended after its last frame, not re-opened by it (false when the page goes).
   * `forget`: the session is already gone on the server (no DELETE).
   */
  async stop({ wait = true, forget = false } = {}) {
    this.starts += 1;
    const live = this.live;
    if (!live) return;
    this.live = null;
    for (const track of live.stream.getTracks()) track.stop();
    this.video.pause();
    this.video.srcObject = null;
    this.wrap.hidden = true;
    this.stage.dataset.cam = "stopped";
    this.stage.dataset.camTrack = live.stream.getVideoTracks().map((t) => t.readyState).join(",");
    this.status.textContent = "";
    if (!live.session || forget) return;
    if (wait && live.inFlight) await live.inFlight;
    await this.end(live.session);
  }
}
