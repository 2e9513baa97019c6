// facelite web page: plain JavaScript, no build step, no third-party code.
// Boxes are [x1, y1, x2, y2] and landmarks [x, y] in pixels of the image sent (continuous
// coordinates, origin at the top-left corner of the top-left pixel); landmark order: left eye,
// right eye, nose, left mouth corner, right mouth corner, as seen in the image.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const LANDMARK_COLOURS = ["#ff3b30", "#007aff", "#34c759", "#ff9500", "#af52de"];

// What the page has done, for people and for the browser tests.
const state = (window.facelite = { ready: false, results: [], errors: [], webcam: { frames: 0, framesWithFaces: 0, fps: 0, faces: [], running: false } });

function settings() {
  return {
    model: $("#model").value,
    precision: $("#precision").value,
    input_size: $("#input-size").value,
    score_threshold: Number($("#threshold").value).toFixed(2),
  };
}

function query(extra = {}) {
  const params = new URLSearchParams({ ...settings(), ...extra });
  for (const [k, v] of [...params]) if (v === "") params.delete(k);
  return "?" + params.toString();
}

function authHeaders() {
  const key = $("#api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

async function call(path, body, type) {
  const headers = { ...authHeaders() };
  if (type) headers["Content-Type"] = type;
  const response = await fetch(path, { method: "POST", body, headers });
  if (!response.ok) {
    let message = `${response.status} ${response.statusText}`;
    try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
    throw new Error(message);
  }
  return response;
}

function drawFaces(ctx, faces, scale = 1) {
  const lw = Math.max(2, Math.round(ctx.canvas.width / 300));
  ctx.lineWidth = lw;
  ctx.font = `${Math.max(12, lw * 6)}px system-ui, sans-serif`;
  for (const f of faces) {
    const [x1, y1, x2, y2] = f.box.map((v) => v * scale);
    ctx.strokeStyle = "#00e676";
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const label = f.score.toFixed(2);
    const tw = ctx.measureText(label).width;
    ctx.fillStyle = "#00e676";
    ctx.fillRect(x1, Math.max(0, y1 - lw * 7), tw + lw * 2, lw * 7);
    ctx.fillStyle = "#000";
    ctx.fillText(label, x1 + lw, Math.max(lw * 6, y1 - lw));
    (f.landmarks || []).forEach(([x, y], i) => {
      ctx.fillStyle = LANDMARK_COLOURS[i % LANDMARK_COLOURS.length];
      ctx.beginPath();
      ctx.arc(x * scale, y * scale, lw * 1.6, 0, 2 * Math.PI);
      ctx.fill();
    });
  }
}

function download(link, blob, name) {
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(blob);
  link.download = name;
}

function baseName(name) { return name.replace(/\.[^.]*$/, "") || "image"; }

// ------------------------------------------------------------------ images

async function processFile(file) {
  const card = $("#result-template").content.firstElementChild.cloneNode(true);
  card.dataset.name = file.name;
  $(".name", card).textContent = file.name;
  $(".summary", card).textContent = "detecting…";
  $("#results").prepend(card);
  $("#bulk").hidden = false;
  try {
    const t0 = performance.now();
    const record = await (await call("/detect" + query(), file, file.type || "application/octet-stream")).json();
    const ms = performance.now() - t0;
    const bitmap = await createImageBitmap(file);
    const canvas = $("canvas.annotated", card);
    canvas.width = record.width;
    canvas.height = record.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(bitmap, 0, 0, record.width, record.height);
    drawFaces(ctx, record.faces);
    const entry = { name: file.name, ...record };
    state.results.push(entry);
    card.dataset.faces = String(record.faces.length);
    $(".summary", card).textContent =
      `${record.faces.length} face${record.faces.length === 1 ? "" : "s"} · ${record.width}×${record.height} · ` +
      `${record.model.name}/${record.model.precision} @ ${record.input_size} · ${ms.toFixed(0)} ms`;
    $(".json", card).textContent = JSON.stringify(record, null, 2);
    download($(".download-json", card), new Blob([JSON.stringify(entry, null, 2)], { type: "application/json" }), baseName(file.name) + ".faces.json");
    canvas.toBlob((blob) => download($(".download-png", card), blob, baseName(file.name) + ".annotated.png"), "image/png");
    $(".anonymize", card).addEventListener("click", () => anonymize(file, card));
    card.classList.add("done");
  } catch (err) {
    card.classList.add("failed");
    card.dataset.error = err.message;
    state.errors.push({ name: file.name, error: err.message });
    $(".summary", card).textContent = "error: " + err.message;
    $(".actions", card).hidden = true;
    $(".body", card).hidden = true;
  }
}

async function anonymize(file, card) {
  const method = $("#anon-method").value;
  const button = $(".anonymize", card);
  button.disabled = true;
  try {
    const blob = await (await call("/anonymize" + query({ method, format: "png" }), file, file.type || "application/octet-stream")).blob();
    const img = $("img.anonymized", card);
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = URL.createObjectURL(blob);
    img.hidden = false;
    const link = $(".download-anon", card);
    download(link, blob, `${baseName(file.name)}.${method}.png`);
    link.hidden = false;
    card.dataset.anonymized = method;
  } catch (err) {
    $(".summary", card).textContent += " · anonymisation failed: " + err.message;
  } finally {
    button.disabled = false;
  }
}

async function processFiles(files) {
  for (const file of files) await processFile(file); // one at a time: the server's queue is for everyone
}

// ------------------------------------------------------------------ webcam

let camStream = null;

async function startWebcam() {
  $("#cam-error").textContent = "";
  try {
    camStream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (err) {
    $("#cam-error").textContent = "no camera: " + err.message;
    return;
  }
  const video = $("#video");
  video.srcObject = camStream;
  await video.play();
  state.webcam = { frames: 0, framesWithFaces: 0, fps: 0, faces: [], running: true, errors: 0 };
  $("#cam-start").disabled = true;
  $("#cam-stop").disabled = false;
  webcamLoop();
}

function stopWebcam() {
  state.webcam.running = false;
  if (camStream) camStream.getTracks().forEach((t) => t.stop());
  camStream = null;
  $("#cam-start").disabled = false;
  $("#cam-stop").disabled = true;
}

async function webcamLoop() {
  const video = $("#video");
  const view = $("#cam-canvas");
  const grab = document.createElement("canvas");
  const done = []; // completion times of the last frames, for the FPS
  while (state.webcam.running) {
    if (video.readyState < 2 || !video.videoWidth) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const scale = Math.min(1, 640 / video.videoWidth);
    grab.width = Math.round(video.videoWidth * scale);
    grab.height = Math.round(video.videoHeight * scale);
    grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
    const blob = await new Promise((r) => grab.toBlob(r, "image/jpeg", 0.85));
    const t0 = performance.now();
    let record;
    try {
      record = await (await call("/detect" + query(), blob, "image/jpeg")).json();
    } catch (err) {
      state.webcam.errors += 1;
      $("#cam-error").textContent = err.message;
      await new Promise((r) => setTimeout(r, 500));
      continue;
    }
    const now = performance.now();
    view.width = grab.width;
    view.height = grab.height;
    const ctx = view.getContext("2d");
    ctx.drawImage(grab, 0, 0);
    drawFaces(ctx, record.faces);
    done.push(now);
    while (done.length && now - done[0] > 2000) done.shift();
    const fps = done.length > 1 ? (1000 * (done.length - 1)) / (done[done.length - 1] - done[0]) : 0;
    Object.assign(state.webcam, { frames: state.webcam.frames + 1, fps, faces: record.faces });
    if (record.faces.length) state.webcam.framesWithFaces += 1;
    $("#fps").textContent = fps.toFixed(1);
    $("#frames").textContent = String(state.webcam.frames);
    $("#cam-faces").textContent = String(record.faces.length);
    $("#cam-latency").textContent = (now - t0).toFixed(0);
  }
}

// ------------------------------------------------------------------ set-up

async function loadServerInfo() {
  const health = await (await fetch("/health")).json();
  $("#server-info").textContent =
    `${health.model.name}/${health.model.precision} · input ${health.input_size} · ${health.workers} worker${health.workers === 1 ? "" : "s"}` +
    (health.api_key_required ? " · API key required" : "");
  $("#threshold").value = health.score_threshold;
  $("#threshold-value").textContent = Number(health.score_threshold).toFixed(2);
  const sizes = [...$("#input-size").options].map((o) => Number(o.value));
  if (!sizes.includes(health.input_size)) $("#input-size").add(new Option(String(health.input_size)));
  $("#input-size").value = String(health.input_size);
  $("#precision").value = health.model.precision || "float32";
  let names = [health.model.name];
  try {
    const r = await fetch("/models", { headers: authHeaders() });
    if (r.ok) names = [...new Set((await r.json()).models.map((m) => m.name))];
  } catch (e) { /* the default model only */ }
  $("#model").replaceChildren(...names.map((n) => new Option(n, n, false, n === health.model.name)));
}

function setUp() {
  for (const b of document.querySelectorAll("#tabs button")) {
    b.addEventListener("click", () => {
      document.querySelectorAll("#tabs button, .tab").forEach((e) => e.classList.remove("active"));
      b.classList.add("active");
      $("#tab-" + b.dataset.tab).classList.add("active");
    });
  }
  $("#threshold").addEventListener("input", (e) => { $("#threshold-value").textContent = Number(e.target.value).toFixed(2); });
  $("#api-key").addEventListener("change", () => loadServerInfo().catch(() => {}));
  $("#files").addEventListener("change", (e) => { processFiles([...e.target.files]); e.target.value = ""; });
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); processFiles([...e.dataTransfer.files]); });
  $("#download-all").addEventListener("click", () => {
    const link = document.createElement("a");
    download(link, new Blob([JSON.stringify(state.results, null, 2)], { type: "application/json" }), "facelite-results.json");
    link.click();
  });
  $("#clear").addEventListener("click", () => { $("#results").replaceChildren(); state.results = []; state.errors = []; $("#bulk").hidden = true; });
  $("#cam-start").addEventListener("click", startWebcam);
  $("#cam-stop").addEventListener("click", stopWebcam);
  loadServerInfo()
    .catch((err) => { $("#server-info").textContent = "server not reachable: " + err.message; })
    .finally(() => { state.ready = true; });
}

setUp();
