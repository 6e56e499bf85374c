// The voices panel: posts to the OpenAI-compatible endpoint and plays the answer. No framework.
(function () {
  "use strict";
  const panel = document.getElementById("voices");
  if (!panel) return;
  const base = panel.dataset.apiBase || "/";
  const form = document.getElementById("tts-form");
  const text = document.getElementById("tts-text");
  const voice = document.getElementById("tts-voice");
  const speed = document.getElementById("tts-speed");
  const speedValue = document.getElementById("tts-speed-value");
  const format = document.getElementById("tts-format");
  const button = document.getElementById("tts-speak");
  const status = document.getElementById("tts-status");
  const audio = document.getElementById("tts-audio");
  const download = document.getElementById("tts-download");
  let lastUrl = null;

  function showSpeed() { speedValue.textContent = Number(speed.value).toFixed(2) + "×"; }
  speed.addEventListener("input", showSpeed);
  showSpeed();

  async function errorText(response) {
    try {
      const body = await response.json();
      if (body.error && typeof body.error === "object") return body.error.message || response.statusText;
      return body.detail || body.error || response.statusText;
    } catch (e) {
      return response.statusText || String(response.status);
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const input = text.value.trim();
    if (!input) { status.textContent = "متنی برای خواندن نیست."; return; }
    button.disabled = true;
    panel.classList.add("busy");
    status.textContent = "در حال ساختن صدا…";
    try {
      const response = await fetch(base + "v1/audio/speech", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "persian-data", input: input, voice: voice.value,
                               speed: Number(speed.value), response_format: format.value }),
      });
      if (!response.ok) throw new Error(await errorText(response));
      const blob = await response.blob();
      if (lastUrl) URL.revokeObjectURL(lastUrl);
      lastUrl = URL.createObjectURL(blob);
      audio.src = lastUrl;
      download.href = lastUrl;
      download.download = "speech." + format.value;
      download.hidden = false;
      const seconds = Number(response.headers.get("x-audio-seconds")).toFixed(2);
      const took = Number(response.headers.get("x-synthesis-seconds")).toFixed(2);
      const details = [voice.value, response.headers.get("x-runtime"), format.value, Math.round(blob.size / 1024) + " KB"];
      // Latin runs inside Persian text: each one isolated (FSI ... PDI), so the sentence keeps its order
      const ltr = function (s) { return "\u2068" + s + "\u2069"; };
      status.textContent = ltr(seconds + " s") + " صدا، ساخته در " + ltr(took + " s") + " · " + ltr(details.join(" · "));
      status.dataset.ok = "1";
      const state = document.getElementById("voices-state");
      if (state) { state.textContent = "صداها بارگذاری شده‌اند."; state.dataset.state = "ready"; }
      audio.play().catch(function () { /* autoplay refused: the controls are there */ });
    } catch (error) {
      status.textContent = "خطا: " + error.message;
      status.dataset.ok = "0";
    } finally {
      button.disabled = false;
      panel.classList.remove("busy");
    }
  });
})();
