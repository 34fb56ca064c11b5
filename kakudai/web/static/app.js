// kakudai's local page: pick an image, send it to /api/jobs, follow the job, compare, download.
// Plain script, no build step. Everything the form offers comes from GET /api/models.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,        // GET /api/models
  file: null,        // the chosen File
  fileUrl: null,     // object URL of the original
  fileSize: null,    // [width, height] as the browser decoded it
  resultUrl: null,   // object URL of the result PNG
  job: null,         // current job id
  xhr: null,         // current upload or download
  cancelled: false,
};

// ------------------------------------------------------------------ messages
function showError(message) {
  const e = $("error");
  e.textContent = message;
  e.hidden = !message;
}

function setProgress(text, fraction) {
  $("progress-box").hidden = text === null;
  $("status").textContent = text || "";
  const p = $("progress");
  if (fraction === null || fraction === undefined) p.removeAttribute("value");  // indeterminate
  else p.value = Math.max(0, Math.min(1, fraction));
}

function busy(on) {
  $("go").disabled = on || !state.file;
  $("cancel").hidden = !on;
  $("file").disabled = on;
}

const fmtBytes = (n) => n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${(n / 1048576).toFixed(1)} MB`;
const fmtScale = (s) => String(Math.round(s * 1000) / 1000);

// ------------------------------------------------------------------ the title
// The Japanese word in the title is shown only where a font has its glyphs, never as empty
// boxes. document.fonts.check() cannot tell: it answers whether web fonts still have to load,
// and is true for any installed font list. So each character is drawn on a canvas in the
// word's own font stack: missing glyphs all come out as the same box (Chromium), while real
// kanji differ and are a full em wide (the width check is for boxes that show the code point,
// which differ per character).
function hasGlyphs(el) {
  const size = 32, canvas = document.createElement("canvas");
  canvas.width = canvas.height = 2 * size;
  const g = canvas.getContext("2d", { willReadFrequently: true });
  if (!g) return false;
  g.font = `${size}px ${getComputedStyle(el).fontFamily}`;
  g.textBaseline = "top";
  const drawn = Array.from(el.textContent.trim(), (ch) => {
    g.clearRect(0, 0, canvas.width, canvas.height);
    g.fillText(ch, size / 2, size / 2);
    return { width: g.measureText(ch).width, pixels: g.getImageData(0, 0, canvas.width, canvas.height).data.join() };
  });
  return drawn.length > 0 && drawn.every((d) => d.width >= 0.9 * size) &&
    new Set(drawn.map((d) => d.pixels)).size === drawn.length;
}

function showTitleWord() {
  const word = $("title-ja");
  if (word) word.hidden = !hasGlyphs(word);
}

// ------------------------------------------------------------------ the form, from /api/models
async function loadOptions() {
  let info;
  try {
    const r = await fetch("/api/models", { cache: "no-store" });
    info = await r.json();
    if (!r.ok) throw new Error(info.error || r.statusText);
  } catch (err) {
    showError(`Cannot reach the kakudai server: ${err.message}`);
    return;
  }
  state.info = info;
  $("version").textContent = `kakudai ${info.version}`;
  $("file").accept = info.limits.accept;
  $("file-info").textContent = `${info.limits.formats.join(", ")} · up to ${fmtBytes(info.limits.max_upload_bytes)}` +
    ` and ${(info.limits.max_pixels / 1e6).toFixed(0)} megapixels`;

  const model = $("model");
  model.innerHTML = "";
  for (const m of info.models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.label;
    model.appendChild(o);
  }
  model.value = info.default_model;

  const scale = $("scale");
  scale.min = info.scale.min;
  scale.max = info.scale.max;
  scale.value = info.scale.default;

  const dn = $("denoise");
  for (const level of info.denoise.levels) {
    const o = document.createElement("option");
    o.value = String(level);
    o.textContent = ["0 (light JPEG cleanup)", "1", "2", "3 (strong)"][level];
    dn.appendChild(o);
  }
  updateModel();
}

function currentModel() {
  return state.info ? state.info.models.find((m) => m.name === $("model").value) : null;
}

function updateModel() {
  const m = currentModel();
  if (!m) return;
  const presets = $("presets");
  presets.innerHTML = "";
  const scales = m.scales || state.info.scale.presets;
  for (const s of scales) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = `×${fmtScale(s)}`;
    b.dataset.scale = s;
    b.addEventListener("click", () => { $("scale").value = s; updateScaleNote(); });
    presets.appendChild(b);
  }
  const scale = $("scale");
  if (m.scales && !m.scales.includes(Number(scale.value))) scale.value = m.scales[0];
  // An alias names the model it runs at each scale: "bicubic at ×2, ×3, ×4".
  const byModel = {};
  for (const [s, n] of Object.entries(m.resolves || {})) (byModel[n] = byModel[n] || []).push(`×${s}`);
  $("model-note").textContent = Object.keys(byModel).length
    ? "runs " + Object.entries(byModel).map(([n, ss]) => `${n} at ${ss.join(", ")}`).join("; ")
    : m.scales ? `trained for ×${m.scales.map(fmtScale).join(", ×")}` : "";
  updateScaleNote();
}

function sizeMode() {
  return $("mode-size").checked ? "size" : "scale";
}

// The result size the request asks for, or an error message.
function plannedOutput() {
  const info = state.info, m = currentModel();
  if (!info || !m) return { error: "the server's options are not loaded" };
  const [w, h] = state.fileSize || [null, null];
  if (sizeMode() === "size") {
    const tw = Number($("width").value) || null, th = Number($("height").value) || null;
    if (!tw && !th) return { error: "enter a target width or height" };
    if (!w) return { size: null };
    // Fit inside the box, keeping the aspect ratio (one side alone fixes that side).
    const sx = tw ? tw / w : Infinity, sy = th ? th / h : Infinity;
    return { size: sx <= sy ? [tw, Math.max(1, Math.round(h * sx))] : [Math.max(1, Math.round(w * sy)), th] };
  }
  const s = Number($("scale").value);
  if (!Number.isFinite(s) || s < info.scale.min || s > info.scale.max)
    return { error: `scale must be between ${info.scale.min} and ${info.scale.max}` };
  return { scale: s, size: w ? [Math.ceil(w * s - 1e-9), Math.ceil(h * s - 1e-9)] : null };
}

function updateScaleNote() {
  for (const b of $("presets").children) b.classList.toggle("active", Number(b.dataset.scale) === Number($("scale").value));
  const plan = plannedOutput();
  const note = $("scale-note");
  if (plan.error) { note.textContent = plan.error; return; }
  if (plan.size && state.fileSize) {
    const px = plan.size[0] * plan.size[1];
    note.textContent = `${state.fileSize[0]}×${state.fileSize[1]} → ${plan.size[0]}×${plan.size[1]} px` +
      (px > state.info.limits.max_output_pixels ? " — over the server's output limit" : "");
  } else note.textContent = "";
}

// ------------------------------------------------------------------ choosing a file
function chooseFile(file) {
  showError("");
  if (!file) return;
  const lim = state.info && state.info.limits;
  if (lim && file.size > lim.max_upload_bytes) {
    showError(`${file.name} is ${fmtBytes(file.size)}; the limit is ${fmtBytes(lim.max_upload_bytes)}.`);
    return;
  }
  if (state.fileUrl) URL.revokeObjectURL(state.fileUrl);
  state.file = file;
  state.fileUrl = URL.createObjectURL(file);
  state.fileSize = null;
  const info = $("file-info");
  info.textContent = `${file.name} · ${fmtBytes(file.size)}`;
  const previous = $("drop").querySelector("img.thumb");
  if (previous) previous.remove();
  const img = new Image();
  img.className = "thumb";
  img.alt = "";
  img.onload = () => {
    $("drop").insertBefore(img, $("drop").querySelector(".drop-title"));
    state.fileSize = [img.naturalWidth, img.naturalHeight];
    info.textContent = `${file.name} · ${img.naturalWidth}×${img.naturalHeight} · ${fmtBytes(file.size)}`;
    if (lim && img.naturalWidth * img.naturalHeight > lim.max_pixels)
      showError(`${file.name} has ${(img.naturalWidth * img.naturalHeight / 1e6).toFixed(1)} megapixels; ` +
        `the limit is ${(lim.max_pixels / 1e6).toFixed(1)}.`);
    updateScaleNote();
  };
  // The browser may not display every format the server reads (TIFF); the server decides.
  img.onerror = () => { updateScaleNote(); };
  img.src = state.fileUrl;
  busy(false);
}

function setupInput() {
  const drop = $("drop");
  $("file").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "dragend"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) chooseFile(e.dataTransfer.files[0]);
  });
  // A file dropped beside the zone must not make the browser navigate away.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData || {}).items || []].find((i) => i.kind === "file");
    if (item && !$("file").disabled) chooseFile(item.getAsFile());
  });
  $("model").addEventListener("change", updateModel);
  $("scale").addEventListener("input", updateScaleNote);
  for (const id of ["width", "height"]) $(id).addEventListener("input", updateScaleNote);
  for (const id of ["mode-scale", "mode-size"]) $(id).addEventListener("change", () => {
    $("scale-row").hidden = sizeMode() !== "scale";
    $("size-row").hidden = sizeMode() !== "size";
    updateScaleNote();
  });
  $("options").addEventListener("submit", (e) => { e.preventDefault(); start(); });
  $("cancel").addEventListener("click", cancel);
}

// ------------------------------------------------------------------ the job
function request(method, url, { body = null, responseType = "json", onUpload = null, onDownload = null } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    state.xhr = xhr;
    xhr.open(method, url);
    xhr.responseType = responseType;
    if (onUpload) xhr.upload.onprogress = (e) => e.lengthComputable && onUpload(e.loaded / e.total);
    if (onDownload) xhr.onprogress = (e) => onDownload(e.lengthComputable ? e.loaded / e.total : null);
    xhr.onload = async () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve(xhr.response);
      let msg = `HTTP ${xhr.status}`;
      try {
        const body = responseType === "blob" ? JSON.parse(await xhr.response.text()) : xhr.response;
        if (body && body.error) msg = body.error;
      } catch (_) { /* not JSON */ }
      reject(new Error(msg));
    };
    xhr.onerror = () => reject(new Error("the connection to the kakudai server failed"));
    xhr.onabort = () => reject(new Error("cancelled"));
    xhr.send(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function start() {
  if (!state.file || !state.info) return;
  const plan = plannedOutput();
  if (plan.error) { showError(plan.error); return; }
  showError("");
  state.cancelled = false;
  busy(true);
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  form.append("model", $("model").value);
  if (sizeMode() === "size") {
    if ($("width").value) form.append("width", $("width").value);
    if ($("height").value) form.append("height", $("height").value);
  } else form.append("scale", String(plan.scale));
  form.append("denoise", $("denoise").value);
  form.append("style", $("style").value);
  const t0 = performance.now();
  try {
    setProgress("Uploading… 0%", 0);
    const job = await request("POST", "/api/jobs", {
      body: form, onUpload: (f) => setProgress(`Uploading… ${Math.round(f * 100)}%`, f) });
    state.job = job.id;
    let st = job;
    while (st.state === "queued" || st.state === "running") {
      if (st.state === "queued")
        setProgress(st.position > 0 ? `Waiting: ${st.position} job${st.position > 1 ? "s" : ""} ahead` : "Starting…", null);
      else
        setProgress(`Upscaling… ${st.progress != null ? Math.round(st.progress * 100) + "% · " : ""}${st.elapsed.toFixed(1)} s`,
          st.progress);
      await sleep(st.state === "queued" ? 700 : 350);
      if (state.cancelled) throw new Error("cancelled");
      st = await request("GET", `/api/jobs/${job.id}`);
    }
    if (st.state !== "done") throw new Error(st.error || `the job ended as ${st.state}`);
    setProgress("Receiving the result…", null);
    const blob = await request("GET", `/api/jobs/${job.id}/result`, {
      responseType: "blob", onDownload: (f) => setProgress("Receiving the result…", f) });
    showResult(blob, st, (performance.now() - t0) / 1000, plan);
    setProgress(null);
  } catch (err) {
    setProgress(null);
    showError(err.message === "cancelled" ? "Cancelled." : `Upscaling failed: ${err.message}`);
  } finally {
    if (state.job) fetch(`/api/jobs/${state.job}`, { method: "DELETE" }).catch(() => {});
    state.job = null;
    state.xhr = null;
    busy(false);
  }
}

function cancel() {
  state.cancelled = true;
  if (state.xhr) state.xhr.abort();
}

// ------------------------------------------------------------------ result and comparison
function showResult(blob, st, seconds, plan) {
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  state.resultSize = [st.width, st.height];
  $("after").src = state.resultUrl;
  $("before").src = state.fileUrl;
  const stem = state.file.name.replace(/\.[^.]*$/, "") || "image";
  const tag = plan.scale ? `x${fmtScale(plan.scale)}` : `${st.width}x${st.height}`;
  const dl = $("download");
  dl.href = state.resultUrl;
  dl.download = `${stem}_${tag}.png`;
  const src = state.fileSize ? `${state.fileSize[0]}×${state.fileSize[1]} → ` : "";
  $("result-info").textContent = `${src}${st.width}×${st.height} · ${st.model} · ` +
    `${st.seconds.toFixed(2)} s on the server (${seconds.toFixed(1)} s in all) · ${fmtBytes(blob.size)}`;
  $("result").hidden = false;
  layoutCompare();
  setSplit(50);
}

function layoutCompare() {
  if (!state.resultSize) return;
  const [w, h] = state.resultSize;
  const zoom = $("zoom").value;
  let k;
  if (zoom === "fit") {
    const vp = $("viewport");
    const availW = vp.clientWidth, availH = Math.max(240, window.innerHeight * 0.78);
    k = Math.min(availW / w, availH / h);
  } else k = Number(zoom);
  const c = $("compare");
  c.style.width = `${Math.max(1, Math.round(w * k))}px`;
  c.style.height = `${Math.max(1, Math.round(h * k))}px`;
  // Past 100% show the result's own pixels too, so both halves are magnified alike.
  $("after").style.imageRendering = k > 1 && zoom !== "fit" ? "pixelated" : "";
}

function setSplit(percent) {
  const p = Math.max(0, Math.min(100, percent));
  $("before").style.clipPath = `inset(0 ${100 - p}% 0 0)`;
  $("divider").style.left = `${p}%`;
  $("slider").value = p;
}

function setupCompare() {
  const c = $("compare");
  const fromEvent = (e) => {
    const r = c.getBoundingClientRect();
    setSplit(((e.clientX - r.left) / r.width) * 100);
  };
  c.addEventListener("pointerdown", (e) => { c.setPointerCapture(e.pointerId); fromEvent(e); });
  c.addEventListener("pointermove", (e) => { if (c.hasPointerCapture(e.pointerId)) fromEvent(e); });
  $("slider").addEventListener("input", (e) => setSplit(Number(e.target.value)));
  $("zoom").addEventListener("change", layoutCompare);
  $("nearest").addEventListener("change", (e) => c.classList.toggle("nearest", e.target.checked));
  window.addEventListener("resize", () => { if ($("zoom").value === "fit") layoutCompare(); });
}

showTitleWord();
setupInput();
setupCompare();
loadOptions();
