// Relais uploader: resumable uploads (tus) with an Add button, a drop zone and a progress bar per
// file. Texts come translated from data-msg-* attributes on #uploader; no inline script or style
// (the Content-Security-Policy forbids both). Without this script the plain form still works.
(function () {
  "use strict";
  var root = document.getElementById("uploader");
  if (!root || !window.tus || !window.tus.isSupported) { return; }
  var form = document.getElementById("upload-form");
  var zone = document.getElementById("drop-zone");
  var input = document.getElementById("uploader-input");
  var list = document.getElementById("transfers");
  var news = document.getElementById("transfer-news");
  var msg = function (name) { return root.getAttribute("data-msg-" + name) || name; };
  root.hidden = false;
  if (form) { form.hidden = true; }

  function format(text, values) {
    return text.replace(/\{(\w+)\}/g, function (all, key) { return key in values ? values[key] : all; });
  }

  // Sizes as the server shows them (relais/i18n.py, human_size): counted in 1,024s, with the
  // page language's decimals and unit symbols.
  var units = (root.getAttribute("data-size-units") || "B|KB|MB|GB|TB").split("|");
  var number = new Intl.NumberFormat(document.documentElement.lang || undefined, { maximumFractionDigits: 1 });
  var percent = new Intl.NumberFormat(document.documentElement.lang || undefined, { style: "percent" });
  function bytes(n) {
    var i = 0;
    while (Math.round(n * 10) / 10 >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    return number.format(n) + "\u00a0" + units[i];
  }

  function duration(seconds) {
    if (!isFinite(seconds)) { return "…"; }
    seconds = Math.round(seconds);
    if (seconds < 60) { return seconds + " s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s"; }
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }

  // The server's answer behind an error: tus-js-client's own, or the one sessionEnded() kept.
  function responseOf(error) {
    if (!error) { return null; }
    return error.originalResponse || (error.causingError && error.causingError.response) || null;
  }

  // A session that ended (401) is no reason to forget an upload: tus-js-client drops what it
  // remembers after any 4xx to its HEAD and starts anew, so a 401 is turned into an error here,
  // before it gets there. After a new login the same file then continues where it stopped.
  function sessionEnded(request, response) {
    if (response.getStatus() === 401) {
      var error = new Error("session ended");
      error.response = response;
      throw error;
    }
  }

  function serverMessage(error) {
    var response = responseOf(error);
    var status = response ? response.getStatus() : 0;
    // The server's own words: in the body, or (an answer to HEAD has none) in Relais-Message.
    var text = response ? response.getBody() || decodeURIComponent(response.getHeader("Relais-Message") || "") : "";
    if ((status >= 400 && status < 500 || status === 507) && text) {
      return text;
    }
    // Anything else is tus-js-client's technical English: the console gets it, the person a sentence.
    if (window.console) { window.console.error(error); }
    return status ? format(msg("server-error"), { status: status }) : msg("network");
  }

  // The live region hears milestones only (started, each quarter, done, failed): the status line
  // beside each bar changes several times a second, far too often to be read out.
  function announce(name, text) {
    if (!news) { return; }
    var line = document.createElement("p");
    line.textContent = format(msg("news"), { name: name, status: text });
    news.appendChild(line);
    while (news.childNodes.length > 5) { news.removeChild(news.firstChild); }
  }

  // A finished upload removed from the list must not stay ticked under "Files to send" (the send
  // form refreshes that list when an upload completes, ticking the new file). The checkbox is
  // found by the file's name and size; if the list has not caught up yet, after its next refresh.
  var unticking = [];
  function untick(file) {
    var choices = document.getElementById("file-choices");
    if (!choices) { return true; }
    var boxes = choices.querySelectorAll("input[type=checkbox][data-size]"), same = [], sized = [];
    for (var i = 0; i < boxes.length; i += 1) {
      if (!boxes[i].checked || Number(boxes[i].getAttribute("data-size")) !== file.size) { continue; }
      sized.push(boxes[i]);
      if (boxes[i].getAttribute("data-name") === file.name) { same.push(boxes[i]); }
    }
    // The server may have cleaned the name: then the size alone, if only one ticked file has it.
    var box = same[0] || (sized.length === 1 ? sized[0] : null);
    if (box) { box.checked = false; }
    return Boolean(box);
  }
  document.body.addEventListener("htmx:afterSwap", function (event) {
    if (!event.detail || !event.detail.target || event.detail.target.id !== "file-choices") { return; }
    unticking = unticking.filter(function (file) { return !untick(file); });
  });

  // A button with id "transmit" (a request's page) waits while an upload in this page is
  // unfinished: what is on its way cannot be sent yet (the server refuses it too). An element with
  // id "transmit-wait" says why while it waits.
  var transmit = document.getElementById("transmit");
  var transmitWait = document.getElementById("transmit-wait");
  var active = 0;  // uploads added and neither finished, refused, cancelled nor removed
  function activity(delta) {
    active += delta;
    if (transmit) { transmit.disabled = active > 0; }
    if (transmitWait) { transmitWait.hidden = active === 0; }
  }

  function button(text, label, onClick) {
    var b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.setAttribute("aria-label", text + " " + label);
    b.addEventListener("click", onClick);
    return b;
  }

  // At most RUNNING uploads at once, the others wait their turn: files finish one after the
  // other instead of all crawling together, and the server keeps few uploads open per person.
  var RUNNING = 3, running = 0, queue = [];
  function pump() {
    while (running < RUNNING && queue.length) { running += 1; queue.shift()(); }
  }
  function whenFree(start) { queue.push(start); pump(); }
  function freed() { running -= 1; pump(); }

  // The file as tus-js-client reads it. Chromium sends a File straight from the disk, but a slice
  // of one through its blob system, at half the speed and twice the CPU (measured on a 2-core
  // machine: 420-460 against 210-240 MB/s over loopback). So the file goes in one request, the
  // File itself, and only a resumed upload sends a slice: the rest from the server's offset.
  // One request is safe: the server keeps what arrived when a connection drops and checkpoints
  // every 64 MiB on the way, so a retry or a resume after a refresh goes on from where it stopped.
  var wholeFile = {
    openFile: function (file) {
      return Promise.resolve({
        size: file.size,
        slice: function (start, end) {
          var whole = start === 0 && end >= file.size;
          return Promise.resolve({ value: whole ? file : file.slice(start, end), done: end >= file.size });
        },
        close: function () {}
      });
    }
  };

  function add(file) {
    var item = document.createElement("li");
    var name = document.createElement("span");
    var actions = document.createElement("span");
    var bar = document.createElement("progress");
    var status = document.createElement("span");
    name.className = "name";
    name.textContent = file.name;
    status.className = "status";
    status.textContent = msg("waiting");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    item.append(name, actions, bar, status);
    list.appendChild(item);

    var samples = [];  // [time, bytes] over the last few seconds, for speed and time left
    var quarters = 0;  // how many quarters of the file have been announced
    var upload = new window.tus.Upload(file, {
      endpoint: root.getAttribute("data-endpoint"),
      headers: { "x-csrftoken": root.getAttribute("data-csrf") },
      metadata: { filename: file.name, filetype: file.type || "application/octet-stream" },
      fileReader: wholeFile,
      retryDelays: [0, 1000, 3000, 5000, 10000, 20000, 30000, 60000],
      removeFingerprintOnSuccess: true,
      onAfterResponse: sessionEnded,
      onShouldRetry: function (error, retryAttempt, options) {
        var code = responseOf(error) ? responseOf(error).getStatus() : 0;
        // A refusal (4xx) will not change by retrying; 409/423 (busy) and network errors may.
        var retry = !(code >= 400 && code < 500 && code !== 409 && code !== 423);
        if (retry) { say(msg("retrying")); }
        return retry;
      },
      onProgress: function (sent, total) {
        var now = Date.now();
        samples.push([now, sent]);
        while (samples.length > 2 && now - samples[0][0] > 5000) { samples.shift(); }
        var first = samples[0], seconds = (now - first[0]) / 1000;
        var speed = seconds > 0 ? (sent - first[1]) / seconds : 0;
        bar.max = total;
        bar.value = sent;
        var quarter = total > 0 ? Math.floor(sent * 4 / total) : 0;
        if (quarter > quarters && quarter < 4) {
          quarters = quarter;
          announce(file.name, format(msg("percent"), { percent: percent.format(quarter / 4) }));
        }
        say(format(msg("speed"), { speed: bytes(speed), left: duration(speed > 0 ? (total - sent) / speed : Infinity) }));
      },
      onSuccess: function () {
        release();
        setBusy(false);
        bar.value = bar.max;
        item.className = "done";
        say(msg("done"));
        announce(file.name, msg("done"));
        finished = true;
        setActions([remove]);
        document.body.dispatchEvent(new CustomEvent("relais:uploaded"));
      },
      onError: function (error) {
        release();
        item.className = "failed";
        var text = format(msg("failed"), { error: serverMessage(error) });
        say(text);
        announce(file.name, text);
        // A refusal (4xx: type, size, name, quota...) would be refused again: no Retry for it.
        // A network or server error (no answer, 5xx, 507 disk full) may pass later.
        var code = responseOf(error) ? responseOf(error).getStatus() : 0;
        var refused = code >= 400 && code < 500 && code !== 409 && code !== 423;  // as onShouldRetry
        if (refused) { item.setAttribute("data-refused", ""); setBusy(false); }
        setActions(refused ? [remove] : [retry, remove]);
      }
    });

    var holding = false, cancelled = false, finished = false;  // holding: this upload has one of the RUNNING places
    var busy = false;  // counted in "active": not finished, refused, cancelled or removed
    function setBusy(flag) { if (flag !== busy) { busy = flag; activity(flag ? 1 : -1); } }
    function release() { if (holding) { holding = false; freed(); } }
    function say(text) { status.textContent = text; }
    function setActions(buttons) { actions.replaceChildren.apply(actions, buttons); }
    var cancel = button(msg("cancel"), file.name, function () {
      cancelled = true;
      if (holding) { upload.abort(true).catch(function () {}); }  // true: the server deletes what it has (tus termination)
      release();
      setBusy(false);
      item.className = "failed";
      say(msg("cancelled"));
      setActions([remove]);
    });
    var retry = button(msg("retry"), file.name, function () {
      item.className = "";
      cancelled = false;
      setBusy(true);
      say(msg("waiting"));
      setActions([cancel]);
      whenFree(function () { holding = true; upload.start(); });
    });
    var remove = button(msg("remove"), file.name, function () {
      item.remove();
      setBusy(false);
      if (finished && !untick(file)) { unticking.push(file); }
    });
    setActions([cancel]);
    setBusy(true);

    // The same file added again after a refresh resumes where it stopped (fingerprint in localStorage).
    whenFree(function () {
      if (cancelled) { freed(); return; }
      holding = true;
      upload.findPreviousUploads().then(function (previous) {
        if (cancelled) { return; }
        if (previous.length) { upload.resumeFromPreviousUpload(previous[0]); }
        announce(file.name, msg("started"));
        upload.start();
      });
    });
  }

  function addAll(files) {
    for (var i = 0; i < files.length; i += 1) { add(files[i]); }
  }

  input.addEventListener("change", function () { addAll(input.files); input.value = ""; });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files) { addAll(event.dataTransfer.files); }
  });
})();
