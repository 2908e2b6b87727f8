// aekit explorer: plain JavaScript, talks only to this server's /api/ endpoints (JSON, images as data: URLs).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  info: null,
  token: null,      // the current face on the server
  latent: null,     // its latent
  photo: false,     // an uploaded photo: its edits are shown in the photo (the server puts the change back)
  edits: {},        // direction -> amount
  a: null, b: null, // interpolation ends: {latent, image}
};

function showMessage(text, kind) {
  const box = $("message");
  box.textContent = text;
  box.className = kind === "info" ? "info" : "";
  box.hidden = !text;
}

async function api(path, body, options) {
  // every POST carries X-Aekit: the server refuses POSTs without it, as another web page cannot add it
  const init = body === undefined ? { method: "GET" } : { method: "POST", headers: { "X-Aekit": "1" } };
  if (body instanceof FormData) {
    init.body = body;  // the browser sets the multipart Content-Type with its boundary
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  let response;
  try {
    response = await fetch("/api/" + path, init);
  } catch (err) {
    throw new Error("the server cannot be reached (is `aekit serve` still running?)");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (!response.ok || data === null) {
    const why = data && typeof data.error === "string" ? data.error : "the server answered " + response.status;
    throw new Error(why.split("\n")[0]);
  }
  return data;
}

// Run `work` now, or after the one in flight; only the latest request waiting is kept.
function latest(work) {
  let running = false;
  let waiting = null;
  return function schedule(...args) {
    waiting = args;
    if (running) return;
    const next = async () => {
      running = true;
      while (waiting) {
        const current = waiting;
        waiting = null;
        try {
          await work(...current);
        } catch (err) {
          showMessage(err.message);
        }
      }
      running = false;
    };
    next();
  };
}

function busy(element, on) {
  element.classList.toggle("busy", on);
}

function thumb(src, label) {
  const img = document.createElement("img");
  img.src = src;
  img.alt = label;
  img.title = label;
  return img;
}

// --- the model and its panels -------------------------------------------------------------------------

function describe(info) {
  const parts = [`model ${info.model} (${info.model_id.slice(0, 12)})`, `${info.image_size}×${info.image_size}`,
                 `${info.latent_dim}-d latent`];
  if (info.has_denoiser) parts.push(`denoiser ${info.denoiser}`);
  if (info.has_index) parts.push(`${info.index_size} faces indexed`);
  $("model-info").textContent = parts.join(" · ");
}

function addSlider(container, direction) {
  const id = "dir-" + direction.name.replace(/[^A-Za-z0-9_-]/g, "_");
  const label = document.createElement("label");
  label.htmlFor = id;
  label.textContent = direction.name;
  label.title = direction.name;
  const input = document.createElement("input");
  input.type = "range";
  input.id = id;
  input.min = -3;
  input.max = 3;
  input.step = 0.1;
  input.value = 0;
  input.dataset.direction = direction.name;
  input.className = "direction";
  const output = document.createElement("output");
  output.textContent = "0.0";
  input.addEventListener("input", () => {
    const amount = parseFloat(input.value);
    output.textContent = amount.toFixed(1);
    if (amount === 0) delete state.edits[direction.name];
    else state.edits[direction.name] = amount;
    redraw();
  });
  container.append(label, input, output);
}

function buildSliders(info) {
  const attributes = info.directions.filter((d) => d.kind === "attribute");
  const principal = info.directions.filter((d) => d.kind !== "attribute");
  attributes.forEach((d) => addSlider($("attribute-sliders"), d));
  principal.forEach((d) => addSlider($("principal-sliders"), d));
  $("attribute-title").hidden = attributes.length === 0;
  $("principal-title").hidden = principal.length === 0;
  const note = $("directions-note");
  if (info.directions.length === 0) {
    note.textContent = (info.directions_note || "this model has no directions") +
      ". The sliders show only what the model's directions file holds.";
    note.hidden = false;
    $("reset").hidden = true;
  }
}

function resetSliders() {
  document.querySelectorAll("input.direction").forEach((input) => {
    input.value = 0;
    input.nextElementSibling.textContent = "0.0";
  });
  state.edits = {};
}

// --- the current face --------------------------------------------------------------------------------

const redraw = latest(async () => {
  if (!state.latent) return;
  busy($("edited"), true);
  try {
    // an uploaded photo is edited by its token: the server puts the change back into the photo
    const body = state.photo ? { token: state.token, edits: state.edits } : { latent: state.latent, edits: state.edits };
    const result = await api("decode", body);
    $("edited").src = result.photo || result.image;
  } finally {
    busy($("edited"), false);
  }
});

const denoise = latest(async () => {
  if (!state.token || !state.info.has_denoiser) return;
  busy($("denoised"), true);
  try {
    const result = await api("denoise", {
      token: state.token, noise: $("noise-kind").value, amount: parseFloat($("noise-amount").value),
      seed: Math.max(0, parseInt($("noise-seed").value, 10) || 0),
    });
    $("noisy").src = result.noisy;
    $("denoised").src = result.denoised;
  } finally {
    busy($("denoised"), false);
  }
});

const neighbours = latest(async () => {
  if (!state.token || !state.info.has_index) return;
  const k = Math.min(24, Math.max(1, parseInt($("neighbour-k").value, 10) || 8));
  const result = await api("neighbours", { token: state.token, k });
  const box = $("neighbours");
  box.replaceChildren();
  for (const found of result.neighbours) {
    const figure = document.createElement("figure");
    const caption = document.createElement("figcaption");
    const similarity = document.createElement("span");
    similarity.textContent = found.similarity.toFixed(3);
    similarity.className = "similarity";
    const name = document.createElement("span");
    name.textContent = found.name;
    caption.append(similarity, name);
    caption.title = `${found.name}: cosine similarity ${found.similarity.toFixed(4)}`;
    if (found.image) figure.append(thumb(found.image, found.name));
    figure.append(caption);
    box.append(figure);
  }
  const note = $("neighbours-note");
  note.textContent = result.note || "";
  note.hidden = !result.note;
});

function setFace(face) {
  state.token = face.token;
  state.latent = face.latent;
  state.photo = Boolean(face.photo);
  $("original").src = face.original;
  $("reconstruction").src = face.reconstruction;
  $("face-name").textContent = face.name ? "(" + face.name + ")" : "";
  $("edited-note").textContent = state.photo ? "(in the photo)" : "";
  if (Object.keys(state.edits).length === 0) $("edited").src = face.photo || face.reconstruction;
  redraw();
  denoise();
  neighbours();
}

async function encode(body, chosen) {
  showMessage("");
  document.querySelectorAll(".thumbs button.chosen").forEach((b) => b.classList.remove("chosen"));
  busy($("face-panel"), true);
  try {
    const face = await api("encode", body);
    if (chosen) chosen.classList.add("chosen");
    setFace(face);
  } catch (err) {
    showMessage(err.message);
  } finally {
    busy($("face-panel"), false);
  }
}

function upload(file) {
  const limit = (state.info && state.info.max_upload_mb) || 10;
  if (file.size > limit * 1e6) {
    showMessage(`${file.name}: ${(file.size / 1e6).toFixed(1)} MB is more than the server's limit of ${limit} MB`);
    return;
  }
  const form = new FormData();
  form.append("image", file, file.name);
  encode(form, null);
}

async function loadGallery() {
  const result = await api("gallery");
  const box = $("gallery");
  for (const item of result.gallery) {
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.gallery = item.id;
    button.append(thumb(item.image, item.label));
    button.addEventListener("click", () => encode({ gallery: item.id }, button));
    box.append(button);
  }
}

// --- samples and interpolation -----------------------------------------------------------------------

const drawSamples = latest(async () => {
  const seed = Math.max(0, parseInt($("sample-seed").value, 10) || 0);
  const result = await api("sample", { seed, n: 8 });
  const box = $("samples");
  box.replaceChildren();
  result.images.forEach((image, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.append(thumb(image, `${result.sampler} sample ${i}, seed ${seed}`));
    button.addEventListener("click", () =>
      encode({ latent: result.latents[i], name: `${result.sampler} seed ${seed} #${i}` }, button));
    box.append(button);
  });
  const note = $("sample-note");
  note.textContent = result.note || `from the fitted ${result.sampler} prior`;
  note.hidden = false;
});

const interpolate = latest(async () => {
  const box = $("strip");
  if (!state.a || !state.b) {
    box.replaceChildren();
    for (const end of [state.a, state.b]) if (end) box.append(thumb(end.image, "an end"));
    return;
  }
  const steps = parseInt($("steps").value, 10);
  const result = await api("interpolate", { a: state.a.latent, b: state.b.latent, steps });
  box.replaceChildren(...result.images.map((image, i) => thumb(image, `t=${result.t[i]}`)));
});

function setEnd(which) {
  if (!state.latent) {
    showMessage("choose a face first (upload one, or pick one from the gallery)", "info");
    return;
  }
  state[which] = { latent: state.latent.slice(), image: $("reconstruction").src };
  interpolate();
}

// --- start -------------------------------------------------------------------------------------------

async function start() {
  let info;
  try {
    info = await api("info");
  } catch (err) {
    showMessage(err.message);
    return;
  }
  state.info = info;
  describe(info);
  buildSliders(info);
  if (info.has_denoiser) {
    for (const name of info.noise_models) {
      const option = document.createElement("option");
      option.value = option.textContent = name;
      $("noise-kind").append(option);
    }
    $("denoiser-name").textContent = "(" + info.denoiser + ")";
    $("denoise-panel").hidden = false;
  }
  if (info.has_index) {
    $("neighbours-panel").hidden = false;
    if (info.index_note) {
      $("neighbours-note").textContent = info.index_note;
      $("neighbours-note").hidden = false;
    }
  }
  $("upload").addEventListener("change", (event) => {
    const file = event.target.files[0];
    if (file) upload(file);
    event.target.value = "";
  });
  $("reset").addEventListener("click", () => { resetSliders(); redraw(); });
  $("noise-amount").addEventListener("input", () => {
    $("noise-amount-value").textContent = parseFloat($("noise-amount").value).toFixed(2);
    denoise();
  });
  $("noise-kind").addEventListener("change", () => denoise());
  $("noise-seed").addEventListener("change", () => denoise());
  $("sample").addEventListener("click", () => drawSamples());
  $("sample-next").addEventListener("click", () => {
    $("sample-seed").value = (parseInt($("sample-seed").value, 10) || 0) + 1;
    drawSamples();
  });
  $("set-a").addEventListener("click", () => setEnd("a"));
  $("set-b").addEventListener("click", () => setEnd("b"));
  $("steps").addEventListener("input", () => { $("steps-value").textContent = $("steps").value; interpolate(); });
  $("neighbour-k").addEventListener("change", () => neighbours());
  try {
    await loadGallery();
    drawSamples();
  } catch (err) {
    showMessage(err.message);
  }
  document.body.dataset.ready = "true";
}

document.addEventListener("DOMContentLoaded", start);
