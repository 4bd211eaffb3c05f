// Drawing predictions over an image on a canvas, the way Ultralytics' plotter does:
// class colours from its palette, labels "class 0.87", translucent masks, the COCO pose skeleton.
// Tracked predictions (with a `track_id`) take their id's colour and a "#id" label, and may carry
// a trail: the centres of their last boxes, fading with age.
// Pure functions of (canvas, image, result): the same drawing is shown and downloaded.

export const PALETTE = [
  "042AFF", "0BDBEB", "F3F3F3", "00DFB7", "111F68", "FF6FDD", "FF444F", "CCED00", "00F344", "BD00FF",
  "00B4FF", "DD00BA", "00FFFF", "26C000", "01FFB3", "7D24FF", "7B0068", "FF1B6C", "FC6D2F", "A2FF0B",
];
// Ultralytics writes dark text (#111F68) on these light colours, white on the others.
const DARK_TEXT = new Set(["0BDBEB", "F3F3F3", "00DFB7", "FF6FDD", "CCED00", "00F344", "00FFFF", "01FFB3", "A2FF0B"]);
const POSE_PALETTE = [
  [255, 128, 0], [255, 153, 51], [255, 178, 102], [230, 230, 0], [255, 153, 255], [153, 204, 255],
  [255, 102, 255], [255, 51, 255], [102, 178, 255], [51, 153, 255], [255, 153, 153], [255, 102, 102],
  [255, 51, 51], [153, 255, 153], [102, 255, 102], [51, 255, 51], [0, 255, 0], [0, 0, 255], [255, 0, 0],
  [255, 255, 255],
];
// COCO keypoints, 1-based pairs as in Ultralytics' Annotator.
const SKELETON = [
  [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
  [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
];
const LIMB_COLOR = [9, 9, 9, 9, 7, 7, 7, 0, 0, 0, 0, 0, 16, 16, 16, 16, 16, 16, 16].map(rgb);
const KPT_COLOR = [16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9, 9, 9].map(rgb);
export const KPT_CONF = 0.5; // keypoints below this confidence are not drawn (as in Ultralytics)

function rgb(i) {
  const [r, g, b] = POSE_PALETTE[i];
  return `rgb(${r}, ${g}, ${b})`;
}

const hexOf = (classId) => PALETTE[((classId % PALETTE.length) + PALETTE.length) % PALETTE.length];
export const classColor = (classId) => `#${hexOf(classId)}`;
export const textColor = (classId) => (DARK_TEXT.has(hexOf(classId)) ? "#111F68" : "#FFFFFF");

/** The task a result comes from, read from its shape (falls back when there is nothing to read). */
export function taskOf(result, fallback = "detect") {
  if (result.semantic_mask) return "semantic";
  if (result.depth) return "depth";
  const first = result.predictions[0];
  if (!first) return fallback;
  if (!first.box) return "classify";
  if (first.keypoints) return "pose";
  if (first.segments) return "segment";
  if ("x4" in first.box) return "obb";
  return "detect";
}

/** Corners of a prediction's box, clockwise: four points for both axis-aligned and oriented boxes. */
export function corners(box) {
  if ("x4" in box) return [1, 2, 3, 4].map((i) => [box[`x${i}`], box[`y${i}`]]);
  return [[box.x1, box.y1], [box.x2, box.y1], [box.x2, box.y2], [box.x1, box.y2]];
}

/** Index of the smallest box containing (x, y), or -1: what the pointer is over. */
export function hitTest(predictions, x, y) {
  let best = -1;
  let bestArea = Infinity;
  predictions.forEach((p, i) => {
    if (!p.box) return;
    const xs = corners(p.box).map((c) => c[0]);
    const ys = corners(p.box).map((c) => c[1]);
    const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
    const area = (x1 - x0) * (y1 - y0);
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && area < bestArea) [best, bestArea] = [i, area];
  });
  return best;
}

function polygon(ctx, points) {
  ctx.beginPath();
  points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
}

/** The palette index a prediction is coloured by: its track id when tracked, else its class. */
export const colourKey = (p) => (p.track_id === undefined || p.track_id === null ? p.class_id : p.track_id);
const tracked = (p) => p.track_id !== undefined && p.track_id !== null;

/** Centre of a prediction's box (the mean of its corners; an oriented box's too). */
export function centre(box) {
  const points = corners(box);
  return [points.reduce((s, c) => s + c[0], 0) / 4, points.reduce((s, c) => s + c[1], 0) / 4];
}

export const TRAIL = 30; // frames a trail spans

/** Trails from `history` (the predictions of consecutive frames, oldest first, the shown one last):
 * track id -> the centres of its boxes in those frames, oldest first. */
export function trailsOf(history) {
  const trails = new Map();
  for (const predictions of history.slice(-TRAIL)) {
    for (const p of predictions || []) {
      if (!tracked(p) || !p.box) continue;
      if (!trails.has(p.track_id)) trails.set(p.track_id, []);
      trails.get(p.track_id).push(centre(p.box));
    }
  }
  return trails;
}

function drawTrail(ctx, points, colour, lw) {
  ctx.strokeStyle = colour;
  ctx.lineWidth = lw;
  ctx.lineCap = "round";
  for (let j = 1; j < points.length; j++) {
    ctx.globalAlpha = 0.15 + (0.85 * j) / (points.length - 1); // the newest segment opaque
    ctx.beginPath();
    ctx.moveTo(...points[j - 1]);
    ctx.lineTo(...points[j]);
    ctx.stroke();
  }
  ctx.globalAlpha = 1;
  ctx.lineCap = "butt";
}

function label(ctx, text, x, y, key, lw) {
  const size = Math.max(Math.round(lw * 5), 12);
  ctx.font = `${size}px system-ui, sans-serif`;
  const pad = Math.ceil(size * 0.25);
  const w = ctx.measureText(text).width + 2 * pad;
  const h = size + 2 * pad;
  const top = y - h >= 0 ? y - h : Math.max(y, 0); // above the box when it fits, inside otherwise
  const left = Math.min(Math.max(x - lw / 2, 0), Math.max(ctx.canvas.width - w, 0));
  ctx.fillStyle = classColor(key);
  ctx.fillRect(left, top, w, h);
  ctx.fillStyle = textColor(key);
  ctx.textBaseline = "top";
  ctx.fillText(text, left + pad, top + pad);
}

/**
 * Draw `image` and `result` on `canvas` (sized to the image's natural size).
 * Returns what was drawn: {boxes, masks, obb, keypoints, limbs, labels, overlays, ids, trails}
 * (`ids`: the track ids labelled, in the order of the predictions; `trails`: trails drawn).
 * `highlight` is the index of a prediction to emphasise (the others fade), or -1.
 * `map` is a semantic or depth answer's decoded map (maps.js): drawn over the whole image.
 * `trails` (from `trailsOf`) adds the trail of each tracked prediction drawn.
 */
export function draw(canvas, image, result, highlight = -1, map = null, trails = null) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  ctx.drawImage(image, 0, 0, width, height);
  const drawn = { boxes: 0, masks: 0, obb: 0, keypoints: 0, limbs: 0, labels: 0, overlays: 0, ids: [], trails: 0 };
  if (!result) return drawn;
  if (result.semantic_mask || result.depth) {
    if (!map) return drawn;
    ctx.globalAlpha = map.alpha;
    ctx.imageSmoothingEnabled = false; // a class id never blends into its neighbour's colour
    ctx.drawImage(map.canvas, 0, 0, width, height);
    ctx.globalAlpha = 1;
    drawn.overlays = 1;
    return drawn;
  }
  const preds = result.predictions;
  const lw = Math.max(Math.round(((width + height) / 2) * 0.003), 2);
  if (preds.length && !preds[0].box) {
    drawTopClasses(ctx, preds, lw);
    drawn.labels = preds.length;
    return drawn;
  }
  const alpha = (i) => (highlight < 0 || highlight === i ? 1 : 0.3);
  preds.forEach((p, i) => {
    if (!p.segments || p.segments.length < 3) return;
    ctx.globalAlpha = alpha(i) * (highlight === i ? 0.6 : 0.4);
    ctx.fillStyle = classColor(colourKey(p));
    polygon(ctx, p.segments);
    ctx.fill();
    drawn.masks += 1;
  });
  if (trails) {
    preds.forEach((p) => {
      const points = tracked(p) && trails.get(p.track_id);
      if (!points || points.length < 2) return;
      drawTrail(ctx, points, classColor(p.track_id), Math.max(Math.round(lw * 0.75), 2));
      drawn.trails += 1;
    });
  }
  preds.forEach((p, i) => {
    ctx.globalAlpha = alpha(i);
    ctx.strokeStyle = classColor(colourKey(p));
    ctx.lineWidth = highlight === i ? lw * 2 : lw;
    ctx.lineJoin = "miter";
    polygon(ctx, corners(p.box));
    ctx.stroke();
    if ("x4" in p.box) drawn.obb += 1;
    else drawn.boxes += 1;
    const text = `${tracked(p) ? `#${p.track_id} ` : ""}${p.class} ${p.confidence.toFixed(2)}`;
    label(ctx, text, p.box.x1, p.box.y1, colourKey(p), lw);
    drawn.labels += 1;
    if (tracked(p)) drawn.ids.push(p.track_id);
  });
  preds.forEach((p, i) => {
    if (!p.keypoints) return;
    ctx.globalAlpha = alpha(i);
    const kpts = p.keypoints;
    const coco = kpts.length === 17;
    const seen = (k) => k.conf === undefined || k.conf >= KPT_CONF;
    if (coco) {
      ctx.lineWidth = Math.ceil(lw / 2);
      SKELETON.forEach(([a, b], j) => {
        const [ka, kb] = [kpts[a - 1], kpts[b - 1]];
        if (!seen(ka) || !seen(kb)) return;
        ctx.strokeStyle = LIMB_COLOR[j];
        ctx.beginPath();
        ctx.moveTo(ka.x, ka.y);
        ctx.lineTo(kb.x, kb.y);
        ctx.stroke();
        drawn.limbs += 1;
      });
    }
    kpts.forEach((k, j) => {
      if (!seen(k)) return;
      ctx.fillStyle = coco ? KPT_COLOR[j] : classColor(j);
      ctx.beginPath();
      ctx.arc(k.x, k.y, lw + 1, 0, 2 * Math.PI);
      ctx.fill();
      drawn.keypoints += 1;
    });
  });
  ctx.globalAlpha = 1;
  return drawn;
}

function drawTopClasses(ctx, preds, lw) {
  const size = Math.max(Math.round(lw * 6), 14);
  ctx.font = `${size}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  preds.forEach((p, i) => {
    const text = `${p.class} ${p.confidence.toFixed(2)}`;
    const y = lw * 4 + i * size * 1.4;
    ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
    ctx.fillRect(lw * 4 - 4, y - 2, ctx.measureText(text).width + 8, size + 4);
    ctx.fillStyle = "#FFFFFF";
    ctx.fillText(text, lw * 4, y);
  });
}
