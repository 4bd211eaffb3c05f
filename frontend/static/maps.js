// Semantic and depth answers: their PNG maps (base64, pixel = class id or quantised depth) decoded
// in the browser and recoloured into one overlay canvas at the map's size, drawn over the image.
// The page asks for the default 8-bit depth PNG: one byte per pixel, as the canvas decodes it.
import { classColor } from "/static/draw.js";

export const SEMANTIC_ALPHA = 0.5; // class colours over the image, as Ultralytics' plotter blends them

// Viridis, matplotlib's perceptual colour map, as a degree-6 polynomial (within 4/255 of its table).
const VIRIDIS = [
  [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
  [0.1050930431085774, 1.404613529898575, 1.384590162594685],
  [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
  [-4.634230498983486, -5.799100973351585, -19.33244095627987],
  [6.228269936347081, 14.17993336680509, 56.69055260068105],
  [4.776384997670288, -13.74514537774601, -65.35303263337234],
  [-5.435455855934631, 4.645852612178535, 26.3124352495832],
];

/** [r, g, b] (0-255) of viridis at t in [0, 1]. */
export function viridis(t) {
  const x = Math.min(Math.max(t, 0), 1);
  return [0, 1, 2].map((c) => {
    const v = VIRIDIS.reduceRight((sum, k) => sum * x + k[c], 0);
    return Math.round(Math.min(Math.max(v, 0), 1) * 255);
  });
}

const rgbOf = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
export const metres = (d) => `${d.toFixed(2)} m`;

/** The map of a semantic or depth answer, decoded and recoloured; null for other tasks. */
export async function decodeMap(result) {
  const obj = result.semantic_mask || result.depth;
  if (!obj) return null;
  const binary = atob(obj.data);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  const options = { colorSpaceConversion: "none", premultiplyAlpha: "none" }; // the stored values, untouched
  const bitmap = await createImageBitmap(new Blob([bytes], { type: "image/png" }), options);
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const image = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const map = result.depth
    ? { kind: "depth", alpha: 1, step: obj.max / 255, min: obj.min, max: obj.max }
    : { kind: "semantic", alpha: SEMANTIC_ALPHA, names: classNames(result.predictions) };
  const lut = map.kind === "depth" ? depthColors(map) : classColors();
  map.values = recolor(image.data, lut); // the grey values, kept for hovering
  ctx.putImageData(image, 0, 0);
  Object.assign(map, { canvas, width: canvas.width, height: canvas.height });
  return map;
}

function classNames(predictions) {
  return new Map(predictions.map((p) => [p.class_id, p.class]));
}

/** RGBA for each grey value 0-255: the class's palette colour. */
function classColors() {
  const lut = new Uint8ClampedArray(256 * 4);
  for (let v = 0; v < 256; v += 1) lut.set([...rgbOf(classColor(v)), 255], v * 4);
  return lut;
}

/** RGBA for each grey value 0-255: viridis from min to max; 0 (no depth) transparent. */
function depthColors({ step, min, max }) {
  const lut = new Uint8ClampedArray(256 * 4);
  const span = max - min || 1;
  for (let v = 1; v < 256; v += 1) lut.set([...viridis((v * step - min) / span), 255], v * 4);
  return lut;
}

/** Replace each grey pixel of `rgba` by its colour in `lut`; returns the grey values. */
function recolor(rgba, lut) {
  const values = new Uint8Array(rgba.length / 4);
  for (let i = 0, j = 0; i < values.length; i += 1, j += 4) {
    const k = rgba[j] * 4;
    values[i] = rgba[j];
    rgba[j] = lut[k];
    rgba[j + 1] = lut[k + 1];
    rgba[j + 2] = lut[k + 2];
    rgba[j + 3] = lut[k + 3];
  }
  return values;
}

/** The grey value under image point (x, y) of an image `width` x `height` the map covers. */
export function valueAt(map, x, y, width, height) {
  const col = Math.min(Math.max(Math.floor((x * map.width) / width), 0), map.width - 1);
  const row = Math.min(Math.max(Math.floor((y * map.height) / height), 0), map.height - 1);
  return map.values[row * map.width + col];
}

/** What hovering a grey value says: the class name, or the depth in metres. */
export function describe(map, value) {
  if (map.kind === "depth") return value ? metres(value * map.step) : "no depth";
  return map.names.get(value) || `class ${value}`;
}

/** Paint the colour scale from min (left) to max (right) on a small canvas. */
export function drawScale(canvas) {
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(canvas.width, 1);
  for (let x = 0; x < canvas.width; x += 1) image.data.set([...viridis(x / (canvas.width - 1)), 255], x * 4);
  for (let y = 0; y < canvas.height; y += 1) ctx.putImageData(image, 0, y);
}
