// facerl viewer: plays GLB morph-target animations (facerl's ARKit heads) side by side with WebGL, a curve plot
// and the audio. No dependencies; the page embeds the GLBs and the audio, so it works from file:// and offline.
// Deterministic seeking (tests, stills): URL hash #frame=N or #t=SECONDS seeks and pauses (also wire=1, yaw=DEG,
// pitch=DEG); once that frame is drawn, window.facerlReady is true and document.title is "facerl ready frame=N".
// window.facerl.project(view, indices) gives the page pixel coordinates of vertices as last drawn.
"use strict";
(function () {
  const PLOT = ["jawOpen", "mouthClose", "mouthFunnel", "mouthPucker", "mouthSmileLeft"];
  const PLOT_COLORS = ["#ff7a59", "#5ac8fa", "#ffd23f", "#b388ff", "#7ee081"];
  const FOV = 22 * Math.PI / 180;
  const $ = (id) => document.getElementById(id);
  const api = (window.facerl = { ready: false, frame: 0, time: 0, error: null, views: [] });
  window.facerlReady = false;

  // ---------- GLB parsing (JSON + BIN chunks, dense/strided/normalised/sparse accessors) ----------
  function base64Bytes(s) {
    const bin = atob(s), out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }
  function parseGLB(bytes) {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint32(0, true) !== 0x46546c67) throw new Error("not a GLB file");
    if (dv.getUint32(4, true) !== 2) throw new Error("only glTF 2.0 GLB is supported");
    let json = null, bin = null;
    for (let off = 12; off + 8 <= dv.getUint32(8, true);) {
      const len = dv.getUint32(off, true), type = dv.getUint32(off + 4, true), data = bytes.subarray(off + 8, off + 8 + len);
      if (type === 0x4e4f534a) json = JSON.parse(new TextDecoder().decode(data));
      else if (type === 0x004e4942) bin = data;
      off += 8 + len;
    }
    if (!json) throw new Error("GLB has no JSON chunk");
    return { g: json, bin: bin || new Uint8Array(0) };
  }
  const COMP = { 5120: [Int8Array, 127], 5121: [Uint8Array, 255], 5122: [Int16Array, 32767],
                 5123: [Uint16Array, 65535], 5125: [Uint32Array, 0], 5126: [Float32Array, 0] };
  const WIDTH = { SCALAR: 1, VEC2: 2, VEC3: 3, VEC4: 4, MAT2: 4, MAT3: 9, MAT4: 16 };
  function typed(bin, offset, Type, n) {  // copy: GLB data need not be aligned for a typed-array view
    return new Type(bin.buffer.slice(bin.byteOffset + offset, bin.byteOffset + offset + n * Type.BYTES_PER_ELEMENT));
  }
  function accessor(glb, index) {  // -> Float32Array (count * width), normalised integers mapped to [0, 1] / [-1, 1]
    const { g, bin } = glb, a = g.accessors[index], w = WIDTH[a.type], [Type, norm] = COMP[a.componentType];
    const out = new Float32Array(a.count * w);
    if (a.bufferView !== undefined) {
      const bv = g.bufferViews[a.bufferView], base = (bv.byteOffset || 0) + (a.byteOffset || 0);
      const size = Type.BYTES_PER_ELEMENT, stride = bv.byteStride || w * size;
      if (stride === w * size) out.set(typed(bin, base, Type, a.count * w));
      else for (let i = 0; i < a.count; i++) out.set(typed(bin, base + i * stride, Type, w), i * w);
    }
    if (a.sparse) {
      const s = a.sparse, ib = g.bufferViews[s.indices.bufferView], vb = g.bufferViews[s.values.bufferView];
      const idx = typed(bin, (ib.byteOffset || 0) + (s.indices.byteOffset || 0), COMP[s.indices.componentType][0], s.count);
      const val = typed(bin, (vb.byteOffset || 0) + (s.values.byteOffset || 0), Type, s.count * w);
      for (let i = 0; i < s.count; i++) for (let c = 0; c < w; c++) out[idx[i] * w + c] = val[i * w + c];
    }
    if (a.normalized && norm) for (let i = 0; i < out.length; i++) out[i] = Math.max(out[i] / norm, -1);
    return out;
  }
  function sparseRows(delta) {  // a morph target as its moving vertices only: {rows, values}
    const rows = [];
    for (let v = 0; v < delta.length / 3; v++) if (delta[3 * v] || delta[3 * v + 1] || delta[3 * v + 2]) rows.push(v);
    const values = new Float32Array(rows.length * 3);
    rows.forEach((v, i) => values.set(delta.subarray(3 * v, 3 * v + 3), 3 * i));
    return { rows: Int32Array.from(rows), values };
  }

  // ---------- model: mesh, targets, animation ----------
  function loadModel(bytes, label) {
    const glb = parseGLB(bytes), g = glb.g, mesh = g.meshes[0], prim = mesh.primitives[0];
    const pos = accessor(glb, prim.attributes.POSITION), V = pos.length / 3;
    const col = new Float32Array(3 * V);
    if (prim.attributes.COLOR_0 !== undefined) {
      const c = accessor(glb, prim.attributes.COLOR_0), w = WIDTH[g.accessors[prim.attributes.COLOR_0].type];
      for (let v = 0; v < V; v++) col.set(c.subarray(w * v, w * v + 3), 3 * v);
    } else {
      const m = prim.material !== undefined && g.materials ? g.materials[prim.material] : null;
      const f = (m && m.pbrMetallicRoughness && m.pbrMetallicRoughness.baseColorFactor) || [0.6, 0.6, 0.6, 1];
      for (let v = 0; v < V; v++) col.set(f.slice(0, 3), 3 * v);
    }
    const idx = prim.indices !== undefined ? Uint32Array.from(accessor(glb, prim.indices)) : Uint32Array.from({ length: V }, (_, i) => i);
    const targets = (prim.targets || []).map((t) => sparseRows(accessor(glb, t.POSITION)));
    const names = (mesh.extras && mesh.extras.targetNames) || targets.map((_, k) => "target" + k);
    const K = targets.length;
    let times = new Float32Array([0]), weights = Float32Array.from(mesh.weights || new Array(K).fill(0)), fps = 30;
    const anim = (g.animations || [])[0];
    const ch = anim && anim.channels.find((c) => c.target.path === "weights");
    if (ch && K) {
      const smp = anim.samplers[ch.sampler];
      times = accessor(glb, smp.input);
      weights = accessor(glb, smp.output);
      fps = (anim.extras && anim.extras.fps) || (times.length > 1 ? (times.length - 1) / (times[times.length - 1] - times[0]) : 30);
    }
    const lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (let v = 0; v < V; v++) for (let c = 0; c < 3; c++) { lo[c] = Math.min(lo[c], pos[3 * v + c]); hi[c] = Math.max(hi[c], pos[3 * v + c]); }
    const center = lo.map((l, c) => (l + hi[c]) / 2), radius = Math.hypot(hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]) / 2;
    const edges = new Set();
    for (let f = 0; f < idx.length; f += 3) for (let e = 0; e < 3; e++) {
      const a = idx[f + e], b = idx[f + (e + 1) % 3];
      edges.add(a < b ? a * 4294967296 + b : b * 4294967296 + a);
    }
    const lines = new Uint32Array(2 * edges.size);
    let i = 0;
    for (const e of edges) { lines[i++] = Math.floor(e / 4294967296); lines[i++] = e % 4294967296; }
    return { label, V, pos, col, idx, lines, targets, names, K, times, weights, fps, center, radius,
             cur: new Float32Array(pos), nrm: new Float32Array(3 * V), w: new Float32Array(K) };
  }
  function sampleWeights(m, t) {  // LINEAR interpolation of the keyframes at time t (clamped) -> m.w
    const T = m.times.length, K = m.K;
    if (!K) return m.w;
    let i = 0, j = T - 1;
    if (t <= m.times[0]) j = 0;
    else if (t >= m.times[T - 1]) i = T - 1;
    else { while (j - i > 1) { const h = (i + j) >> 1; if (m.times[h] <= t) i = h; else j = h; } }
    if (T === 1 || i === j || i === T - 1 || j === 0) { const k = j === 0 ? 0 : i; m.w.set(m.weights.subarray(k * K, k * K + K)); return m.w; }
    const a = (t - m.times[i]) / (m.times[j] - m.times[i]);
    for (let k = 0; k < K; k++) m.w[k] = (1 - a) * m.weights[i * K + k] + a * m.weights[j * K + k];
    return m.w;
  }
  function blend(m, t) {  // CPU morph: cur = neutral + sum_k w_k delta_k; then area-weighted normals
    const w = sampleWeights(m, t), cur = m.cur, nrm = m.nrm, idx = m.idx;
    cur.set(m.pos);
    for (let k = 0; k < m.K; k++) {
      if (Math.abs(w[k]) < 1e-6) continue;
      const { rows, values } = m.targets[k], wk = w[k];
      for (let i = 0; i < rows.length; i++) { const o = 3 * rows[i]; cur[o] += wk * values[3 * i]; cur[o + 1] += wk * values[3 * i + 1]; cur[o + 2] += wk * values[3 * i + 2]; }
    }
    nrm.fill(0);
    for (let f = 0; f < idx.length; f += 3) {
      const a = 3 * idx[f], b = 3 * idx[f + 1], c = 3 * idx[f + 2];
      const ux = cur[b] - cur[a], uy = cur[b + 1] - cur[a + 1], uz = cur[b + 2] - cur[a + 2];
      const vx = cur[c] - cur[a], vy = cur[c + 1] - cur[a + 1], vz = cur[c + 2] - cur[a + 2];
      const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
      for (const o of [a, b, c]) { nrm[o] += nx; nrm[o + 1] += ny; nrm[o + 2] += nz; }
    }
  }

  // ---------- WebGL: one canvas and context per view ----------
  const VS = "attribute vec3 aPos; attribute vec3 aNrm; attribute vec3 aCol; uniform mat4 uMV; uniform mat4 uP;" +
    "varying vec3 vN; varying vec3 vC; void main() { vN = (uMV * vec4(aNrm, 0.0)).xyz; vC = aCol;" +
    " gl_Position = uP * uMV * vec4(aPos, 1.0); }";
  // Same light rig as facerl's mp4 renderer (key light, fill along the view axis, ambient, a little specular),
  // applied to display-space albedo (glTF COLOR_0 is linear, hence the gamma).
  const FS = "precision mediump float; varying vec3 vN; varying vec3 vC; uniform float uWire;" +
    "void main() { vec3 n = normalize(vN); if (!gl_FrontFacing) n = -n;" +
    " vec3 L = normalize(vec3(-0.35, 0.45, 1.0)); vec3 H = normalize(L + vec3(0.0, 0.0, 1.0));" +
    " float d = 0.62 * max(dot(n, L), 0.0) + 0.22 * max(n.z, 0.0); float s = 0.12 * pow(max(dot(n, H), 0.0), 24.0);" +
    " vec3 c = clamp(pow(vC, vec3(1.0 / 2.2)) * (0.22 + d) + s, 0.0, 1.0);" +
    " gl_FragColor = vec4(mix(c, vec3(0.55, 0.85, 1.0) * (0.35 + d), uWire), 1.0); }";
  function makeView(model, host) {
    const box = document.createElement("div"), label = document.createElement("div"), canvas = document.createElement("canvas");
    box.className = "view"; label.className = "label"; label.textContent = model.label;
    box.append(label, canvas); host.append(box);
    const gl = canvas.getContext("webgl2", { antialias: true, preserveDrawingBuffer: true }) ||
               canvas.getContext("webgl", { antialias: true, preserveDrawingBuffer: true });
    if (!gl) throw new Error("WebGL is not available in this browser");
    const gl2 = typeof WebGL2RenderingContext !== "undefined" && gl instanceof WebGL2RenderingContext;
    if (!gl2 && !gl.getExtension("OES_element_index_uint")) throw new Error("WebGL lacks 32-bit indices");
    const shader = (type, src) => { const s = gl.createShader(type); gl.shaderSource(s, src); gl.compileShader(s);
      if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error(gl.getShaderInfoLog(s)); return s; };
    const prog = gl.createProgram();
    gl.attachShader(prog, shader(gl.VERTEX_SHADER, VS)); gl.attachShader(prog, shader(gl.FRAGMENT_SHADER, FS)); gl.linkProgram(prog);
    if (!gl.getProgramParameter(prog, gl.LINK_STATUS)) throw new Error(gl.getProgramInfoLog(prog));
    const buffer = (target, data, usage) => { const b = gl.createBuffer(); gl.bindBuffer(target, b); gl.bufferData(target, data, usage); return b; };
    const v = { model, canvas, gl, prog, mvp: null,
      pos: buffer(gl.ARRAY_BUFFER, model.cur, gl.DYNAMIC_DRAW), nrm: buffer(gl.ARRAY_BUFFER, model.nrm, gl.DYNAMIC_DRAW),
      col: buffer(gl.ARRAY_BUFFER, model.col, gl.STATIC_DRAW),
      tri: buffer(gl.ELEMENT_ARRAY_BUFFER, model.idx, gl.STATIC_DRAW), lin: buffer(gl.ELEMENT_ARRAY_BUFFER, model.lines, gl.STATIC_DRAW) };
    ["aPos", "aNrm", "aCol"].forEach((n) => { v[n] = gl.getAttribLocation(prog, n); });
    return v;
  }
  function mul(a, b) { const o = new Float32Array(16); for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) {
    let s = 0; for (let k = 0; k < 4; k++) s += a[k * 4 + j] * b[i * 4 + k]; o[i * 4 + j] = s; } return o; }  // column-major
  function cameraMatrices(m, aspect) {
    const dist = m.radius / Math.sin(FOV / 2) / cam.zoom, cy = Math.cos(cam.yaw), sy = Math.sin(cam.yaw), cp = Math.cos(cam.pitch), sp = Math.sin(cam.pitch);
    const rotY = [cy, 0, -sy, 0, 0, 1, 0, 0, sy, 0, cy, 0, 0, 0, 0, 1], rotX = [1, 0, 0, 0, 0, cp, sp, 0, 0, -sp, cp, 0, 0, 0, 0, 1];
    const toC = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, -m.center[0], -m.center[1], -m.center[2], 1];
    const back = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, -dist, 1];
    const mv = mul(back, mul(rotX, mul(rotY, toC)));
    const n = Math.max(dist - 2 * m.radius, dist * 0.05), f = dist + 2 * m.radius, t = 1 / Math.tan(FOV / 2);
    const p = [t / aspect, 0, 0, 0, 0, t, 0, 0, 0, 0, (f + n) / (n - f), -1, 0, 0, 2 * f * n / (n - f), 0];
    return { mv: new Float32Array(mv), p: new Float32Array(p) };
  }
  function drawView(v) {
    const { gl, canvas, model: m } = v, dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr)), h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    const { mv, p } = cameraMatrices(m, w / h);
    v.mvp = mul(p, mv);
    gl.viewport(0, 0, w, h); gl.clearColor(0.16, 0.17, 0.2, 1); gl.enable(gl.DEPTH_TEST);
    gl.clear(gl.COLOR_BUFFER_BIT | gl.DEPTH_BUFFER_BIT);
    gl.useProgram(v.prog);
    gl.uniformMatrix4fv(gl.getUniformLocation(v.prog, "uMV"), false, mv);
    gl.uniformMatrix4fv(gl.getUniformLocation(v.prog, "uP"), false, p);
    gl.uniform1f(gl.getUniformLocation(v.prog, "uWire"), state.wire ? 1 : 0);
    for (const [name, buf, data] of [["aPos", v.pos, m.cur], ["aNrm", v.nrm, m.nrm], ["aCol", v.col, null]]) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      if (data) gl.bufferSubData(gl.ARRAY_BUFFER, 0, data);
      gl.enableVertexAttribArray(v[name]); gl.vertexAttribPointer(v[name], 3, gl.FLOAT, false, 0, 0);
    }
    gl.bindBuffer(gl.ELEMENT_ARRAY_BUFFER, state.wire ? v.lin : v.tri);
    if (state.wire) gl.drawElements(gl.LINES, m.lines.length, gl.UNSIGNED_INT, 0);
    else gl.drawElements(gl.TRIANGLES, m.idx.length, gl.UNSIGNED_INT, 0);
  }

  // ---------- curve plot (canvas 2D) ----------
  function drawPlot() {
    const c = $("plot"), ctx = c.getContext("2d"), dpr = window.devicePixelRatio || 1;
    c.width = Math.round(c.clientWidth * dpr); c.height = Math.round(c.clientHeight * dpr);
    const W = c.width, H = c.height, pad = 6 * dpr, x = (t) => (t / state.duration) * W, y = (w) => H - pad - w * (H - 2 * pad);
    ctx.fillStyle = "#1d1f24"; ctx.fillRect(0, 0, W, H);
    ctx.strokeStyle = "#33363d"; ctx.lineWidth = 1;
    ctx.fillStyle = "#777"; ctx.font = `${11 * dpr}px sans-serif`; ctx.textBaseline = "middle";
    for (const g of [0, 0.5, 1]) { ctx.beginPath(); ctx.moveTo(0, y(g)); ctx.lineTo(W, y(g)); ctx.stroke(); ctx.fillText(g.toFixed(1), W - 24 * dpr, y(g) + (g === 1 ? 7 : g === 0 ? -7 : 0) * dpr); }
    models.forEach((m, vi) => {
      ctx.setLineDash(vi ? [5 * dpr, 4 * dpr] : []);
      PLOT.forEach((name, pi) => {
        const k = m.names.indexOf(name);
        if (k < 0) return;
        ctx.strokeStyle = PLOT_COLORS[pi]; ctx.lineWidth = 1.5 * dpr; ctx.beginPath();
        for (let i = 0; i < m.times.length; i++) { const px = x(m.times[i]), py = y(m.weights[i * m.K + k]); i ? ctx.lineTo(px, py) : ctx.moveTo(px, py); }
        ctx.stroke();
      });
    });
    ctx.setLineDash([]); ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath(); ctx.moveTo(x(state.t), 0); ctx.lineTo(x(state.t), H); ctx.stroke();
  }

  // ---------- time, playback, audio ----------
  const state = { t: 0, duration: 0, fps: 30, playing: false, wire: false, clock0: 0, t0: 0 };
  const cam = { yaw: 0, pitch: 0, zoom: 1.35 };
  let models = [], views = [], audio = null;
  const frameOf = (t) => Math.round(t * state.fps);
  function render() {
    for (const v of views) { blend(v.model, state.t); drawView(v); }
    drawPlot();
    const f = frameOf(state.t), n = frameOf(state.duration);
    $("slider").value = String(f);
    $("time").textContent = `${state.t.toFixed(2)} s / ${state.duration.toFixed(2)} s · frame ${f} / ${n}`;
    $("play").textContent = state.playing ? "❚❚ pause" : "▶ play";
    api.frame = f; api.time = state.t;
  }
  function seek(t) {
    state.t = Number.isFinite(t) ? Math.min(Math.max(t, 0), state.duration) : 0;
    if (audio) { try { audio.currentTime = state.t; } catch (e) { /* metadata not loaded yet */ } }
    state.t0 = state.t; state.clock0 = performance.now();
    render();
  }
  function setPlaying(on) {
    state.playing = on;
    if (on) {
      if (state.t >= state.duration) seek(0);
      state.clock0 = performance.now(); state.t0 = state.t;
      if (audio) {
        const el = audio;
        el.play().catch((err) => {  // blocked or undecodable: fall back to the clock (a pause just aborts play)
          api.audioError = String(err && err.name || err);
          if (err && err.name !== "AbortError" && audio === el) { audio = null; state.t0 = state.t; state.clock0 = performance.now(); }
        });
      }
      requestAnimationFrame(tick);
    } else if (audio) { audio.pause(); state.t = Math.min(audio.currentTime, state.duration); }
    render();
  }
  function tick() {
    if (!state.playing) return;
    // The audio element's clock drives the frame when there is audio, so picture and sound cannot drift.
    state.t = audio ? audio.currentTime : state.t0 + (performance.now() - state.clock0) / 1000;
    if (state.t >= state.duration && (!audio || audio.ended || audio.currentTime >= state.duration)) {
      state.t = state.duration; state.playing = false; if (audio) audio.pause();
    }
    render();
    if (state.playing) requestAnimationFrame(tick);
  }
  function applyHash() {
    const h = new URLSearchParams(location.hash.slice(1));
    if (h.has("wire")) { state.wire = h.get("wire") === "1"; $("wire").checked = state.wire; }
    if (h.has("yaw")) cam.yaw = parseFloat(h.get("yaw")) * Math.PI / 180;
    if (h.has("pitch")) cam.pitch = parseFloat(h.get("pitch")) * Math.PI / 180;
    if (!h.has("frame") && !h.has("t")) { render(); return; }
    window.facerlReady = api.ready = false;
    state.playing = false; if (audio) audio.pause();
    seek(h.has("frame") ? parseInt(h.get("frame"), 10) / state.fps : parseFloat(h.get("t")));
    window.facerlReady = api.ready = true;
    document.title = `facerl ready frame=${api.frame}`;
  }
  api.show = (vi, weights) => {  // live mode (live.js): draw view vi with these K morph-target weights now
    const m = models[vi];
    m.times = new Float32Array([0]); m.weights = Float32Array.from(weights);
    state.playing = false; state.t = 0; state.duration = 1 / state.fps;
    render();
  };
  api.project = (vi, indices) => {  // page (CSS pixel) coordinates of vertices of view vi as last drawn
    const v = views[vi], r = v.canvas.getBoundingClientRect(), m = v.mvp, p = v.model.cur;
    return indices.map((i) => {
      const x = p[3 * i], y = p[3 * i + 1], z = p[3 * i + 2], w = m[3] * x + m[7] * y + m[11] * z + m[15];
      const nx = (m[0] * x + m[4] * y + m[8] * z + m[12]) / w, ny = (m[1] * x + m[5] * y + m[9] * z + m[13]) / w;
      return [r.left + (nx + 1) / 2 * r.width, r.top + (1 - ny) / 2 * r.height];
    });
  };

  // ---------- UI ----------
  function setup() {
    const data = JSON.parse($("facerl-data").textContent);
    models = data.views.map((d) => loadModel(base64Bytes(d.glb), d.label));
    views = models.map((m) => makeView(m, $("views")));
    api.views = models.map((m) => ({ label: m.label, frames: m.times.length, fps: m.fps, names: m.names }));
    state.fps = models[0].fps;
    state.duration = Math.max(1 / state.fps, ...models.map((m) => m.times[m.times.length - 1]));
    if (data.audio) {
      audio = new Audio("data:" + data.audio.mime + ";base64," + data.audio.data);
      audio.preload = "auto"; api.audio = audio;
      audio.addEventListener("loadedmetadata", () => { state.duration = Math.max(state.duration, audio.duration || 0); $("slider").max = String(frameOf(state.duration)); render(); });
      audio.addEventListener("ended", () => { if (state.playing) setPlaying(false); });
    }
    $("legend").innerHTML = PLOT.map((n, i) => `<span style="color:${PLOT_COLORS[i]}">■ ${n}</span>`).join(" ") +
      (models.length > 1 ? ` <span class="dim">solid: ${esc(models[0].label)} · dashed: ${esc(models[1].label)}</span>` : "");
    const slider = $("slider");
    slider.max = String(frameOf(state.duration));
    slider.addEventListener("input", () => { if (state.playing) setPlaying(false); seek(parseInt(slider.value, 10) / state.fps); });
    $("play").addEventListener("click", () => setPlaying(!state.playing));
    $("wire").addEventListener("change", (e) => { state.wire = e.target.checked; render(); });
    $("reset").addEventListener("click", () => { cam.yaw = 0; cam.pitch = 0; cam.zoom = 1.35; render(); });
    window.addEventListener("keydown", (e) => { if (e.code === "Space" && e.target.tagName !== "INPUT") { e.preventDefault(); setPlaying(!state.playing); } });
    const plot = $("plot");
    const plotSeek = (e) => { const r = plot.getBoundingClientRect(); if (state.playing) setPlaying(false); seek((e.clientX - r.left) / r.width * state.duration); };
    plot.addEventListener("pointerdown", (e) => { plotSeek(e); plot.setPointerCapture(e.pointerId); });
    plot.addEventListener("pointermove", (e) => { if (e.buttons) plotSeek(e); });
    for (const v of views) {  // orbit: drag rotates every view together, wheel zooms
      let last = null;
      v.canvas.addEventListener("pointerdown", (e) => { last = [e.clientX, e.clientY]; v.canvas.setPointerCapture(e.pointerId); });
      v.canvas.addEventListener("pointerup", () => { last = null; });
      v.canvas.addEventListener("pointermove", (e) => {
        if (!last) return;
        cam.yaw += (e.clientX - last[0]) * 0.01;
        cam.pitch = Math.max(-1.4, Math.min(1.4, cam.pitch + (e.clientY - last[1]) * 0.01));
        last = [e.clientX, e.clientY]; if (!state.playing) render();
      });
      v.canvas.addEventListener("wheel", (e) => { e.preventDefault(); cam.zoom = Math.max(0.5, Math.min(6, cam.zoom * Math.exp(-e.deltaY * 0.001))); if (!state.playing) render(); }, { passive: false });
    }
    window.addEventListener("resize", () => render());
    window.addEventListener("hashchange", applyHash);
    applyHash();
    window.facerlReady = api.ready = true;
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]); }
  try { setup(); } catch (err) {
    api.error = String(err && err.message || err);
    document.title = "facerl error: " + api.error;
    $("error").textContent = "Cannot show this animation: " + api.error;
    $("error").hidden = false;
  }
})();
