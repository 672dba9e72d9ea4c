// facerl live mode: microphone -> AudioWorklet -> 16 kHz PCM16 -> WebSocket (/ws of `facerl serve`) -> ARKit
// frames -> the viewer's head (viewer.js, loaded before this file, draws it; facerl.show(view, weights) is its
// live hook). Protocol: src/facerl/stream/protocol.py. State for tests and curious users: window.facerlLive.
"use strict";
(function () {
  const RATE = 16000, CHUNK = 320;  // 20 ms of 16 kHz audio per WebSocket message
  const HISTORY = 900;              // frames kept for the plot and the page's state (30 s)
  const PLOT = [["jawOpen", "#ff7a59"], ["mouthClose", "#5ac8fa"], ["mouthFunnel", "#ffd23f"]];
  const $ = (id) => document.getElementById(id);
  const live = (window.facerlLive = {
    state: "idle", error: null, closeCode: null, fps: 30, lookaheadMs: null, names: [], inputRate: null,
    samplesSent: 0, frames: 0, firstFrameAt: null, lastFrameAt: null, record: false, sent: [],
    jaw: [], rms: [], history: [],  // per frame index: jawOpen, RMS of its 1/30 s of sent audio, all weights (last HISTORY)
    start, stop,
  });
  let ws = null, media = null, ctx = null, latest = null, drawn = null, pending = new Float32Array(0);
  let rmsAcc = 0, rmsN = 0;

  // AudioWorklet: the capture thread posts ~20 ms blocks of mono float samples at the device rate.
  const WORKLET = `class FacerlCapture extends AudioWorkletProcessor {
    constructor() { super(); this.size = Math.round(sampleRate / 50); this.buf = new Float32Array(this.size); this.n = 0; }
    process(inputs) {
      const chans = inputs[0];
      if (chans && chans.length) {
        const len = chans[0].length;
        for (let i = 0; i < len; i++) {
          let s = 0; for (let c = 0; c < chans.length; c++) s += chans[c][i];
          this.buf[this.n++] = s / chans.length;
          if (this.n === this.size) { this.port.postMessage(this.buf.slice()); this.n = 0; }
        }
      }
      return true;
    }
  }
  registerProcessor("facerl-capture", FacerlCapture);`;

  // Streaming windowed-sinc resampler (any rate -> 16 kHz): low-pass at 0.9 x the lower Nyquist, Blackman window.
  function resampler(rateIn, rateOut) {
    const step = rateIn / rateOut, cut = Math.min(1, rateOut / rateIn) * 0.9, half = Math.ceil(12 * Math.max(1, step));
    let buf = new Float32Array(half), pos = half;  // pos: input index (in buf) of the next output sample
    const kernel = (t) => {
      if (Math.abs(t) >= half) return 0;
      const x = Math.PI * cut * t, sinc = t === 0 ? 1 : Math.sin(x) / x;
      const w = 0.42 + 0.5 * Math.cos(Math.PI * t / half) + 0.08 * Math.cos(2 * Math.PI * t / half);
      return cut * sinc * w;
    };
    return (input) => {
      const joined = new Float32Array(buf.length + input.length);
      joined.set(buf); joined.set(input, buf.length);
      const out = [];
      while (pos + half < joined.length) {
        const c = Math.floor(pos);
        let s = 0;
        for (let k = c - half + 1; k <= c + half; k++) s += joined[k] * kernel(pos - k);
        out.push(s);
        pos += step;
      }
      const keep = Math.floor(pos) - half;  // drop what no later output needs
      buf = joined.slice(keep); pos -= keep;
      return Float32Array.from(out);
    };
  }

  function status(text) { $("status").textContent = text; }
  function fail(message) {
    live.error = message; live.state = "error";
    status("error: " + message);
    stopAudio();
  }

  // ---------- audio out: 20 ms PCM16 messages ----------
  function sendAudio(samples) {
    const joined = new Float32Array(pending.length + samples.length);
    joined.set(pending); joined.set(samples, pending.length);
    let off = 0;
    for (; off + CHUNK <= joined.length; off += CHUNK) {
      const pcm = new Int16Array(CHUNK);
      for (let i = 0; i < CHUNK; i++) {
        const v = Math.max(-1, Math.min(1, joined[off + i]));
        pcm[i] = Math.round(v * 32767);
      }
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(pcm.buffer); trackLevels(pcm); live.samplesSent += CHUNK;
        if (live.record) live.sent.push(pcm);
      }
    }
    pending = joined.slice(off);
  }
  function trackLevels(pcm) {  // RMS per frame of sent audio: frame i covers samples [i, i + 1) * 16000 / 30
    for (let i = 0; i < pcm.length; i++) {
      const n = live.samplesSent + i, frame = Math.floor(n * live.fps / RATE);
      while (frame > live.rms.length) { live.rms.push(Math.sqrt(rmsAcc / Math.max(rmsN, 1))); rmsAcc = 0; rmsN = 0; }
      const v = pcm[i] / 32768; rmsAcc += v * v; rmsN++;
    }
  }

  // ---------- frames in ----------
  function onFrames(start, count, k, weights) {
    const now = performance.now();
    if (live.firstFrameAt === null) live.firstFrameAt = now;
    live.lastFrameAt = now;
    const jaw = live.names.indexOf("jawOpen");
    for (let f = 0; f < count; f++) {
      const w = weights.slice(f * k, f * k + k);
      live.jaw[start + f] = w[jaw];
      live.history.push(w);
      if (live.history.length > HISTORY) live.history.shift();
      latest = w;
    }
    live.frames = start + count;
  }
  function onMessage(ev) {
    if (typeof ev.data === "string") {
      const msg = JSON.parse(ev.data);
      if (msg.type === "ready") {
        live.fps = msg.fps; live.lookaheadMs = msg.lookahead_ms; live.names = msg.names; live.state = "streaming";
        status(`streaming · look-ahead ${Math.round(msg.lookahead_ms)} ms · microphone at ${live.inputRate} Hz`);
      } else if (msg.type === "frames") {
        onFrames(msg.start, msg.arkit.length, msg.arkit[0] ? msg.arkit[0].length : 0, Float32Array.from(msg.arkit.flat()));
      } else if (msg.type === "done") {
        live.state = "done"; status(`done · ${msg.frames} frames`);
      } else if (msg.type === "error") {
        fail(msg.message);
      }
      return;
    }
    const dv = new DataView(ev.data);  // binary frames: the 28-byte header of protocol.py, then float32 weights
    const magic = String.fromCharCode(dv.getUint8(0), dv.getUint8(1), dv.getUint8(2), dv.getUint8(3));
    if (magic !== "FRLF" || dv.getUint8(5) !== 4) { fail("unexpected binary message"); return; }
    const start = dv.getUint32(8, true), count = dv.getUint32(12, true), k = dv.getUint16(16, true);
    onFrames(start, count, k, new Float32Array(ev.data, 28, count * k));
  }

  // ---------- start / stop ----------
  async function start() {
    if (live.state === "starting" || live.state === "streaming") return;
    Object.assign(live, { state: "starting", error: null, closeCode: null, samplesSent: 0, frames: 0, jaw: [], rms: [],
                          history: [], sent: [], firstFrameAt: null, lastFrameAt: null });
    live.record = live.record || new URLSearchParams(location.search).get("record") === "1";  // keep the sent PCM
    pending = new Float32Array(0); rmsAcc = 0; rmsN = 0;
    try {
      if (!navigator.mediaDevices || !window.AudioWorkletNode) {
        throw new Error("this page needs a secure context for the microphone: open it as http://localhost or https");
      }
      media = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: false,
                                                                    noiseSuppression: false, autoGainControl: false } });
      ctx = new AudioContext();
      live.inputRate = ctx.sampleRate;
      await ctx.audioWorklet.addModule(URL.createObjectURL(new Blob([WORKLET], { type: "application/javascript" })));
      const source = ctx.createMediaStreamSource(media), node = new AudioWorkletNode(ctx, "facerl-capture");
      const resample = resampler(ctx.sampleRate, RATE);
      node.port.onmessage = (e) => { if (live.state === "streaming") sendAudio(resample(e.data)); };
      source.connect(node); node.connect(ctx.destination);  // the worklet outputs silence; connected so it runs
      if (ctx.state !== "running") await ctx.resume();
      ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
      ws.binaryType = "arraybuffer";
      ws.onopen = () => ws.send(JSON.stringify({ type: "start", sample_rate: RATE, channels: 1, format: "pcm16",
                                                 frames: "binary", dtype: "float32" }));
      ws.onmessage = onMessage;
      ws.onclose = (e) => {
        live.closeCode = e.code;
        if (live.state === "streaming" || live.state === "starting") fail(`connection closed (${e.code} ${e.reason})`);
        stopAudio();
        $("start").textContent = "● start microphone";
      };
      $("start").textContent = "■ stop";
    } catch (err) {
      fail(String(err && err.message || err));
    }
  }
  function stopAudio() {
    if (media) media.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    media = ctx = null;
  }
  function stop() {  // end of speech: the server sends the last frames, "done", and closes
    if (live.state !== "streaming") return;
    live.state = "ending";
    stopAudio();
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "end" }));
    $("start").textContent = "● start microphone";
  }

  // ---------- drawing: the newest frame on the head, the recent curves below ----------
  function drawPlot() {
    const c = $("liveplot"), g = c.getContext("2d"), dpr = window.devicePixelRatio || 1;
    c.width = Math.round(c.clientWidth * dpr); c.height = Math.round(c.clientHeight * dpr);
    const W = c.width, H = c.height, n = live.history.length, x = (i) => W - (n - 1 - i) * W / (HISTORY / 6);
    g.fillStyle = "#1d1f24"; g.fillRect(0, 0, W, H);
    for (const [name, color] of PLOT) {
      const k = live.names.indexOf(name);
      if (k < 0) continue;
      g.strokeStyle = color; g.lineWidth = 1.5 * dpr; g.beginPath();
      for (let i = Math.max(0, n - HISTORY / 6); i < n; i++) {
        const y = H - 4 * dpr - live.history[i][k] * (H - 8 * dpr);
        i > n - HISTORY / 6 && i ? g.lineTo(x(i), y) : g.moveTo(x(i), y);
      }
      g.stroke();
    }
  }
  function tick() {
    if (latest !== drawn && window.facerl && window.facerl.show) {
      window.facerl.show(0, latest);
      drawn = latest;
      drawPlot();
    }
    requestAnimationFrame(tick);
  }

  function setup() {
    if (!window.facerl || window.facerl.error) { fail("viewer: " + (window.facerl && window.facerl.error)); return; }
    if (typeof window.facerl.show !== "function") { fail("viewer.js has no live hook facerl.show(view, weights)"); return; }
    $("legend").innerHTML = PLOT.map(([n, c]) => `<span style="color:${c}">■ ${n}</span>`).join(" ") +
      ' <span class="dim">· last 5 s</span>';
    $("start").addEventListener("click", () => (live.state === "streaming" ? stop() : start()));
    drawPlot();
    requestAnimationFrame(tick);
    if (new URLSearchParams(location.search).get("autostart") === "1") start();
  }
  setup();
})();
